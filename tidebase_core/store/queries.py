"""Every SQL statement Tidebase sends, in one place.

Values always travel as parameters; the only text substituted is the schema name, validated as
an identifier and quoted by psycopg. ``{s}`` marks it.

The run row is the hub of the hot path. A worker's write is fenced by updating that row
``WHERE owner_token = <its token> AND status = 'running'`` in the same statement as the write:
a takeover or a cancel makes the update (and therefore the write) match nothing. The same
update hands out the next ``seq`` of the run's event log, which keeps the log gap-free.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from psycopg import sql

__all__ = ["Queries"]

_LEASE = "now() + make_interval(secs => %(lease)s)"
_FENCE = "run_id = %(run_id)s AND owner_token = %(token)s AND status = 'running'"

CLAIM_RUN = f"""
WITH claimed AS (
    INSERT INTO {{s}}.runs AS r (
        run_id, workflow_name, status, input, input_hash, metadata, attempt, last_seq,
        owner_token, owner_host, owner_pid, owner_started, lease_expires_at)
    VALUES (
        %(run_id)s, %(workflow)s, 'running', %(input)s, %(input_hash)s, %(metadata)s, 1, 1,
        %(token)s, %(host)s, %(pid)s, %(started)s, {_LEASE})
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
              CASE WHEN %(want_input)s THEN r.input END AS input
), started AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload)
    SELECT %(run_id)s, c.last_seq, 'run.started', jsonb_build_object('attempt', c.attempt)
    FROM claimed c
)
SELECT true, c.attempt, c.created, c.input,
       NULL::text, NULL::text, NULL::text, NULL::jsonb,
       NULL::uuid, NULL::text, NULL::integer, NULL::text, NULL::float8, NULL::text
FROM claimed c
UNION ALL
SELECT false, r.attempt, false, NULL::jsonb,
       r.workflow_name, r.status, r.input_hash,
       CASE WHEN r.status = 'completed' THEN r.result END,
       r.owner_token, r.owner_host, r.owner_pid, r.owner_started,
       extract(epoch FROM r.lease_expires_at - now())::float8, r.cancel_reason
FROM {{s}}.runs r
WHERE r.run_id = %(run_id)s AND NOT EXISTS (SELECT 1 FROM claimed)
"""

LOAD_CHECKPOINTS = """
SELECT step_key, status, input_hash, output, error, resume_decision, attempt
FROM {s}.steps WHERE run_id = %(run_id)s
"""

_INSERT_CHECKPOINT = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1 WHERE {_FENCE} RETURNING last_seq
)
INSERT INTO {{s}}.steps AS st (
    run_id, step_key, seq, status, input_hash, output, attempt, resume_decision, idempotency_key)
SELECT %(run_id)s, %(key)s, r.last_seq, 'completed', %(input_hash)s, %(output)s, %(attempt)s,
       %(decision)s, %(idempotency_key)s
FROM r
"""

# The usual case: the key has no row yet (a plain insert is cheaper than an upsert).
WRITE_CHECKPOINT = _INSERT_CHECKPOINT + "RETURNING 1"

# The key has a row from an earlier try (failed, or an intent record): replace it.
REWRITE_CHECKPOINT = (
    _INSERT_CHECKPOINT
    + """ON CONFLICT (run_id, step_key) DO UPDATE SET
    seq = EXCLUDED.seq, status = 'completed', input_hash = EXCLUDED.input_hash,
    output = EXCLUDED.output, error = NULL, attempt = EXCLUDED.attempt,
    resume_decision = EXCLUDED.resume_decision, idempotency_key = EXCLUDED.idempotency_key,
    updated_at = now()
RETURNING 1
"""
)

# A step unsafe to run twice records its intent first; a crash before its checkpoint then
# leaves a 'running' row that parks the step on resume.
WRITE_STEP_STARTED = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1 WHERE {_FENCE} RETURNING last_seq
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload)
    SELECT %(run_id)s, r.last_seq, 'step.started', %(payload)s FROM r
)
INSERT INTO {{s}}.steps AS st (
    run_id, step_key, status, input_hash, attempt, resume_decision, idempotency_key)
SELECT %(run_id)s, %(key)s, 'running', %(input_hash)s, %(attempt)s, %(decision)s,
       %(idempotency_key)s
FROM r
ON CONFLICT (run_id, step_key) DO UPDATE SET
    status = 'running', input_hash = EXCLUDED.input_hash, error = NULL,
    attempt = EXCLUDED.attempt, resume_decision = EXCLUDED.resume_decision,
    idempotency_key = EXCLUDED.idempotency_key, updated_at = now()
