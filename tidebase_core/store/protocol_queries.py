"""Statements of the Tidebase v0.7 HTTP protocol (``tidebase serve``) that the engine itself
does not need. Same conventions as ``queries.py``: ``{s}`` is the schema, ``{c}`` the
LISTEN/NOTIFY channel prefix; values always travel as parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import queries
from .queries import fill_schema

__all__ = ["ProtocolQueries"]

# A run as the protocol shows it: the columns of RunInfo plus the lease (owner token and the
# protocol worker's name: that name holds the lease only while owner_token is derived from it),
# the cancel reason and who cancelled it (the actor lives in the run.cancelled event's payload).
_RUN_ROW = """
r.run_id, r.workflow_name, r.status, r.input, r.result, r.error, r.attempt, r.failure_class,
r.metadata, r.created_at, r.updated_at, r.completed_at, r.lease_expires_at,
r.owner_token, r.protocol_owner, r.cancel_reason,
CASE WHEN r.status = 'cancelled' THEN (
    SELECT e.payload ->> 'actor' FROM {s}.events e
    WHERE e.run_id = r.run_id AND e.type = 'run.cancelled'
    ORDER BY e.seq DESC LIMIT 1
) END AS cancel_actor,
r.queue_name, r.dedupe_key, r.priority, r.run_at, r.max_attempts, r.deadline_at,
r.recovery_webhook
"""

# A run created over HTTP (POST /runs/{workflowName}): 'pending', no worker yet, its log opened
# by run.created at seq 1. A worker (in-process tide.run or the protocol's runs/begin) claims it
# like any other run of that workflow.
CREATE_RUN = """
WITH r AS (
    INSERT INTO {s}.runs AS r (run_id, workflow_name, status, input, input_hash, metadata,
                                 recovery_webhook, attempt, last_seq)
    VALUES (%(run_id)s, %(workflow)s, 'pending', %(input)s, %(input_hash)s, %(metadata)s,
            %(recovery_webhook)s, 0, 1)
    ON CONFLICT (run_id) DO NOTHING
    RETURNING r.run_id
), ev AS (
    INSERT INTO {s}.events (run_id, seq, type, payload)
    SELECT r.run_id, 1, 'run.created', %(payload)s FROM r
)
SELECT run_id FROM r
"""

GET_RUN_ROW = f"SELECT {_RUN_ROW} FROM {{s}}.runs r WHERE r.run_id = %(run_id)s"

LIST_RUN_ROWS = f"""
SELECT {_RUN_ROW} FROM {{s}}.runs r
ORDER BY r.created_at DESC, r.run_id
LIMIT %(limit)s
"""

# The run row, locked: every protocol write below runs in a transaction that takes it first,
# which orders it against cancels, claims and other writers of the run's log.
LOCK_RUN = """
SELECT status, protocol_owner, owner_token,
       owner_token IS NOT NULL AND lease_expires_at > now() AS leased,
       queue_name, attempt
FROM {s}.runs WHERE run_id = %(run_id)s FOR UPDATE
"""

_LEASE = "now() + make_interval(secs => %(lease)s)"

# Append an event (type and payload as parameters) while updating the run row with {set}, and
# notify its listeners. Run only after LOCK_RUN in the same transaction.
_UPDATE_WITH_EVENT = """
WITH r AS (
    UPDATE {s}.runs SET {set}, last_seq = last_seq + 1, updated_at = now()
    WHERE run_id = %(run_id)s
    RETURNING run_id, last_seq, coalesce(watched_until > now(), false) AS watched
), ev AS (
    INSERT INTO {s}.events (run_id, seq, type, payload)
    SELECT r.run_id, r.last_seq, %(type)s, %(payload)s FROM r
)
SELECT r.last_seq, CASE WHEN r.watched THEN pg_notify({c} || md5(r.run_id), r.last_seq::text) END
FROM r
"""

APPEND_EVENT = _UPDATE_WITH_EVENT.replace("{set}", "run_id = run_id")

# runs/begin: the protocol worker takes the lease (a new attempt).
BEGIN_RUN = _UPDATE_WITH_EVENT.replace(
    "{set}",
    f"""status = 'running', attempt = attempt + 1, protocol_owner = %(owner)s,
    owner_token = %(token)s, owner_host = NULL, owner_pid = NULL, owner_started = NULL,
    lease_expires_at = {_LEASE}, error = NULL, failure_class = NULL""",
)

# Extend-only: no attempt, no event; a worker that lost the lease cannot get it back here.
HEARTBEAT = f"""
UPDATE {{s}}.runs SET lease_expires_at = {_LEASE}, updated_at = now()
WHERE run_id = %(run_id)s AND status IN ('running', 'waiting') AND protocol_owner = %(owner)s
  AND owner_token = %(token)s  -- an in-process takeover keeps protocol_owner but not the token
