"""Every SQL statement Tidebase sends, in one place.

Values always travel as parameters; the only text substituted is the schema name, validated as
an identifier and quoted by psycopg. ``{s}`` marks it.

The run row is the hub of the hot path. A worker's write is fenced by updating that row
``WHERE owner_token = <its token> AND status = 'running'`` in the same statement as the write:
a takeover or a cancel makes the update (and therefore the write) match nothing. The same
update hands out the next ``seq`` of the run's event log, which keeps the log gap-free.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import TypeVar

from psycopg import sql

__all__ = ["Queries", "channel", "channel_prefix", "fill_schema", "listen_statement"]

_LEASE = "now() + make_interval(secs => %(lease)s)"
# A worker may write while it holds the lease and the run is live ('waiting': a gate is open).
_FENCE = "run_id = %(run_id)s AND owner_token = %(token)s AND status IN ('running', 'waiting')"
_WATCHED = "coalesce(watched_until > now(), false) AS watched"
# Tell listeners (subscribers, a worker waiting at a gate) that entry r.last_seq was written.
_NOTIFY = "CASE WHEN r.watched THEN pg_notify({c} || md5(%(run_id)s), r.last_seq::text) END"

_CLAIM_RUN = f"""
WITH claimed AS (
    INSERT INTO {{s}}.runs AS r (
        run_id, workflow_name, status, input, input_hash, metadata, attempt, last_seq,
        owner_token, owner_host, owner_pid, owner_started, lease_expires_at, budget,
        budget_holders)
    VALUES (
        %(run_id)s, %(workflow)s, 'running', %(input)s, %(input_hash)s, %(metadata)s, 1, 1,
        %(token)s, %(host)s, %(pid)s, %(started)s, {_LEASE}, %(budget)s, {{holders}})
    ON CONFLICT (run_id) DO UPDATE SET
        status = 'running', attempt = r.attempt + 1, last_seq = r.last_seq + 1,
        owner_token = EXCLUDED.owner_token, owner_host = EXCLUDED.owner_host,
        owner_pid = EXCLUDED.owner_pid, owner_started = EXCLUDED.owner_started,
        lease_expires_at = EXCLUDED.lease_expires_at,
        error = NULL, failure_class = NULL, updated_at = now()
    WHERE r.workflow_name = EXCLUDED.workflow_name
      AND r.status NOT IN ('completed', 'cancelled')
      AND (NOT %(check_input)s OR r.input_hash = EXCLUDED.input_hash)
      AND (r.owner_token IS NULL OR r.lease_expires_at < now()
           OR r.owner_token = %(void_token)s)
    RETURNING r.attempt, r.last_seq, (r.xmax = 0) AS created,
              CASE WHEN %(want_input)s THEN r.input END AS input,
              coalesce(r.watched_until > now(), false) AS watched, r.budget_holders
), started AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, write_id)
    SELECT %(run_id)s, c.last_seq, 'run.started', jsonb_build_object('attempt', c.attempt),
           %(write_id)s
    FROM claimed c
)
SELECT c.attempt, c.created, c.input, c.last_seq, c.budget_holders,
       CASE WHEN c.watched THEN pg_notify({{c}} || md5(%(run_id)s), c.last_seq::text) END
FROM claimed c
"""

# A top-level run: governed by its own budget if it has one (holders computed by the caller).
CLAIM_RUN = _CLAIM_RUN.replace("{holders}", "%(holders)s::text[]")
# A child run, when created, also draws from every budget its parent draws from (read from the
# parent's row, so a budget set on the parent since it started counts too).
CLAIM_CHILD_RUN = _CLAIM_RUN.replace(
    "{holders}",
    """nullif(coalesce(%(holders)s::text[], '{}') || coalesce(
            (SELECT p.budget_holders FROM {s}.runs p WHERE p.run_id = %(parent)s), '{}'), '{}')""",
)

# Why a claim matched nothing: the run as it is (completed, locked, another workflow …).
CLAIM_REFUSED = """
SELECT attempt, workflow_name, status, input_hash,
       CASE WHEN status = 'completed' THEN result END, result_type,
       owner_token, owner_host, owner_pid, owner_started,
       extract(epoch FROM lease_expires_at - now())::float8, cancel_reason
FROM {s}.runs WHERE run_id = %(run_id)s
"""

# Everything a resumed run replays, in one round trip: step checkpoints, and the keys of the
# workflow-body operations earlier attempts did (their event rows).
LOAD_CHECKPOINTS = """
SELECT step_key, status, input_hash, output, error, resume_decision, attempt, seq, output_type
FROM {s}.steps WHERE run_id = %(run_id)s
UNION ALL
SELECT op_key, 'op', NULL, NULL, NULL, NULL, NULL, seq, NULL
FROM {s}.events WHERE run_id = %(run_id)s AND op_key IS NOT NULL
"""

_CHECKPOINT = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1{{bump}} WHERE {_FENCE}
    RETURNING last_seq, {_WATCHED}
), ins AS (
    INSERT INTO {{s}}.steps AS st (
        run_id, step_key, seq, status, input_hash, output, output_type, attempt,
        resume_decision, idempotency_key)
    SELECT %(run_id)s, %(key)s, r.last_seq, 'completed', %(input_hash)s, %(output)s,
           %(output_type)s, %(attempt)s, %(decision)s, %(idempotency_key)s
    FROM r
    {{conflict}}
    RETURNING 1
){{entries}}
SELECT {_NOTIFY} FROM r, ins
"""

