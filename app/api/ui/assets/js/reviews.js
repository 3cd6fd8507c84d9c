// Review actions (SPEC §10), kept apart until the API has them.
//
// Acknowledging an incidence needs PUT /api/v1/closings/{id}/reviews/{key}, which the API does
// not offer yet, so the console shows no review control rather than one that cannot work.
// The incidence table asks this module for its extra columns ({label, cell(incidence)}); when
// the review API lands, this is the one place that adds a "Review" column (the incidence's
// `review` status and an Acknowledge / Reopen button calling that PUT).
export function reviewColumns() {
  return [];
}