RETURNING run_id
"""

COMPLETE_RUN = _UPDATE_WITH_EVENT.replace(
    "{set}",
    """status = 'completed', result = %(result)s, result_type = NULL, error = NULL,
    protocol_owner = NULL, owner_token = NULL, lease_expires_at = NULL, completed_at = now()""",
)

FAIL_RUN = _UPDATE_WITH_EVENT.replace(
    "{set}",
    """status = 'failed', error = %(error)s, failure_class = %(failure_class)s,
    protocol_owner = NULL, owner_token = NULL, lease_expires_at = NULL""",
)

_STEP = """
step_key, status, input_hash, input, options, output, error, attempt, resume_decision,
lease_owner, lease_expires_at, started_at, created_at, updated_at
"""

GET_STEP = f"""
SELECT {_STEP}, lease_owner IS NOT NULL AND lease_expires_at > now() AS leased
FROM {{s}}.steps WHERE run_id = %(run_id)s AND step_key = %(key)s FOR UPDATE
"""

# steps/begin → execute: the step's lease for this owner; every begin is one more attempt.
BEGIN_STEP = f"""
INSERT INTO {{s}}.steps AS st (run_id, step_key, status, input_hash, input, options, attempt,
                               lease_owner, lease_expires_at, started_at)
VALUES (%(run_id)s, %(key)s, 'running', %(input_hash)s, %(input)s, %(options)s, 1,
        %(owner)s, {_LEASE}, now())
ON CONFLICT (run_id, step_key) DO UPDATE SET
    status = 'running', input_hash = EXCLUDED.input_hash, input = EXCLUDED.input,
    options = EXCLUDED.options, attempt = st.attempt + 1, lease_owner = EXCLUDED.lease_owner,
    lease_expires_at = EXCLUDED.lease_expires_at, error = NULL, resume_decision = NULL,
    started_at = coalesce(st.started_at, now()), updated_at = now()
RETURNING {_STEP}
"""

# The completed checkpoint is the run's step.completed log entry (it takes the next seq).
COMPLETE_STEP = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1, updated_at = now()
    WHERE run_id = %(run_id)s
    RETURNING run_id, last_seq, coalesce(watched_until > now(), false) AS watched
), st AS (
    UPDATE {{s}}.steps AS st SET
        status = 'completed', seq = r.last_seq, output = %(output)s, output_type = NULL,
        error = NULL, resume_decision = NULL, lease_owner = NULL, lease_expires_at = NULL,
        updated_at = now()
    FROM r
    WHERE st.run_id = %(run_id)s AND st.step_key = %(key)s
    RETURNING {_STEP.replace("step_key", "st.step_key").replace(", status", ", st.status")}
)
SELECT st.*, CASE WHEN r.watched THEN pg_notify({{c}} || md5(r.run_id), r.last_seq::text) END
FROM st, r
"""

FAIL_STEP = f"""
UPDATE {{s}}.steps SET
    status = 'failed', error = %(error)s, resume_decision = %(decision)s,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE run_id = %(run_id)s AND step_key = %(key)s
RETURNING {_STEP}
"""

# gates/begin over HTTP: open the gate (idempotent per name); the run waits while it is pending.
OPEN_GATE = """
INSERT INTO {s}.gates (run_id, name, prompt, data, status, token, expires_at)
VALUES (%(run_id)s, %(name)s, %(prompt)s, %(data)s, 'pending', %(gate_token)s,
        CASE WHEN %(timeout)s::float8 IS NULL THEN NULL
             ELSE now() + make_interval(secs => %(timeout)s) END)
ON CONFLICT (run_id, name) DO NOTHING
RETURNING name
"""

# Pending gates past their timeout (of one run, or of all): the caller decides each 'rejected'
# by 'timeout' through the engine's resolve statement.
EXPIRED_GATES = """
SELECT g.run_id, g.name FROM {s}.gates g
JOIN {s}.runs r ON r.run_id = g.run_id AND r.status NOT IN ('cancelled', 'completed')
WHERE g.status = 'pending' AND g.expires_at <= now()
  AND (%(run_id)s::text IS NULL OR g.run_id = %(run_id)s)
ORDER BY g.expires_at
LIMIT %(limit)s
"""

GATE_EXPIRIES = """
SELECT name, expires_at FROM {s}.gates
WHERE run_id = %(run_id)s AND expires_at IS NOT NULL
"""

WAIT_AT_GATE = _UPDATE_WITH_EVENT.replace(
    "{set}", "status = CASE WHEN status = 'running' THEN 'waiting' ELSE status END"
)

# State written over HTTP: the engine's own statements, with the worker's fence replaced by
# "the run is live" (upstream's state routes name no worker; a finished run's state is final).
_LIVE = "run_id = %(run_id)s AND status NOT IN ('completed', 'cancelled')"