_REPLACE = """ON CONFLICT (run_id, step_key) DO UPDATE SET
        seq = EXCLUDED.seq, status = 'completed', input_hash = EXCLUDED.input_hash,
        output = EXCLUDED.output, output_type = EXCLUDED.output_type, error = NULL,
        attempt = EXCLUDED.attempt,
        resume_decision = EXCLUDED.resume_decision,
        idempotency_key = EXCLUDED.idempotency_key, updated_at = now()"""

# A model call's step writes its usage rows in the same statement as the checkpoint.
_USAGE = """, u AS (
    INSERT INTO {s}.usage_records (
        run_id, step_name, attempt, kind, provider, model, input_tokens, output_tokens,
        total_tokens, cost_usd, cost_source, label, metadata, agent, quantity, unit)
    SELECT %(run_id)s, %(key)s, %(attempt)s, x.kind, x.provider, x.model, x.input_tokens,
           x.output_tokens, x.total_tokens, x.cost_usd, x.cost_source, x.label, x.metadata,
           x.agent, x.quantity, x.unit
    FROM r, jsonb_to_recordset(%(usage)s) AS x(
        ord int, kind text, provider text, model text, input_tokens bigint, output_tokens bigint,
        total_tokens bigint, cost_usd numeric, cost_source text, label text, metadata jsonb,
        agent text, quantity numeric, unit text)
    ORDER BY x.ord
)"""

# Log entries written with the checkpoint (the usage.recorded entries of its model calls, an
# operation's own "ended" entry) take the seqs just before the checkpoint's.
_ENTRIES = """, ue AS (
    INSERT INTO {s}.events (run_id, seq, type, payload)
    SELECT %(run_id)s, r.last_seq - %(n_entries)s + x.ord, x.type, x.payload
    FROM r, jsonb_to_recordset(%(entries)s) AS x(ord int, type text, payload jsonb)
)"""


def _checkpoint(*, replace: bool, entries: bool) -> str:
    return (
        _CHECKPOINT.replace("{bump}", " + %(n_entries)s" if entries else "")
        .replace("{conflict}", _REPLACE if replace else "")
        .replace("{entries}", _USAGE + _ENTRIES if entries else "")
    )


# The usual case: the key has no row yet (a plain insert is cheaper than an upsert).
WRITE_CHECKPOINT = _checkpoint(replace=False, entries=False)
# The key has a row from an earlier try (failed, or an intent record): replace it.
REWRITE_CHECKPOINT = _checkpoint(replace=True, entries=False)
# With usage rows and log entries (either list may be empty).
WRITE_CHECKPOINT_WITH_ENTRIES = _checkpoint(replace=False, entries=True)
REWRITE_CHECKPOINT_WITH_ENTRIES = _checkpoint(replace=True, entries=True)

# A step that records its intent (unsafe to repeat) or a failure: the step row holds its
# current state, and an event row its place in the log.
_STEP_STATE = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1 WHERE {_FENCE} RETURNING last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, write_id)
    SELECT %(run_id)s, r.last_seq, %(event)s, %(payload)s, %(write_id)s FROM r
), st AS (
    INSERT INTO {{s}}.steps AS st (
        run_id, step_key, status, input_hash, error, attempt, resume_decision, idempotency_key)
    SELECT %(run_id)s, %(key)s, %(status)s, %(input_hash)s, %(error)s, %(attempt)s,
           %(decision)s, %(idempotency_key)s
    FROM r
    ON CONFLICT (run_id, step_key) DO UPDATE SET
        status = EXCLUDED.status, input_hash = EXCLUDED.input_hash, error = EXCLUDED.error,
        attempt = EXCLUDED.attempt, resume_decision = EXCLUDED.resume_decision,
        idempotency_key = EXCLUDED.idempotency_key, updated_at = now()
    RETURNING 1
)
SELECT {_NOTIFY} FROM r, st
"""

WRITE_STEP_STATE = _STEP_STATE

_FINISH_RUN = f"""
WITH r AS (
    UPDATE {{s}}.runs SET
        {{set}}, owner_token = NULL, lease_expires_at = NULL, last_seq = last_seq + 1,
        updated_at = now()
    WHERE {_FENCE}
    RETURNING last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, write_id)
    SELECT %(run_id)s, r.last_seq, {{event}}, %(payload)s, %(write_id)s FROM r
)
SELECT {_NOTIFY} FROM r
"""

COMPLETE_RUN = _FINISH_RUN.replace(
    "{set}",
    "status = 'completed', result = %(result)s, result_type = %(result_type)s, "
    "completed_at = now()",
).replace("{event}", "'run.completed'")

# A new run that ends before its first durable operation (its claim was deferred, DESIGN §6):
# created completed in one statement and one commit, its row also its log's run.started and
# run.completed entries (log_in_row, read by _RUN_LOG): what the claim and the completion
# would have left, as the log reads. No listener can watch a run that did not exist, so no
# NOTIFY.
COMPLETE_NEW_RUN = """
INSERT INTO {s}.runs (
    run_id, workflow_name, status, input, input_hash, metadata, attempt, last_seq, log_in_row,
    owner_host, owner_pid, owner_started, budget, budget_holders, result, result_type,
    completed_at)
