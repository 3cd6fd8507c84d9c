// The history chart: incidences per iteration, one line per type (uPlot, vendored).

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";

const HEIGHT = 320;
// Ten distinguishable colours (Tableau 10), one per incidence type at most.
const COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];
// Whole numbers only on both axes: iterations and incidences are counted.
const WHOLE_STEPS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
];

// `iterations`: the x values; `series`: [{label, values}] aligned with them.
export function typeChart({ id, label, iterations, series }) {
  const container = h("div", { id, class: "chart", role: "img", "aria-label": label });
  const options = {
    width: 800,
    height: HEIGHT,
    scales: { x: { time: false } },
    // A legend of names only: the table beside the chart has every value.
    legend: { live: false },
    axes: [
      { label: "Iteration", incrs: WHOLE_STEPS },
      { label: "Incidences", incrs: WHOLE_STEPS },
    ],
    series: [
      { label: "Iteration" },
      ...series.map((line, index) => ({
        label: line.label,
        stroke: COLORS[index % COLORS.length],
        width: 2,
        points: { show: true, size: 6 },
        spanGaps: false,
      })),
    ],
  };
  const plot = new uPlot(options, [iterations, ...series.map((line) => line.values)], container);
  // uPlot draws at a fixed size: follow the width the layout gives the container.
  new ResizeObserver(([entry]) => {
    const width = Math.floor(entry.contentRect.width);
    if (width > 0 && width !== plot.width) plot.setSize({ width, height: HEIGHT });
  }).observe(container);
  container.plot = plot; // reachable from the element: the browser tests read its series
  return container;
}