def _unfenced(statement: str) -> str:
    assert queries._FENCE in statement, "the engine's state statement changed shape"
    return statement.replace(queries._FENCE, _LIVE)


SET_STATE = _unfenced(queries.SET_STATE)
PATCH_STATE = _unfenced(queries.PATCH_STATE)
SAVE_STATE = _unfenced(queries.SAVE_STATE)

GET_STATE_VERSION = f"""
SELECT {queries.STATE_VERSION_COLUMNS} FROM {{s}}.state_versions
WHERE run_id = %(run_id)s AND version = %(version)s
"""

_EDGE = "parent_run_id, edge_name, child_run_id, edge_type, metadata, created_at"

GET_EDGE = f"""
SELECT {_EDGE} FROM {{s}}.run_edges
WHERE parent_run_id = %(run_id)s AND edge_name = %(edge)s
"""

LIST_EDGES = f"""
SELECT {_EDGE} FROM {{s}}.run_edges WHERE parent_run_id = %(run_id)s
ORDER BY created_at, edge_name
"""

# Run after LOCK_RUN on the parent (which serializes concurrent creations of one edge).
INSERT_EDGE = f"""
INSERT INTO {{s}}.run_edges (parent_run_id, edge_name, child_run_id, edge_type, metadata)
VALUES (%(run_id)s, %(edge)s, %(child_run_id)s, %(edge_type)s, %(metadata)s)
RETURNING {_EDGE}
"""


# GET /queues: every queue that has runs or a config, with a count per lifecycle state.
QUEUE_STATS = """
SELECT n.name, q.name IS NOT NULL, q.concurrency, q.rate_per_minute, q.invoke_url,
       count(r.run_id) FILTER (WHERE r.status = 'queued'),
       count(r.run_id) FILTER (WHERE r.status IN ('running', 'waiting')),
       count(r.run_id) FILTER (WHERE r.status = 'failed'),
       count(r.run_id) FILTER (WHERE r.status = 'completed'),
       count(r.run_id) FILTER (WHERE r.status = 'cancelled')
FROM (
    SELECT name FROM {s}.queues
    UNION SELECT DISTINCT queue_name FROM {s}.runs WHERE queue_name IS NOT NULL
) n
LEFT JOIN {s}.queues q ON q.name = n.name
LEFT JOIN {s}.runs r ON r.queue_name = n.name
GROUP BY n.name, q.name, q.concurrency, q.rate_per_minute, q.invoke_url
ORDER BY n.name
"""

# PUT /queues/{queue}/config: a field the body leaves out keeps its value (upstream), one sent
# as null lifts it; one statement, so concurrent partial updates never lose each other.
CONFIGURE_QUEUE = """
INSERT INTO {s}.queues AS q (name, concurrency, rate_per_minute, invoke_url)
VALUES (%(name)s, %(concurrency)s, %(rate)s, %(invoke_url)s)
ON CONFLICT (name) DO UPDATE SET
    concurrency = CASE WHEN %(set_concurrency)s THEN EXCLUDED.concurrency ELSE q.concurrency END,
    rate_per_minute = CASE WHEN %(set_rate)s THEN EXCLUDED.rate_per_minute
                           ELSE q.rate_per_minute END,
    invoke_url = CASE WHEN %(set_invoke_url)s THEN EXCLUDED.invoke_url ELSE q.invoke_url END,
    updated_at = now()
RETURNING name, concurrency, rate_per_minute, invoke_url
"""

# Schedules as the protocol shows them (the core's columns plus when the row was written).
SCHEDULE_TIMES = """
SELECT name, created_at, updated_at FROM {s}.schedules
"""


# Webhook channels (migration 0007). A run's channels start at its first event; a gate's at the
# log position before the gate opened (its gate.opened is the first event it may get).
INSERT_CHANNEL = """
INSERT INTO {s}.channels (run_id, gate_name, url, secret, events, delivered_seq)
SELECT %(run_id)s, %(gate_name)s, %(url)s, %(secret)s, %(events)s,
       CASE WHEN %(gate_name)s::text IS NULL THEN 0
            ELSE coalesce((SELECT last_seq FROM {s}.runs WHERE run_id = %(run_id)s), 0) END
"""

DELETE_CHANNELS = "DELETE FROM {s}.channels WHERE run_id = %(run_id)s"

_CHANNEL = "id, run_id, gate_name, url, secret, events, delivered_seq, created_at"

LIST_CHANNELS = f"SELECT {_CHANNEL} FROM {{s}}.channels WHERE run_id = %(run_id)s ORDER BY id"