VALUES (
    %(run_id)s, %(workflow)s, 'completed', %(input)s, %(input_hash)s, %(metadata)s, 1, 2, true,
    %(host)s, %(pid)s, %(started)s, %(budget)s, %(holders)s::text[], %(result)s,
    %(result_type)s, now())
ON CONFLICT (run_id) DO NOTHING
RETURNING 1
"""

# After a lost connection: did that statement commit? A new run's id was generated by this
# process, so its row written by this process is ours.
FIND_NEW_RUN = """
SELECT 1 FROM {s}.runs
WHERE run_id = %(run_id)s AND log_in_row
  AND owner_host = %(host)s AND owner_pid = %(pid)s AND owner_started = %(started)s
"""

FAIL_RUN = _FINISH_RUN.replace(
    "{set}", "status = 'failed', error = %(error)s, failure_class = %(failure_class)s"
).replace("{event}", "'run.failed'")

# A gate with wait=False: the run waits for a decision with no worker attached.
PARK_RUN = _FINISH_RUN.replace("{set}", "status = 'waiting'").replace("{event}", "'run.parked'")

# After a cancel the status stays 'cancelled'; the worker only gives the lease back.
RELEASE_RUN = """
UPDATE {s}.runs SET owner_token = NULL, lease_expires_at = NULL, updated_at = now()
WHERE run_id = %(run_id)s AND owner_token = %(token)s
"""

FENCE_STATE = """
SELECT status, owner_token, cancel_reason FROM {s}.runs WHERE run_id = %(run_id)s
"""

RENEW_LEASES = f"""
UPDATE {{s}}.runs AS r SET lease_expires_at = {_LEASE}
FROM unnest(%(run_ids)s::text[], %(tokens)s::uuid[]) AS h(run_id, token)
WHERE r.run_id = h.run_id AND r.owner_token = h.token AND r.status IN ('running', 'waiting')
RETURNING r.run_id
"""

LEASE_STATES = """
SELECT run_id, status, owner_token, cancel_reason FROM {s}.runs WHERE run_id = ANY(%(run_ids)s)
"""

# One-way, and down the run tree: a cancelled parent's unfinished child runs are cancelled
# with it (each gets its own run.cancelled event), so none is left running for nobody.
CANCEL_RUN = """
WITH RECURSIVE tree AS (
    SELECT %(run_id)s::text AS run_id
    UNION
    SELECT e.child_run_id FROM {s}.run_edges e JOIN tree t ON e.parent_run_id = t.run_id
), r AS (
    UPDATE {s}.runs SET
        status = 'cancelled', last_seq = last_seq + 1, completed_at = now(), updated_at = now(),
        cancel_reason = CASE WHEN run_id = %(run_id)s THEN %(reason)s
                             ELSE 'parent run ' || %(run_id)s || ' was cancelled' END
    WHERE run_id IN (SELECT run_id FROM tree) AND status NOT IN ('completed', 'cancelled')
    RETURNING run_id, last_seq, coalesce(watched_until > now(), false) AS watched
), ev AS (
    INSERT INTO {s}.events (run_id, seq, type, payload)
    SELECT r.run_id, r.last_seq, 'run.cancelled',
           CASE WHEN r.run_id = %(run_id)s THEN %(payload)s
                ELSE %(payload)s || jsonb_build_object('parent_run_id', %(run_id)s::text) END
    FROM r
)
SELECT r.run_id, CASE WHEN r.watched THEN pg_notify({c} || md5(r.run_id), r.last_seq::text) END
FROM r
"""

_RUN_COLUMNS = """
run_id, workflow_name, status, input, result, error, attempt, failure_class, metadata,
created_at, updated_at, completed_at, lease_expires_at, budget_holders
"""

GET_RUN = f"SELECT {_RUN_COLUMNS} FROM {{s}}.runs WHERE run_id = %(run_id)s"

# Filters are optional; the planner folds the constant NULL checks away.
LIST_RUNS = f"""
SELECT {_RUN_COLUMNS} FROM {{s}}.runs
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(workflow)s::text IS NULL OR workflow_name = %(workflow)s)
ORDER BY created_at DESC, run_id
LIMIT %(limit)s
"""

LIST_STEPS = """
SELECT step_key, status, input_hash, output, error, attempt, resume_decision, seq,
       idempotency_key, updated_at
