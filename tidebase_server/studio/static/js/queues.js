// Queues (depth, running, caps) and schedules, refreshed every two seconds.

import { api } from "./api.js";
import { clear, h, timeEl } from "./dom.js";

const POLL_MS = 2000;

function table(id, headers, rows, emptyText) {
  if (rows.length === 0) return h("p", { class: "muted", id }, emptyText);
  return h(
    "table",
    { class: "table", id },
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}

export function mountQueues(root) {
  let stopped = false;
  let timer = null;
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const queues = h("div", { class: "card table-card" });
  const schedules = h("div", { class: "card table-card" });
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Queues")),
    error,
    queues,
    h("div", { class: "page-head" }, h("h1", {}, "Schedules")),
    schedules,
  );

  function cap(value, unit) {
    return value === null || value === undefined ? h("span", { class: "muted" }, "no cap") : `${value}${unit}`;
  }

  function render(data) {
    clear(queues).append(
      table(
        "queues-table",
        ["Queue", "Depth", "Running", "Concurrency cap", "Rate cap", "Invoke URL"],
        data.queues.map((q) =>
          h(
            "tr",
            { "data-queue": q.name },
            h("td", { class: "mono" }, q.name),
            h("td", { class: "num depth" }, q.depth),
            h("td", { class: "num" }, q.running),
            h("td", {}, cap(q.concurrency, "")),
            h("td", {}, cap(q.ratePerMinute, " / min")),
            h("td", { class: "mono clip" }, q.invokeUrl || "—"),
          ),
        ),
        "No queues yet: enqueue a run (tide.enqueue) or configure one (tidebase queues configure).",
      ),
    );
    clear(schedules).append(
      table(
        "schedules-table",
        ["Schedule", "Cron (UTC)", "Workflow", "Queue", "Enabled", "Next fire", "Last fired"],
        data.schedules.map((sc) =>
          h(
            "tr",
            { "data-schedule": sc.name },
            h("td", { class: "mono" }, sc.name),
            h("td", { class: "mono" }, sc.cron),
            h("td", {}, sc.workflow),
            h("td", { class: "mono" }, sc.queue),
            h("td", {}, sc.enabled ? "yes" : h("span", { class: "muted" }, "paused")),
            h("td", {}, timeEl(sc.nextFireAt)),
            h("td", {}, timeEl(sc.lastFiredAt)),
          ),
        ),
        "No schedules (tidebase schedules set).",
      ),
    );
  }

  async function refresh() {
    if (stopped) return;
    try {
      const data = await api("/studio/api/queues");
      if (stopped) return;
      error.hidden = true;
      render(data);
    } catch (err) {
      if (stopped) return;
      error.hidden = false;
      error.textContent = `Could not load queues: ${err.message}`;
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  refresh();
  return {
    unmount() {
      stopped = true;
      clearTimeout(timer);
      clear(root);
    },
  };
}
