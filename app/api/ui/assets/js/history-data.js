// The figures of a closing's history, from the public API only.

import { get } from "./api.js";

// The history pages show at most this many iterations, the newest (the API's largest page,
// and ITERATION_RETENTION's default).
export const HISTORY_BOUND = 100;
export const HISTORY_PAGE = 20; // the API's default page

// The newest `bound` iterations (newest first, as listed), `pageSize` at a time, following
// `next_cursor`; `more` tells whether older ones were left out. Each item carries its own
// `diff` and `summary`: nothing more is fetched per iteration.
export async function newestIterations(closingId, pageSize = HISTORY_PAGE, bound = HISTORY_BOUND) {
  const items = [];
  let cursor = null;
  do {
    const limit = Math.min(pageSize, bound - items.length);
    const page = await get(`/closings/${closingId}/iterations`, { limit, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor !== null && items.length < bound);
  return { items, more: cursor !== null };
}

// Incidences per type of each succeeded iteration, oldest first: [{number, byType}], from
// each iteration's `summary.by_type` (null when an iteration has none).
export function incidencesByType(succeeded) {
  return succeeded.map((iteration) => ({
    number: iteration.number,
    byType: iteration.summary?.by_type
      ? Object.fromEntries(
          Object.entries(iteration.summary.by_type).map(([type, tally]) => [
            type,
            tally.incidences,
          ]),
        )
      : null,
  }));
}

// One series per type that has an incidence in some iteration, by type name; a count the API
// does not tell is null (a gap in the chart).
export function typeSeries(points) {
  const types = new Set();
  for (const { byType } of points) {
    for (const [type, value] of Object.entries(byType ?? {})) if (value > 0) types.add(type);
  }
  return [...types].sort().map((type) => ({
    label: type,
    values: points.map(({ byType }) => (byType ? (byType[type] ?? 0) : null)),
  }));
}