# Take the channel for delivery (a lease, not a held transaction: a slow endpoint never holds a
# connection or blocks the run's writers); None while someone else delivers it.
ACQUIRE_CHANNEL = f"""
UPDATE {{s}}.channels SET busy_until = now() + make_interval(secs => %(lease)s)
WHERE id = %(id)s AND (busy_until IS NULL OR busy_until < now())
RETURNING {_CHANNEL}
"""

ADVANCE_CHANNEL = """
UPDATE {s}.channels SET delivered_seq = greatest(delivered_seq, %(seq)s) WHERE id = %(id)s
"""

RELEASE_CHANNEL = "UPDATE {s}.channels SET busy_until = NULL WHERE id = %(id)s"

INSERT_DELIVERY = """
INSERT INTO {s}.channel_deliveries (channel_id, run_id, gate_name, seq, event_type, payload,
                                    status)
VALUES (%(channel_id)s, %(run_id)s, %(gate_name)s, %(seq)s, %(event_type)s, %(payload)s,
        'pending')
RETURNING id
"""

FINISH_DELIVERY = """
UPDATE {s}.channel_deliveries SET status = %(status)s, http_status = %(http_status)s,
    error_text = %(error_text)s, completed_at = now()
WHERE id = %(id)s
"""

LIST_DELIVERIES = """
SELECT id, channel_id, run_id, gate_name, event_type, payload, status, http_status, error_text,
       created_at, completed_at
FROM {s}.channel_deliveries WHERE run_id = %(run_id)s ORDER BY id
"""

# Runs whose log has events a channel has not been given yet (written by anyone: in-process
# workers too); the server's tick delivers them.
CHANNEL_BACKLOG = """
SELECT DISTINCT c.run_id FROM {s}.channels c
JOIN {s}.runs r ON r.run_id = c.run_id
WHERE c.delivered_seq < r.last_seq AND (c.busy_until IS NULL OR c.busy_until < now())
LIMIT %(limit)s
"""


# A snapshot (migration 0010): the next version of its stream. Run after LOCK_RUN, whose lock
# orders concurrent snapshots of the run.
INSERT_SNAPSHOT = """
INSERT INTO {s}.snapshots (run_id, stream, version, label, value, reason, metadata, created_by)
SELECT %(run_id)s, %(stream)s, coalesce(max(version), 0) + 1, %(label)s, %(value)s, %(reason)s,
       %(metadata)s, %(created_by)s
FROM {s}.snapshots WHERE run_id = %(run_id)s AND stream = %(stream)s
RETURNING stream, version, label, value, reason, metadata, created_by, created_at
"""

LIST_SNAPSHOTS = """
SELECT stream, version, label, value, reason, metadata, created_by, created_at
FROM {s}.snapshots WHERE run_id = %(run_id)s ORDER BY stream, version
"""


@dataclass(frozen=True)
class ProtocolQueries:
    create_run: str = CREATE_RUN
    get_run_row: str = GET_RUN_ROW
    list_run_rows: str = LIST_RUN_ROWS
    lock_run: str = LOCK_RUN
    append_event: str = APPEND_EVENT
    begin_run: str = BEGIN_RUN
    heartbeat: str = HEARTBEAT
    complete_run: str = COMPLETE_RUN
    fail_run: str = FAIL_RUN
    get_step: str = GET_STEP
    begin_step: str = BEGIN_STEP
    complete_step: str = COMPLETE_STEP
    fail_step: str = FAIL_STEP
    open_gate: str = OPEN_GATE
    wait_at_gate: str = WAIT_AT_GATE
    set_state: str = SET_STATE
    patch_state: str = PATCH_STATE
    save_state: str = SAVE_STATE
    get_state_version: str = GET_STATE_VERSION
    get_edge: str = GET_EDGE
    list_edges: str = LIST_EDGES
    insert_edge: str = INSERT_EDGE
    queue_stats: str = QUEUE_STATS
    configure_queue: str = CONFIGURE_QUEUE
    schedule_times: str = SCHEDULE_TIMES
    expired_gates: str = EXPIRED_GATES
    gate_expiries: str = GATE_EXPIRIES
    insert_channel: str = INSERT_CHANNEL
    delete_channels: str = DELETE_CHANNELS
    list_channels: str = LIST_CHANNELS
    acquire_channel: str = ACQUIRE_CHANNEL
    advance_channel: str = ADVANCE_CHANNEL
    release_channel: str = RELEASE_CHANNEL
    insert_delivery: str = INSERT_DELIVERY
    finish_delivery: str = FINISH_DELIVERY
    list_deliveries: str = LIST_DELIVERIES
    channel_backlog: str = CHANNEL_BACKLOG
    insert_snapshot: str = INSERT_SNAPSHOT
    list_snapshots: str = LIST_SNAPSHOTS

    @classmethod
    def for_schema(cls, schema: str) -> ProtocolQueries:
        return fill_schema(cls, schema)