FROM {s}.steps WHERE run_id = %(run_id)s
ORDER BY created_at, step_key
"""

# A run's log, whatever holds each entry: event rows; completed step checkpoints, which carry
# their own seq (step.completed); and a run written in one statement (log_in_row), whose row is
# its run.started (seq 1) and run.completed (seq 2). Every reader of the log reads this; the
# planner pushes a reader's run_id and seq conditions down into each part.
_RUN_LOG = """(
    SELECT run_id, seq, type, payload, created_at FROM {s}.events
    UNION ALL
    SELECT run_id, seq, 'step.completed',
           jsonb_build_object('step', step_key, 'attempt', attempt, 'input_hash', input_hash),
           updated_at
    FROM {s}.steps WHERE status = 'completed'
    UNION ALL
    SELECT r.run_id, x.seq, x.type, jsonb_build_object('attempt', 1),
           CASE x.seq WHEN 1 THEN r.created_at ELSE r.completed_at END
    FROM {s}.runs r, (VALUES (1::bigint, 'run.started'), (2::bigint, 'run.completed'))
                     AS x(seq, type)
    WHERE r.log_in_row
)"""

LIST_EVENTS = f"""
SELECT seq, type, payload, created_at FROM {_RUN_LOG} log
WHERE run_id = %(run_id)s AND seq > %(after_seq)s
ORDER BY seq
LIMIT %(limit)s  -- NULL: all of them
"""

# Any process may append to a run's log (not only its worker): no fence, the run must exist.
# A worker's own events go through the fence (a zombie's are refused); emitted from the workflow
# body they carry an op_key, so a resumed run recognises and skips them.
_APPEND = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1 WHERE {{where}} RETURNING last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, op_key, write_id)
    SELECT %(run_id)s, r.last_seq, %(type)s, %(payload)s, %(op_key)s, %(write_id)s FROM r
)
SELECT r.last_seq, {_NOTIFY} FROM r
"""
APPEND_EVENT = _APPEND.replace("{where}", "run_id = %(run_id)s")
EMIT_EVENT = _APPEND.replace("{where}", _FENCE)

# Operator actions on a parked step run in one transaction that first locks the run row.
LOCK_RUN = """
SELECT status, owner_token, lease_expires_at < now() AS expired, owner_host, owner_pid,
       owner_started, extract(epoch FROM lease_expires_at - now())::float8
FROM {s}.runs WHERE run_id = %(run_id)s FOR UPDATE
"""

GET_STEP = """
SELECT status, input_hash, resume_decision FROM {s}.steps
WHERE run_id = %(run_id)s AND step_key = %(key)s
"""

APPROVE_STEP_RETRY = """
UPDATE {s}.steps SET resume_decision = 'safe_replay', updated_at = now()
WHERE run_id = %(run_id)s AND step_key = %(key)s
"""

RESOLVE_STEP = """
WITH r AS (
    UPDATE {s}.runs SET last_seq = last_seq + 1 WHERE run_id = %(run_id)s RETURNING last_seq
)
UPDATE {s}.steps AS st SET
    status = 'completed', seq = r.last_seq, output = %(output)s, error = NULL,
    resume_decision = 'safe_replay', updated_at = now()
FROM r
WHERE st.run_id = %(run_id)s AND st.step_key = %(key)s
RETURNING st.seq
"""

# -- live state ---------------------------------------------------------------------------------
# The run row's lock orders concurrent updates; the upsert on run_state always applies to the
# latest value, so versions are monotonic and no patch is lost.

