// The figures of a closing's history, from the public API only.

import { eachLimited, get } from "./api.js";

// The iterations (newest first, as listed) with their diff against the previous succeeded
// one: the list's own `diff` when it carries one, else GET /iterations/{n} for each
// succeeded iteration (only those have a diff).
export async function iterationsWithDiffs(closingId) {
  const listed = (await get(`/closings/${closingId}/iterations`)).items;
  return eachLimited(listed, 4, (iteration) =>
    "diff" in iteration || iteration.status !== "succeeded"
      ? iteration
      : get(`/closings/${closingId}/iterations/${iteration.number}`),
  );
}

const typeOf = (key) => key.slice(0, key.indexOf(":"));

function incidenceCounts(byType) {
  return Object.fromEntries(
    Object.entries(byType).map(([type, tally]) => [type, tally.incidences]),
  );
}

// Counts after `diff` (direction +1: its new keys enter, its resolved keys leave), or before
// it (direction -1); null when a diff is missing and the chain is broken.
function step(counts, diff, direction) {
  if (!counts || !diff) return null;
  const next = { ...counts };
  for (const key of diff.new) next[typeOf(key)] = (next[typeOf(key)] ?? 0) + direction;
  for (const key of diff.resolved) next[typeOf(key)] = (next[typeOf(key)] ?? 0) - direction;
  return next;
}

// Incidences per type of each succeeded iteration, oldest first: [{number, byType}].
//
// Each iteration's `summary.by_type` is used when the API provides it. Today's summary has
// totals and by_severity only, so the counts are rebuilt from public figures: the snapshot's
// statistics.by_type is exact for its iteration, and each iteration's diff against the
// previous succeeded one says which keys entered and left (a key's type is what precedes its
// first ":"). `snapshot` must be read before the list, so the list holds its iteration.
export function incidencesByType(succeeded, snapshot) {
  if (succeeded.every((iteration) => iteration.summary?.by_type)) {
    return succeeded.map((iteration) => ({
      number: iteration.number,
      byType: incidenceCounts(iteration.summary.by_type),
    }));
  }
  const anchor = succeeded.findIndex((iteration) => iteration.number === snapshot?.iteration);
  if (anchor < 0) return succeeded.map((iteration) => ({ number: iteration.number, byType: null }));
  const counts = [];
  counts[anchor] = incidenceCounts(snapshot.statistics.by_type);
  for (let index = anchor + 1; index < succeeded.length; index++) {
    counts[index] = step(counts[index - 1], succeeded[index].diff, +1);
  }
  for (let index = anchor - 1; index >= 0; index--) {
    counts[index] = step(counts[index + 1], succeeded[index + 1].diff, -1);
  }
  return succeeded.map((iteration, index) => ({ number: iteration.number, byType: counts[index] }));
}

// One series per type that has an incidence in some iteration, by type name; a count the API
// cannot tell is null (a gap in the chart).
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
