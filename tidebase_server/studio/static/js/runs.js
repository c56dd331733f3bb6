// The runs list: filter by status and workflow, refreshed every second without a reload.

import { api } from "./api.js";
import { ago, badge, clear, h, timeEl } from "./dom.js";

const STATUSES = ["pending", "queued", "running", "waiting", "completed", "failed", "cancelled"];
const POLL_MS = 500; // a new run shows within a second
const LIMIT = 200;

export function mountRuns(root) {
  const filters = new URLSearchParams(location.hash.split("?")[1] || "");
  const workflows = new Set();
  const rows = new Map(); // run id -> { tr, key }
  let timer = null;
  let stopped = false;
  let first = true;

  const status = h(
    "select",
    { id: "filter-status", "aria-label": "Status" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((st) => h("option", { value: st }, st)),
  );
  status.value = filters.get("status") || "";
  const workflow = h("input", {
    id: "filter-workflow",
    type: "search",
    placeholder: "any workflow",
    list: "workflow-names",
    "aria-label": "Workflow",
    spellcheck: "false",
    value: filters.get("workflow") || "",
  });
  const names = h("datalist", { id: "workflow-names" });
  const live = h("span", { class: "live", id: "runs-live" }, "connecting…");
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const tbody = h("tbody", { id: "runs-body" });
  const empty = h("p", { class: "muted empty", hidden: true }, "No runs match these filters yet.");

  root.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Runs"),
      h(
        "div",
        { class: "filters" },
        h("label", {}, "Status ", status),
        h("label", {}, "Workflow ", workflow, names),
        live,
      ),
    ),
    error,
    h(
      "div",
      { class: "card table-card" },
      h(
        "table",
        { class: "table runs", id: "runs-table" },
        h(
          "thead",
          {},
          h("tr", {}, ["Status", "Workflow", "Run", "Attempt", "Created", "Updated"].map((t) => h("th", {}, t))),
        ),
        tbody,
      ),
      empty,
    ),
  );

  function syncHash() {
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (workflow.value.trim()) q.set("workflow", workflow.value.trim());
    const text = q.toString();
    history.replaceState(null, "", `#/${text ? "?" + text : ""}`);
  }

  function row(run) {
    return h(
      "tr",
      { "data-run-id": run.id, "data-status": run.status },
      h("td", {}, badge(run.status)),
      h(
        "td",
        { class: "wf" },
        run.workflow,
        run.error
          ? h("div", { class: "row-error", title: run.error }, run.failureClass ? `${run.failureClass}: ` : "", run.error)
          : null,
      ),
      h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(run.id)}` }, run.id)),
      h("td", { class: "num" }, run.attempt),
      h("td", {}, timeEl(run.createdAt)),
      h("td", { title: run.updatedAt, class: "ago" }, ago(run.updatedAt)),
    );
  }

  function render(runs) {
    const seen = new Set();
    let before = null;
    for (let i = runs.length - 1; i >= 0; i--) {
      const run = runs[i];
      seen.add(run.id);
      const key = JSON.stringify(run);
      let entry = rows.get(run.id);
      if (!entry || entry.key !== key) {
        const tr = row(run);
        if (!entry && !first) tr.classList.add("fresh");
        if (entry) entry.tr.replaceWith(tr);
        entry = { tr, key };
        rows.set(run.id, entry);
      } else {
        const cell = entry.tr.querySelector(".ago"); // only the clock moved: touch that cell
        const text = ago(run.updatedAt);
        if (cell.textContent !== text) cell.textContent = text;
      }
      if (entry.tr.nextSibling !== before || entry.tr.parentNode !== tbody) tbody.insertBefore(entry.tr, before);
      before = entry.tr;
    }
    for (const [id, entry] of rows) {
      if (!seen.has(id)) {
        entry.tr.remove();
        rows.delete(id);
      }
    }
    empty.hidden = runs.length > 0;
    for (const run of runs) {
      if (!workflows.has(run.workflow)) {
        workflows.add(run.workflow);
        names.append(h("option", { value: run.workflow }));
      }
    }
  }

  async function refresh() {
    if (stopped) return;
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (workflow.value.trim()) q.set("workflow", workflow.value.trim());
    q.set("limit", String(LIMIT));
    try {
      const data = await api(`/studio/api/runs?${q}`);
      if (stopped) return;
      render(data.runs);
      first = false;
      error.hidden = true;
      const n = data.runs.length;
      live.textContent = n >= LIMIT ? `live · newest ${LIMIT}` : `live · ${n} run${n === 1 ? "" : "s"}`;
      live.classList.remove("stale");
    } catch (err) {
      if (stopped) return;
      error.hidden = false;
      error.textContent = `Could not load runs: ${err.message}`;
      live.textContent = "not updating";
      live.classList.add("stale");
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  function restart() {
    syncHash();
    clearTimeout(timer);
    for (const entry of rows.values()) entry.tr.remove();
    rows.clear();
    first = true;
    refresh();
  }
  status.addEventListener("change", restart);
  let typing = null;
  workflow.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(restart, 250);
  });

  refresh();
  return {
    unmount() {
      stopped = true;
      clearTimeout(timer);
      clearTimeout(typing);
      clear(root);
    },
  };
}