RETURNING 1
"""

WRITE_STEP_FAILED = f"""
WITH r AS (
    UPDATE {{s}}.runs SET last_seq = last_seq + 1 WHERE {_FENCE} RETURNING last_seq
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload)
    SELECT %(run_id)s, r.last_seq, 'step.failed', %(payload)s FROM r
)
INSERT INTO {{s}}.steps AS st (
    run_id, step_key, status, input_hash, error, attempt, resume_decision, idempotency_key)
SELECT %(run_id)s, %(key)s, 'failed', %(input_hash)s, %(error)s, %(attempt)s, %(decision)s,
       %(idempotency_key)s
FROM r
ON CONFLICT (run_id, step_key) DO UPDATE SET
    status = 'failed', input_hash = EXCLUDED.input_hash, error = EXCLUDED.error,
    attempt = EXCLUDED.attempt, resume_decision = EXCLUDED.resume_decision,
    idempotency_key = EXCLUDED.idempotency_key, updated_at = now()
RETURNING 1
"""

COMPLETE_RUN = f"""
WITH r AS (
    UPDATE {{s}}.runs SET
        status = 'completed', result = %(result)s, owner_token = NULL, lease_expires_at = NULL,
        last_seq = last_seq + 1, completed_at = now(), updated_at = now()
    WHERE {_FENCE}
    RETURNING last_seq
)
INSERT INTO {{s}}.events (run_id, seq, type, payload)
SELECT %(run_id)s, r.last_seq, 'run.completed', %(payload)s FROM r
RETURNING seq
"""

FAIL_RUN = f"""
WITH r AS (
    UPDATE {{s}}.runs SET
        status = 'failed', error = %(error)s, failure_class = %(failure_class)s,
        owner_token = NULL, lease_expires_at = NULL, last_seq = last_seq + 1, updated_at = now()
    WHERE {_FENCE}
    RETURNING last_seq
)
INSERT INTO {{s}}.events (run_id, seq, type, payload)
SELECT %(run_id)s, r.last_seq, 'run.failed', %(payload)s FROM r
RETURNING seq
"""

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

CANCEL_RUN = """
WITH r AS (
    UPDATE {s}.runs SET
        status = 'cancelled', cancel_reason = %(reason)s, last_seq = last_seq + 1,
        completed_at = now(), updated_at = now()
    WHERE run_id = %(run_id)s AND status NOT IN ('completed', 'cancelled')
    RETURNING last_seq
)
INSERT INTO {s}.events (run_id, seq, type, payload)
SELECT %(run_id)s, r.last_seq, 'run.cancelled', %(payload)s FROM r
RETURNING seq
"""

_RUN_COLUMNS = """
run_id, workflow_name, status, input, result, error, attempt, failure_class, metadata,
created_at, updated_at, completed_at, lease_expires_at
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

# The event log: event rows, plus completed step checkpoints which carry their own seq.
LIST_EVENTS = """
SELECT seq, type, payload, created_at FROM (
    SELECT seq, type, payload, created_at FROM {s}.events
    WHERE run_id = %(run_id)s AND seq > %(after_seq)s
    UNION ALL
    SELECT seq, 'step.completed',
           jsonb_build_object('step', step_key, 'attempt', attempt, 'input_hash', input_hash),
           updated_at
    FROM {s}.steps
    WHERE run_id = %(run_id)s AND status = 'completed' AND seq > %(after_seq)s
) log
ORDER BY seq
LIMIT %(limit)s
"""

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

APPEND_EVENT = """
WITH r AS (
    UPDATE {s}.runs SET last_seq = last_seq + 1 WHERE run_id = %(run_id)s RETURNING last_seq
)
INSERT INTO {s}.events (run_id, seq, type, payload)
SELECT %(run_id)s, r.last_seq, %(type)s, %(payload)s FROM r
RETURNING seq
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


@dataclass(frozen=True, slots=True)
class Queries:
    """The statements above with the schema name filled in."""

    claim_run: str
    load_checkpoints: str
    write_checkpoint: str
    rewrite_checkpoint: str
    write_step_started: str
    write_step_failed: str
    complete_run: str
    fail_run: str
    release_run: str
    fence_state: str
    renew_leases: str
    lease_states: str
    cancel_run: str
    get_run: str
    list_runs: str
    list_steps: str
    list_events: str
    lock_run: str
    get_step: str
    append_event: str
    approve_step_retry: str
    resolve_step: str

    @classmethod
    def for_schema(cls, schema: str) -> Queries:
        quoted = sql.Identifier(schema).as_string(None)
        return cls(
            **{
                f.name: globals()[f.name.upper()].replace("{s}", quoted).strip()
                for f in fields(cls)
            }
        )