_STATE_UPDATE = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1 WHERE {_FENCE} RETURNING last_seq, {_WATCHED}
), cur AS (
    INSERT INTO {{s}}.run_state AS rs (run_id, version, value)
    SELECT %(run_id)s, 1, {{first}} FROM r
    ON CONFLICT (run_id) DO UPDATE SET
        version = rs.version + 1, value = {{next}}, updated_at = now()
    RETURNING rs.version, rs.value
), v AS (
    INSERT INTO {{s}}.state_versions (
        run_id, version, value, seq, reason, importance, metadata, created_by)
    SELECT %(run_id)s, cur.version, cur.value, r.last_seq, %(reason)s, %(importance)s,
           %(metadata)s, %(created_by)s
    FROM r, cur
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, op_key, write_id)
    SELECT %(run_id)s, r.last_seq, 'state.updated',
           jsonb_build_object('version', cur.version, 'value', cur.value), %(op_key)s,
           %(write_id)s
    FROM r, cur
)
SELECT cur.version, {_NOTIFY} FROM r, cur
"""

SET_STATE = _STATE_UPDATE.replace("{first}", "%(value)s").replace("{next}", "EXCLUDED.value")
PATCH_STATE = _STATE_UPDATE.replace("{first}", "{s}.json_merge_patch(NULL, %(value)s)").replace(
    "{next}", "{s}.json_merge_patch(rs.value, %(value)s)"
)

# Label the current version. The row lock on run_state (FOR SHARE) waits for a concurrent
# update and reads its result, so the label lands on the version current at commit.
SAVE_STATE = f"""
WITH cur AS (
    SELECT version FROM {{s}}.run_state WHERE run_id = %(run_id)s FOR SHARE
), r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1
    WHERE {_FENCE} AND EXISTS (SELECT 1 FROM cur) RETURNING last_seq, {_WATCHED}
), lbl AS (
    UPDATE {{s}}.state_versions sv SET labels = array_append(sv.labels, %(label)s)
    FROM cur, r
    WHERE sv.run_id = %(run_id)s AND sv.version = cur.version AND NOT %(label)s = ANY(sv.labels)
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, op_key, write_id)
    SELECT %(run_id)s, r.last_seq, 'state.saved',
           jsonb_build_object('version', cur.version, 'label', %(label)s::text), %(op_key)s,
           %(write_id)s
    FROM r, cur
)
SELECT cur.version, {_NOTIFY} FROM r, cur
"""

GET_STATE = """
SELECT version, value, updated_at FROM {s}.run_state WHERE run_id = %(run_id)s
"""

# The state as a replaying body saw it: the last version written at or before that log seq.
GET_STATE_AT = """
SELECT version, value FROM {s}.state_versions
WHERE run_id = %(run_id)s AND seq <= %(seq)s
ORDER BY version DESC LIMIT 1
"""

# The columns records.state_version reads, in its order.
STATE_VERSION_COLUMNS = (
    "version, value, labels, created_at, reason, importance, metadata, created_by"
)

LIST_STATE_VERSIONS = f"""
SELECT {STATE_VERSION_COLUMNS} FROM {{s}}.state_versions
WHERE run_id = %(run_id)s AND (NOT %(labeled)s OR labels <> '{{}}')
ORDER BY version
"""

# -- gates --------------------------------------------------------------------------------------

_GATE_COLUMNS = """
g.name, g.prompt, g.data, g.status, g.actor, g.payload, g.token, g.created_at, g.resolved_at,
g.run_id
"""

GET_GATE = f"""
SELECT {_GATE_COLUMNS}, r.status, r.owner_token, r.cancel_reason
FROM {{s}}.runs r LEFT JOIN {{s}}.gates g ON g.run_id = r.run_id AND g.name = %(name)s
WHERE r.run_id = %(run_id)s
"""

LIST_GATES = f"""
SELECT {_GATE_COLUMNS} FROM {{s}}.gates g
WHERE (%(status)s::text IS NULL OR g.status = %(status)s)
  AND (%(run_id)s::text IS NULL OR g.run_id = %(run_id)s)
