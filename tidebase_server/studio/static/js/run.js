// One run: its timeline, gates (approve/reject), usage chart, live state and versions, child
// runs, and the event stream, live over EventSource. Every event refreshes the page's data.

import { ApiError, AuthRequired, api, eventsUrl, runPath } from "./api.js";
import { actor, session } from "./session.js";
import { usageChart } from "./chart.js";
import { TERMINAL, badge, clear, fmtInt, fmtUsd, h, pretty, section, shortHash, timeEl } from "./dom.js";

const POLL_MS = 3000;

/** A shell word: as is when safe, else single-quoted (for the command lines Studio suggests). */
function sh(word) {
  return /^[A-Za-z0-9_.\/:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}
const MAX_EVENTS = 500;

export function mountRun(root, runId) {
  let stopped = false;
  let source = null;
  let poll = null;
  let pending = null;
  let data = null;
  let confirming = false;
  let cancelReason = "";
  let versionsOpen = false;
  const events = [];

  const head = h("div", { class: "run-head", id: "run-head" });
  const notice = h("p", { class: "error", role: "alert", id: "run-error", hidden: true });
  const gates = h("div", { id: "gates" });
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const usage = h("div", { id: "usage" });
  const state = h("div", { id: "state" });
  const children = h("div", { id: "children" });
  const streamState = h("span", { class: "live", id: "stream-state" }, "connecting…");
  const eventList = h("ol", { class: "events", id: "events", reversed: true });

  root.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Runs")),
    head,
    notice,
    h(
      "div",
      { class: "run-grid" },
      h(
        "div",
        { class: "col" },
        section("Gates", { id: "gates-card", hidden: true }, gates),
        section("Timeline", { id: "timeline-card" }, timeline),
        section("Events", { id: "events-card" }, h("div", { class: "card-tools" }, streamState), eventList),
      ),
      h(
        "div",
        { class: "col" },
        section("Usage and cost", { id: "usage-card" }, usage),
        section("Live state", { id: "state-card" }, state),
        section("Child runs", { id: "children-card" }, children),
      ),
    ),
  );

  function showError(message) {
    notice.hidden = !message;
    notice.textContent = message || "";
  }

  // ----- header and cancel -----
  function renderHead(run, parked) {
    const terminal = TERMINAL.has(run.status);
    const actions = h("div", { class: "actions" });
    if (!terminal && confirming) {
      const reason = h("input", {
        id: "cancel-reason",
        type: "text",
        placeholder: "reason (optional)",
        maxlength: 500,
        "aria-label": "Reason",
        oninput: (e) => (cancelReason = e.target.value),
      });
      reason.value = cancelReason; // survives the header being redrawn by a refresh
      actions.append(
        h("span", { class: "confirm-text" }, "Cancel this run? Its worker stops at the next step."),
        reason,
        h("button", { class: "danger", id: "cancel-confirm", type: "button", onclick: () => cancelRun(reason.value.trim()) }, "Yes, cancel run"),
        h("button", { type: "button", id: "cancel-keep", onclick: () => setConfirming(false) }, "Keep running"),
      );
    } else if (!terminal) {
      actions.append(
        h("button", { class: "danger-outline", id: "cancel-run", type: "button", onclick: () => setConfirming(true) }, "Cancel run"),
      );
    }
    clear(head).append(
      h(
        "div",
        { class: "title" },
        h("h1", {}, run.workflow, " ", badge(run.status)),
        h(
          "p",
          { class: "meta" },
          h("span", { class: "mono", id: "run-id" }, run.id),
          h("span", {}, `attempt ${run.attempt}`),
          h("span", {}, "created ", timeEl(run.createdAt)),
          h("span", {}, "updated ", timeEl(run.updatedAt)),
          run.completedAt ? h("span", {}, "ended ", timeEl(run.completedAt)) : null,
        ),
        run.error
          ? h("p", { class: "run-failure" }, run.failureClass ? `${run.failureClass}: ` : "", run.error)
          : null,
        run.status === "failed" && parked
          ? h(
              "p",
              { class: "hint" },
              "Parked for review: settle the step marked below, then re-invoke the run (rerun your code, or ",
              h("code", {}, `tidebase runs recover ${sh(run.id)}`),
              " for a worker).",
            )
          : null,
        run.status === "failed" && !parked
          ? h(
              "p",
              { class: "hint" },
              "Put it back for a worker with ",
              h("code", {}, `tidebase runs recover ${sh(run.id)}`),
              " (or rerun your code with the same run id).",
            )
          : null,
        run.inputPreview ? h("p", { class: "preview" }, h("b", {}, "input "), h("code", {}, run.inputPreview)) : null,
        run.resultPreview ? h("p", { class: "preview" }, h("b", {}, "result "), h("code", {}, run.resultPreview)) : null,
      ),
      actions,
    );
  }

  function setConfirming(value) {
    confirming = value;
    if (data) showHead(data);
  }

  async function cancelRun(reason) {
    const who = actor();
    try {
      await api(`${runPath(runId)}/cancel`, {
        method: "POST",
        body: { reason: reason || "cancelled in Studio", actor: who || null },
      });
      confirming = false;
      cancelReason = "";
      showError("");
    } catch (err) {
      if (!(err instanceof AuthRequired)) showError(`Cancel failed: ${err.message}`);
    }
    refresh();
  }

  // ----- gates -----
  async function decide(gate, decision, form) {
    const who = actor();
    if (!who) {
      form.querySelector(".gate-msg").textContent = "Enter your name in “Acting as” (top right) first: it is recorded as the gate's actor.";
      document.getElementById("actor").focus();
      return;
    }
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      await api(`${runPath(runId)}/gates/${encodeURIComponent(gate.id)}/resolve`, {
        method: "POST",
        body: { decision, actor: who },
      });
    } catch (err) {
      if (err instanceof AuthRequired) return;
      form.querySelector(".gate-msg").textContent =
        err instanceof ApiError && err.code === "gate_already_resolved"
          ? `Already decided: ${err.message}`
          : `Could not ${decision === "approved" ? "approve" : "reject"}: ${err.message}`;
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
    refresh();
  }

  function renderGates(list, run) {
    document.getElementById("gates-card").hidden = list.length === 0;
    clear(gates);
    const open = [...list].sort((a, b) => (a.status === "pending" ? 0 : 1) - (b.status === "pending" ? 0 : 1));
    for (const gate of open) {
      const item = h(
        "div",
        { class: `gate gate-${gate.status}`, "data-gate": gate.name },
        h("div", { class: "gate-line" }, h("b", {}, gate.name), " ", badge(gate.status)),
        h("p", { class: "gate-prompt" }, gate.prompt),
        gate.data && Object.keys(gate.data).length ? h("pre", { class: "json small" }, pretty(gate.data)) : null,
      );
      if (gate.status === "pending" && !TERMINAL.has(run.status)) {
        const form = h("div", { class: "gate-actions" });
        if (session.auth) {
          form.append(
            h("button", { class: "approve", type: "button", onclick: () => decide(gate, "approved", form) }, "Approve"),
            h("button", { class: "reject", type: "button", onclick: () => decide(gate, "rejected", form) }, "Reject"),
          );
        } else {
          form.append(
            h("button", { class: "approve", type: "button", disabled: true }, "Approve"),
            h("button", { class: "reject", type: "button", disabled: true }, "Reject"),
          );
        }
        form.append(
          h(
            "span",
            { class: "gate-msg muted" },
            session.auth
              ? `as ${actor() || "(enter your name above)"}`
              : `Deciding a gate needs the API key: start the server with TIDEBASE_API_KEY, or run ` +
                `tidebase gates approve ${sh(run.id)} ${sh(gate.name)} --actor NAME`,
          ),
        );
        item.append(form);
      } else if (gate.status !== "pending") {
        item.append(
          h(
            "p",
            { class: "muted gate-decided" },
            `${gate.status} by ${gate.actor || "someone"} at `,
            timeEl(gate.resolvedAt),
          ),
        );
      }
      gates.append(item);
    }
  }

  // ----- timeline -----
  function renderTimeline(steps, run) {
    clear(timeline);
    if (steps.length === 0) {
      timeline.append(h("li", { class: "muted empty" }, "No step has checkpointed yet."));
    }
    for (const step of steps) {
      timeline.append(
        h(
          "li",
          { class: `step step-${step.status}`, "data-step": step.name, "data-status": step.status },
          h("span", { class: "dot", "aria-hidden": "true" }),
          h(
            "div",
            { class: "step-body" },
            h(
              "div",
              { class: "step-line" },
              h("b", { class: "step-name" }, step.name),
              badge(step.status),
              h("span", { class: "muted", title: "the run attempt that wrote this checkpoint" }, `attempt ${step.attempt}`),
              step.resumeDecision
                ? h("span", { class: "decision", title: "resume decision" }, step.resumeDecision)
                : null,
              h("span", { class: "spacer" }),
              timeEl(step.updatedAt),
            ),
            h(
              "div",
              { class: "step-meta" },
              h("span", { title: step.inputHash || "no input hash" }, "input ", h("code", {}, shortHash(step.inputHash))),
            ),
            step.outputPreview !== null
              ? h("pre", { class: "output", title: "output (preview)" }, step.outputPreview)
              : null,
            step.error ? h("p", { class: "error small" }, step.error) : null,
            step.status === "manual_review" && !TERMINAL.has(run.status)
              ? h(
                  "p",
                  { class: "hint" },
                  "Parked for review: it may have taken effect. Run it again with ",
                  h("code", {}, `tidebase runs retry-step ${sh(run.id)} ${sh(step.name)}`),
                  ", or record its result with ",
                  h("code", {}, `tidebase runs complete-step ${sh(run.id)} ${sh(step.name)} --output JSON`),
                  ".",
                )
              : null,
          ),
        ),
      );
    }
    if (!TERMINAL.has(run.status) && run.status !== "failed") {
      timeline.append(
        h(
          "li",
          { class: `step step-next`, "aria-label": "next" },
          h("span", { class: "dot", "aria-hidden": "true" }),
          h("div", { class: "step-body muted" }, run.status === "waiting" ? "waiting at a gate…" : `${run.status}…`),
        ),
      );
    }
  }

  // ----- usage -----
  // The budget governing the run: each cap with what the run tree spent against it.
  function budgetLine(budget) {
    if (!budget) return null;
    const spent = { usd: budget.spend.usd, tokens: budget.spend.tokens,
      input_tokens: budget.spend.input_tokens, output_tokens: budget.spend.output_tokens };
    const parts = Object.entries(budget.caps).map(([cap, limit]) => {
      const used = Number(spent[cap] ?? 0);
      const pct = Number(limit) > 0 ? Math.round((used / Number(limit)) * 100) : 100;
      const label = cap === "usd" ? `${fmtUsd(used)} of ${fmtUsd(Number(limit))}`
        : `${fmtInt(used)} of ${fmtInt(Number(limit))} ${cap.replace("_", " ")}`;
      return h("span", { class: pct >= 100 ? "budget-cap over" : pct >= 80 ? "budget-cap warn" : "budget-cap" },
        `${label} (${pct} %)`);
    });
    const holder = budget.holder && budget.holder !== runId ? ` (budget of ${budget.holder})` : "";
    return h("p", { class: "budget", id: "budget" }, h("b", {}, "Budget"), holder, ": ", ...parts);
  }
  function renderUsage(u, budget) {
    clear(usage);
    if (u.calls === 0) {
      usage.append(...[budgetLine(budget), h("p", { class: "muted" }, "No usage recorded.")].filter(Boolean));
      return;
    }
    const parts = [
      h(
        "p",
        { class: "usage-total", id: "usage-total" },
        h("b", {}, `${fmtInt(u.inputTokens + u.outputTokens)} tokens`),
        ` (${fmtInt(u.inputTokens)} in · ${fmtInt(u.outputTokens)} out) · `,
        h("b", {}, u.unpricedCalls === u.calls ? "no price" : fmtUsd(u.costUsd)),
        ` · ${u.calls} call${u.calls === 1 ? "" : "s"}`,
        u.unpricedCalls ? h("span", { class: "muted" }, ` (${u.unpricedCalls} without a price)`) : null,
      ),
      budgetLine(budget),
      usageChart(u.byStep, { title: "By step", id: "usage-by-step" }),
      usageChart(u.byModel, { title: "By model", id: "usage-by-model" }),
      u.byAgent.length ? usageChart(u.byAgent, { title: "By agent", id: "usage-by-agent" }) : null,
      u.byAttempt.length > 1
        ? usageChart(u.byAttempt, { title: "By attempt", id: "usage-by-attempt" })
        : null,
    ];
    usage.append(...parts.filter(Boolean));
  }

  // ----- state -----
  function renderState(st, versions) {
    clear(state);
    if (st.version === null) {
      state.append(h("p", { class: "muted" }, "No live state yet."));
      return;
    }
    state.append(
      h("p", { class: "muted" }, `version ${st.version}`),
      h("pre", { class: "json", id: "state-value" }, pretty(st.value)),
      h(
        "details",
        { class: "versions", open: versionsOpen, ontoggle: (e) => (versionsOpen = e.target.open) },
        h("summary", {}, `${versions.length} version${versions.length === 1 ? "" : "s"}`),
        h(
          "table",
          { class: "table compact" },
          h("tbody", {}, versions.map((v) =>
            h(
              "tr",
              {},
              h("td", { class: "num" }, `v${v.version}`),
              h("td", {}, v.labels.map((l) => h("span", { class: "tag" }, l))),
              h("td", { class: "mono clip" }, v.preview),
              h("td", {}, timeEl(v.createdAt)),
            ),
          )),
        ),
      ),
    );
  }

  // ----- children -----
  function tree(nodes) {
    return h(
      "ul",
      { class: "tree" },
      nodes.map((node) =>
        h(
          "li",
          { "data-run-id": node.run.id },
          badge(node.run.status),
          " ",
          h("a", { href: `#/runs/${encodeURIComponent(node.run.id)}` }, node.run.workflow),
          " ",
          h("span", { class: "mono muted" }, node.run.id),
          node.children.length ? tree(node.children) : null,
        ),
      ),
    );
  }

  function renderChildren(nodes) {
    clear(children);
    children.append(nodes.length ? tree(nodes) : h("p", { class: "muted" }, "No child runs."));
  }

  // ----- events -----
  function summarize(payload) {
    if (payload === null || payload === undefined) return "";
    const text = JSON.stringify(payload);
    return text.length > 160 ? text.slice(0, 159) + "…" : text;
  }

  function addEvent(event) {
    if (events.length && events[events.length - 1].seq >= event.seq) return;
    events.push(event);
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
    eventList.prepend(
      h(
        "li",
        { "data-seq": event.seq, "data-type": event.type, class: `ev ev-${event.type.split(".")[0]}` },
        h("span", { class: "seq" }, `#${event.seq}`),
        h("span", { class: "ev-type" }, event.type),
        timeEl(event.createdAt),
        h("code", { class: "ev-payload" }, summarize(event.payload)),
      ),
    );
    while (eventList.children.length > MAX_EVENTS) eventList.lastChild.remove();
  }

  let ended = false;
  let streamStarted = false;
  function connect() {
    const last = events.length ? events[events.length - 1].seq : 0;
    const es = new EventSource(eventsUrl(runId, last));
    source = es;
    es.onopen = () => {
      streamState.textContent = "live";
      streamState.classList.remove("stale");
    };
    es.onmessage = (message) => {
      const event = JSON.parse(message.data);
      addEvent(event);
      if (event.type === "run.completed" || event.type === "run.cancelled") {
        es.close(); // the stream ends here; do not let EventSource reconnect
        ended = true;
        streamState.textContent = `ended (${event.type})`;
        streamState.classList.add("stale");
      }
      scheduleRefresh();
    };
    es.onerror = () => {
      if (stopped || source !== es) return;
      streamState.classList.add("stale");
      if (es.readyState === EventSource.CLOSED) {
        // refused (e.g. 401, 404): EventSource gives up; try again later, after what we have
        streamState.textContent = "disconnected; retrying…";
        source = null;
        setTimeout(() => {
          if (!stopped && !ended && !source && !document.hidden) connect();
        }, 2000);
      } else {
        streamState.textContent = "reconnecting…";
      }
    };
  }

  // ----- data -----
  function scheduleRefresh() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      refresh();
    }, 80);
  }

  function showHead(d) {
    const parked = d.steps.filter((st) => st.status === "manual_review").length;
    // While the cancel confirmation is open only a status change redraws it (keeps the focus).
    const key = confirming ? [d.run.status, parked] : [d.run, parked];
    changed("head", [key, confirming], () => renderHead(d.run, parked));
  }

  const shown = new Map(); // section -> the JSON it was last rendered from
  function changed(name, value, render) {
    const text = JSON.stringify(value);
    if (shown.get(name) === text) return;
    shown.set(name, text);
    render();
  }

  let inflight = false;
  let again = false;
  async function refresh() {
    if (stopped) return;
    if (inflight) {
      again = true;
      return;
    }
    inflight = true;
    try {
      data = await api(`/studio/api${runPath(runId)}`);
      if (stopped) return;
      if (!notice.textContent.startsWith("Cancel failed")) showError("");
      const run = data.run;
      if (!source && !ended && !document.hidden && !streamStarted) {
        streamStarted = true;
        connect();
      }
      showHead(data);
      changed("gates", [data.gates, run.status, actor()], () => renderGates(data.gates, run));
      changed("timeline", [data.steps, run.status], () => renderTimeline(data.steps, run));
      changed("usage", { usage: data.usage, budget: data.budget }, () =>
        renderUsage(data.usage, data.budget),
      );
      changed("state", [data.state, data.stateVersions], () => renderState(data.state, data.stateVersions));
      changed("children", data.children, () => renderChildren(data.children));
      document.title = `${data.run.workflow} · ${data.run.status} · Tidebase Studio`;
    } catch (err) {
      if (!stopped && !(err instanceof AuthRequired)) {
        if (err.status === 404) {
          showError(`No run ${runId} in this database.`);
          stopped = true; // nothing to poll or stream
          streamState.textContent = "no stream";
          return;
        }
        showError(`Could not load the run: ${err.message}`);
      }
    } finally {
      inflight = false;
    }
    if (again) {
      again = false;
      refresh();
    }
  }

  async function loop() {
    await refresh();
    // A completed or cancelled run whose stream has ended changes no more: stop asking.
    const over = ended && data && TERMINAL.has(data.run.status);
    if (!stopped && !over) poll = setTimeout(loop, POLL_MS);
  }

  // A hidden tab gives its stream back (a browser opens only ~6 connections to one server),
  // and picks up after the last event it has when shown again.
  function onVisibility() {
    if (stopped || ended) return;
    if (document.hidden) {
      if (source) source.close();
      source = null;
      streamState.textContent = "paused (tab hidden)";
      streamState.classList.add("stale");
    } else if (!source && streamStarted) {
      connect();
      refresh();
    }
  }
  document.addEventListener("visibilitychange", onVisibility);

  // The gate forms say who decides ("as alice"): redrawn as the name is typed, not at the next
  // refresh, which would also replace the buttons under a click on its way.
  const actorField = document.getElementById("actor");
  function onActor() {
    if (data) changed("gates", [data.gates, data.run.status, actor()], () => renderGates(data.gates, data.run));
  }
  actorField.addEventListener("input", onActor);

  loop(); // the event stream opens once the run is known to exist (see refresh)
  return {
    unmount() {
      stopped = true;
      document.removeEventListener("visibilitychange", onVisibility);
      actorField.removeEventListener("input", onActor);
      clearTimeout(poll);
      clearTimeout(pending);
      if (source) source.close();
      document.title = "Tidebase Studio";
      clear(root);
    },
  };
}
