// The usage chart: one horizontal bar per step (or model), input and output tokens stacked,
// labelled with the tokens and the cost. Plain SVG, drawn here.

import { fmtInt, fmtUsd, h, s } from "./dom.js";

const W = 560;
const ROW = 26;
const LABEL_W = 172;
const VALUE_W = 160;
const BAR_W = W - LABEL_W - VALUE_W - 16;

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

export function usageChart(rows, { title, id }) {
  const max = Math.max(1, ...rows.map((r) => r.inputTokens + r.outputTokens));
  const height = rows.length * ROW + 6;
  const svg = s("svg", {
    class: "chart",
    id,
    viewBox: `0 0 ${W} ${height}`,
    width: W,
    height,
    role: "img",
    "aria-label": `${title}: tokens and cost`,
    preserveAspectRatio: "xMinYMin meet",
  });
  rows.forEach((r, i) => {
    const y = i * ROW + 4;
    const inW = Math.round((r.inputTokens / max) * BAR_W);
    const outW = Math.round((r.outputTokens / max) * BAR_W);
    const tokens = r.inputTokens + r.outputTokens;
    const cost = r.unpricedCalls && r.costUsd === 0 ? "no price" : fmtUsd(r.costUsd);
    const tip =
      `${r.name}: ${fmtInt(r.inputTokens)} input + ${fmtInt(r.outputTokens)} output tokens, ` +
      `${cost}, ${r.calls} call${r.calls === 1 ? "" : "s"}`;
    svg.append(
      s(
        "g",
        { class: "bar-row", "data-name": r.name, "data-tokens": tokens, "data-cost": r.costUsd },
        s("title", {}, tip),
        s("text", { x: 0, y: y + 14, class: "bar-label" }, clip(r.name, 23)),
        s("rect", { x: LABEL_W, y, width: BAR_W, height: 18, rx: 3, class: "bar-track" }),
        s("rect", { x: LABEL_W, y, width: Math.max(inW, tokens ? 1 : 0), height: 18, rx: 3, class: "bar-in" }),
        s("rect", { x: LABEL_W + inW, y, width: outW, height: 18, rx: 3, class: "bar-out" }),
        s(
          "text",
          { x: LABEL_W + BAR_W + 10, y: y + 14, class: "bar-value" },
          `${fmtInt(tokens)} tok · ${cost}`,
        ),
      ),
    );
  });
  return h(
    "figure",
    { class: "chart-fig" },
    h(
      "figcaption",
      {},
      h("b", {}, title),
      h("span", { class: "legend" }, h("i", { class: "sw in" }), "input", h("i", { class: "sw out" }), "output"),
    ),
    svg,
  );
}