ORDER BY g.created_at, g.run_id, g.name
LIMIT %(limit)s
"""

# Open a gate: the run is 'waiting' from the same transaction on.
OPEN_GATE = f"""
WITH r AS (
    UPDATE {{s}}.runs SET status = 'waiting', last_seq = last_seq + 1, updated_at = now()
    WHERE {_FENCE} RETURNING last_seq, {_WATCHED}
), g AS (
    INSERT INTO {{s}}.gates (run_id, name, prompt, data, status, token)
    SELECT %(run_id)s, %(name)s, %(prompt)s, %(data)s, 'pending', %(gate_token)s FROM r
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, write_id)
    SELECT %(run_id)s, r.last_seq, 'gate.opened', %(payload)s, %(write_id)s FROM r
)
SELECT {_NOTIFY} FROM r
"""

# Back at a gate opened by an earlier attempt: wait again.
REOPEN_GATE = f"""
UPDATE {{s}}.runs SET status = 'waiting', updated_at = now() WHERE {_FENCE} RETURNING 1
"""

# Exactly once: the first resolver's UPDATE locks the gate row; any other, once it gets the
# row, re-checks status = 'pending' against the committed decision and matches nothing.
# The run goes back to 'running' (its worker is waiting) or 'pending' (nobody is) once no
# other gate of it is pending.
RESOLVE_GATE = f"""
WITH live AS (
    -- The run row's lock orders a resolve against a cancel: a cancelled or completed run's
    -- gate is never decided afterwards.
    SELECT 1 FROM {{s}}.runs
    WHERE run_id = %(run_id)s AND status NOT IN ('cancelled', 'completed') FOR UPDATE
), g AS (
    UPDATE {{s}}.gates SET
        status = %(decision)s, actor = %(actor)s, payload = %(payload)s, resolved_at = now()
    WHERE run_id = %(run_id)s AND name = %(name)s AND status = 'pending'
      AND (%(gate_token)s::text IS NULL OR token = %(gate_token)s)
      AND EXISTS (SELECT 1 FROM live)
    RETURNING name
), r AS (
    UPDATE {{s}}.runs SET
        last_seq = last_seq + 1, updated_at = now(),
        status = CASE
            WHEN status <> 'waiting' OR EXISTS (
                SELECT 1 FROM {{s}}.gates o
                WHERE o.run_id = %(run_id)s AND o.status = 'pending' AND o.name <> %(name)s)
            THEN status
            WHEN owner_token IS NOT NULL AND lease_expires_at > now() THEN 'running'
            ELSE 'pending' END
    WHERE run_id = %(run_id)s AND EXISTS (SELECT 1 FROM g)
    RETURNING last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, write_id)
    SELECT %(run_id)s, r.last_seq, 'gate.resolved', %(event)s, %(write_id)s FROM r
)
SELECT r.last_seq, {_NOTIFY} FROM r
"""

# -- child runs ---------------------------------------------------------------------------------

# The edge is idempotent by name; the child's id is derived from the parent's and the edge's,
# so two workers racing on one edge create (and then claim) the same child run.
CREATE_EDGE = f"""
INSERT INTO {{s}}.run_edges (parent_run_id, edge_name, child_run_id)
SELECT %(run_id)s, %(edge)s, %(child_run_id)s
WHERE EXISTS (SELECT 1 FROM {{s}}.runs WHERE {_FENCE})
ON CONFLICT (parent_run_id, edge_name) DO NOTHING
RETURNING 1
"""

EDGE_EXISTS = """
SELECT child_run_id FROM {s}.run_edges WHERE parent_run_id = %(run_id)s AND edge_name = %(edge)s
"""

LIST_CHILDREN = """
SELECT edge_name, child_run_id FROM {s}.run_edges WHERE parent_run_id = %(run_id)s
ORDER BY created_at, edge_name
"""

# -- usage --------------------------------------------------------------------------------------

# Tokens spent are spent: usage is recorded even by a worker that lost its lease meanwhile.
RECORD_USAGE = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1 WHERE run_id = %(run_id)s
    RETURNING last_seq, {_WATCHED}
), u AS (
    INSERT INTO {{s}}.usage_records (
        run_id, step_name, attempt, kind, provider, model, input_tokens, output_tokens,
        total_tokens, cost_usd, cost_source, label, metadata, agent, quantity, unit)
    SELECT %(run_id)s, %(step_name)s, %(attempt)s, %(kind)s, %(provider)s, %(model)s,
           %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, %(cost_usd)s,
           %(cost_source)s, %(label)s, %(metadata)s, %(agent)s, %(quantity)s, %(unit)s
    FROM r
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, op_key, write_id)
    SELECT %(run_id)s, r.last_seq, 'usage.recorded', %(payload)s, %(op_key)s, %(write_id)s
    FROM r
)
SELECT {_NOTIFY} FROM r
"""

LIST_USAGE = """
SELECT kind, provider, model, input_tokens, output_tokens, total_tokens, cost_usd, cost_source,
       step_name, attempt, created_at, run_id, label, metadata, agent, quantity, unit
FROM {s}.usage_records WHERE run_id = %(run_id)s ORDER BY id
"""

# The run and its descendants (child runs, their children …), through run_edges.
_TREE = """
WITH RECURSIVE tree AS (
    SELECT %(run_id)s::text AS run_id
    UNION
    SELECT e.child_run_id FROM {s}.run_edges e JOIN tree t ON e.parent_run_id = t.run_id
)"""

# A summary's rows, grouped every way at once (GROUPING SETS: one scan, one round trip). g says
# which grouping a row belongs to: 0 provider/model, 1 agent, 2 run attempt, 3 run step; the
# last two only for one run (or one run tree).
SUMMARIZE_USAGE = (
    _TREE
    + """
SELECT CASE WHEN grouping(u.provider, u.model) = 0 THEN 0
            WHEN grouping(u.agent) = 0 THEN 1
            WHEN grouping(u.step_name) = 0 THEN 3
            ELSE 2 END AS g,
       u.provider, u.model, u.agent, u.run_id, u.attempt, u.step_name,
       count(*), sum(u.input_tokens), sum(u.output_tokens), sum(u.total_tokens),
       sum(u.cost_usd), count(u.cost_usd)
FROM {s}.usage_records u
WHERE (%(run_id)s::text IS NULL
       OR (CASE WHEN %(include_children)s THEN u.run_id IN (SELECT run_id FROM tree)
                ELSE u.run_id = %(run_id)s END))
  AND (%(since)s::timestamptz IS NULL OR u.created_at >= %(since)s)
  AND (%(workflow)s::text IS NULL OR u.run_id IN (
        SELECT run_id FROM {s}.runs WHERE workflow_name = %(workflow)s))
GROUP BY GROUPING SETS ((u.provider, u.model), (u.agent), (u.run_id, u.attempt),
                        (u.run_id, u.step_name))
HAVING %(run_id)s::text IS NOT NULL OR grouping(u.run_id) = 1
ORDER BY 1, u.provider NULLS LAST, u.model NULLS LAST, u.agent NULLS LAST, u.run_id,
         u.attempt, min(u.id)
"""
)

# How each attempt of the run (and its descendants) ended: the first end-of-attempt entry in
# the log after its run.started (run.claimed off a queue) and before the next one. None: it is
# running, or it crashed. A run.requeued with an "error" ended a failed attempt (earlier
# releases logged run.retrying), without one a crashed attempt.
ATTEMPT_OUTCOMES = (
    _TREE
    + """, starts AS (
    SELECT e.run_id, (e.payload->>'attempt')::int AS attempt, e.seq,
           lead(e.seq) OVER (PARTITION BY e.run_id ORDER BY e.seq) AS next_seq
    FROM {log} e
    WHERE e.type IN ('run.started', 'run.claimed')
      AND (CASE WHEN %(include_children)s THEN e.run_id IN (SELECT run_id FROM tree)
                ELSE e.run_id = %(run_id)s END)
)
SELECT st.run_id, st.attempt, (
           SELECT CASE WHEN x.type = 'run.requeued' AND x.payload ? 'error'
                       THEN 'run.retrying' ELSE x.type END
           FROM {log} x
           WHERE x.run_id = st.run_id AND x.seq > st.seq
             AND (st.next_seq IS NULL OR x.seq < st.next_seq)
             AND x.type IN ('run.completed', 'run.failed', 'run.parked', 'run.retrying',
                            'run.cancelled', 'run.requeued', 'run.recovering')
           ORDER BY x.seq LIMIT 1),
       st.next_seq IS NOT NULL,
       r.status IN ('running', 'waiting') AND r.attempt = st.attempt
           AND r.owner_token IS NOT NULL AND r.lease_expires_at > now()
FROM starts st JOIN {s}.runs r ON r.run_id = st.run_id
"""
).replace("{log}", _RUN_LOG)

# -- budgets ------------------------------------------------------------------------------------

# The spend of each governing budget's run tree, one round trip: the budget_spend function
# (migration 0007, which holds the statement and says why it is a function). With warn (a run
# about to spend), a budget at 80 % of a cap gets its budget.warning entry once; listeners are
# told here, where the channel prefix is known.
CHECK_BUDGET = """
SELECT b.run_id, b.budget, b.calls, b.usd, b.tokens, b.input_tokens, b.output_tokens, b.warned,
       CASE WHEN b.watched THEN pg_notify({c} || md5(b.run_id), b.last_seq::text) END
FROM {s}.budget_spend(%(holders)s::text[], %(run_id)s::text, true) AS b
"""
BUDGET_SPEND = """
SELECT b.run_id, b.budget, b.calls, b.usd, b.tokens, b.input_tokens, b.output_tokens, b.warned
FROM {s}.budget_spend(%(holders)s::text[], %(run_id)s::text, false) AS b
"""

# tide.runs.set_budget: the run's caps (NULL removes them), a budget.set entry in its log, and
# the run among the holders of itself and of every descendant, so each checks it from its next
# attempt on. A new budget may warn again.
SET_BUDGET = (
    _TREE
    + """, r AS (
    UPDATE {s}.runs SET
        budget = %(budget)s, budget_warned = false, last_seq = last_seq + 1, updated_at = now(),
        budget_holders = CASE
            WHEN %(budget)s::jsonb IS NULL OR %(run_id)s = ANY(coalesce(budget_holders, '{}'))
            THEN budget_holders
            ELSE array_prepend(%(run_id)s::text, coalesce(budget_holders, '{}')) END
    WHERE run_id = %(run_id)s
    RETURNING last_seq, coalesce(watched_until > now(), false) AS watched
), d AS (
    UPDATE {s}.runs SET budget_holders = array_append(coalesce(budget_holders, '{}'),
                                                      %(run_id)s::text)
    WHERE %(budget)s::jsonb IS NOT NULL AND run_id IN (SELECT run_id FROM tree)
      AND run_id <> %(run_id)s AND NOT %(run_id)s = ANY(coalesce(budget_holders, '{}'))
), ev AS (
    INSERT INTO {s}.events (run_id, seq, type, payload, write_id)
    SELECT %(run_id)s, r.last_seq, 'budget.set', %(payload)s, %(write_id)s FROM r
)
SELECT r.last_seq, CASE WHEN r.watched THEN pg_notify({c} || md5(%(run_id)s), r.last_seq::text)
                   END
FROM r
"""
)

# -- idempotent writes --------------------------------------------------------------------------
# Every write that appends to a run's log carries a client-generated ``write_id`` on its event
# row (unique per run). After a connection dropped with the write in flight, this finds out
# whether it committed: its log seq and, for state writes, the version it produced.
FIND_WRITE = """
SELECT seq, (payload->>'version')::bigint FROM {s}.events
WHERE run_id = %(run_id)s AND write_id = %(write_id)s
"""

# The same for a claim: the attempt it started, if the lease is still the claimer's.
FIND_CLAIM = """
SELECT r.attempt, r.attempt = 1, CASE WHEN %(want_input)s THEN r.input END, e.seq,
       r.budget_holders
FROM {s}.events e JOIN {s}.runs r ON r.run_id = e.run_id
WHERE e.run_id = %(run_id)s AND e.write_id = %(write_id)s AND r.owner_token = %(token)s
"""

# -- listening ----------------------------------------------------------------------------------

WATCH_RUN = """
UPDATE {s}.runs SET watched_until = greatest(watched_until, now() + make_interval(secs => %(for)s))
WHERE run_id = %(run_id)s
RETURNING status
"""


@dataclass(frozen=True, slots=True)
class Queries:
    """The statements above; ``for_schema`` fills in the schema name."""

    claim_run: str = CLAIM_RUN
    claim_child_run: str = CLAIM_CHILD_RUN
    claim_refused: str = CLAIM_REFUSED
    load_checkpoints: str = LOAD_CHECKPOINTS
    write_checkpoint: str = WRITE_CHECKPOINT
    rewrite_checkpoint: str = REWRITE_CHECKPOINT
    write_checkpoint_with_entries: str = WRITE_CHECKPOINT_WITH_ENTRIES
    rewrite_checkpoint_with_entries: str = REWRITE_CHECKPOINT_WITH_ENTRIES
    write_step_state: str = WRITE_STEP_STATE
    complete_run: str = COMPLETE_RUN
    complete_new_run: str = COMPLETE_NEW_RUN
    find_new_run: str = FIND_NEW_RUN
    fail_run: str = FAIL_RUN
    park_run: str = PARK_RUN
    release_run: str = RELEASE_RUN
    fence_state: str = FENCE_STATE
    renew_leases: str = RENEW_LEASES
    lease_states: str = LEASE_STATES
    cancel_run: str = CANCEL_RUN
    get_run: str = GET_RUN
    list_runs: str = LIST_RUNS
    list_steps: str = LIST_STEPS
    list_events: str = LIST_EVENTS
    append_event: str = APPEND_EVENT
    emit_event: str = EMIT_EVENT
    lock_run: str = LOCK_RUN
    get_step: str = GET_STEP
    approve_step_retry: str = APPROVE_STEP_RETRY
    resolve_step: str = RESOLVE_STEP
    set_state: str = SET_STATE
    patch_state: str = PATCH_STATE
    save_state: str = SAVE_STATE
    get_state: str = GET_STATE
    get_state_at: str = GET_STATE_AT
    list_state_versions: str = LIST_STATE_VERSIONS
    get_gate: str = GET_GATE
    list_gates: str = LIST_GATES
    open_gate: str = OPEN_GATE
    reopen_gate: str = REOPEN_GATE
    resolve_gate: str = RESOLVE_GATE
    create_edge: str = CREATE_EDGE
    edge_exists: str = EDGE_EXISTS
    list_children: str = LIST_CHILDREN
    record_usage: str = RECORD_USAGE
    list_usage: str = LIST_USAGE
    summarize_usage: str = SUMMARIZE_USAGE
    attempt_outcomes: str = ATTEMPT_OUTCOMES
    check_budget: str = CHECK_BUDGET
    budget_spend: str = BUDGET_SPEND
    set_budget: str = SET_BUDGET
    watch_run: str = WATCH_RUN
    find_write: str = FIND_WRITE
    find_claim: str = FIND_CLAIM

    @classmethod
    def for_schema(cls, schema: str) -> Queries:
        return fill_schema(cls, schema)


T = TypeVar("T")


def fill_schema(statements: type[T], schema: str) -> T:
    """An instance of ``statements`` (a dataclass whose fields default to statement templates)
    with ``{s}`` replaced by the quoted schema and ``{c}`` by its channel prefix literal.

    Each area of the store keeps its statements in a dataclass of its own; this fills any."""
    quoted = sql.Identifier(schema).as_string(None)
    literal = sql.Literal(channel_prefix(schema)).as_string(None)
    texts = {
        f.name: str(f.default).replace("{s}", quoted).replace("{c}", literal).strip()
        for f in fields(statements)  # type: ignore[arg-type]
    }
    return statements(**texts)


def channel_prefix(schema: str) -> str:
    """LISTEN/NOTIFY channels are per run: ``<prefix><md5 of the run id>`` (44 characters)."""
    return f"tb_{hashlib.md5(schema.encode()).hexdigest()[:8]}_"


def channel(schema: str, run_id: str) -> str:
    return channel_prefix(schema) + hashlib.md5(run_id.encode()).hexdigest()


def listen_statement(channel: str) -> str:
    return sql.SQL("LISTEN {}").format(sql.Identifier(channel)).as_string(None)
