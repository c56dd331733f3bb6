"""The statements of queues, workers, the reconciler and schedules (issue 13).

Same conventions as ``queries.py``: values travel as parameters, ``{s}`` is the quoted schema,
``{c}`` the channel prefix literal; ``QueueQueries.for_schema`` fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass

from .queries import fill_schema

__all__ = ["QueueQueries"]

_LEASE = "now() + make_interval(secs => %(lease)s)"
_WATCHED = "coalesce(watched_until > now(), false) AS watched"
_NOTIFY_R = "CASE WHEN r.watched THEN pg_notify({c} || md5(r.run_id), r.last_seq::text) END"
_ACTIVE = "('queued', 'running', 'waiting')"
# A run's run_at as the Tidebase protocol writes times in its events: ms, UTC, "Z".
_RUN_AT_ISO = """to_char(r.run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""

# A job is a run: inserted 'queued'. ON CONFLICT without a target also covers the partial
# unique index on (queue_name, dedupe_key), so a duplicate inserts nothing and the caller looks
# up the active run that holds the key.
ENQUEUE = f"""
WITH r AS (
    INSERT INTO {{s}}.runs AS r (
        run_id, workflow_name, status, input, input_hash, metadata, queue_name, dedupe_key,
        priority, run_at, max_attempts, deadline_at, recovery_webhook, last_seq, budget,
        budget_holders)
    VALUES (
        %(run_id)s, %(workflow)s, 'queued', %(input)s, %(input_hash)s, %(metadata)s, %(queue)s,
        %(dedupe_key)s, %(priority)s,
        coalesce(%(run_at)s, now() + make_interval(secs => %(delay)s)), %(max_attempts)s,
        CASE WHEN %(deadline)s::float8 IS NULL THEN NULL
             ELSE now() + make_interval(secs => %(deadline)s) END,
        %(recovery_webhook)s, 1, %(budget)s, %(holders)s::text[])
    ON CONFLICT DO NOTHING
    RETURNING r.run_id, r.run_at
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload)
    SELECT r.run_id, 1, 'run.enqueued', %(payload)s::jsonb || jsonb_build_object(
        'runAt', {_RUN_AT_ISO})
    FROM r
)
SELECT run_id FROM r
"""

ACTIVE_BY_DEDUPE = f"""
SELECT run_id FROM {{s}}.runs
WHERE queue_name = %(queue)s AND dedupe_key = %(dedupe_key)s AND status IN {_ACTIVE}
"""

# Take the lease of the best ready run within the queue's caps: the same columns a plain claim
# sets, so the engine executes it exactly like tide.run would (fenced writes, heartbeat,
# checkpoints). The work is in the claim_queued function (migration 0004): one round trip.
CLAIM_QUEUED = """
SELECT c.run_id, c.workflow_name, c.attempt, c.input, c.last_seq, c.max_attempts,
       (SELECT r.budget_holders FROM {s}.runs r WHERE r.run_id = c.run_id),
       CASE WHEN c.watched THEN pg_notify({c} || md5(c.run_id), c.last_seq::text) END
FROM {s}.claim_queued(
    %(queue)s, %(key)s, %(token)s, %(host)s, %(pid)s, %(started)s, %(lease)s,
    %(protocol_owner)s) AS c
"""

# A queued run's attempt failed (fenced on the worker's token, in one statement, so the run is
# never seen 'failed' while attempts remain): back to 'queued' after the backoff, or 'failed'
# with failure_class 'max_retries' once its attempts are spent. The requeue's event is
# upstream's run.requeued; its payload's "error" tells it from a requeue after a crash.
FAIL_QUEUED = f"""
WITH r AS (
    UPDATE {{s}}.runs SET
        status = CASE WHEN attempt < coalesce(max_attempts, 1) THEN 'queued' ELSE 'failed' END,
        run_at = CASE WHEN attempt < coalesce(max_attempts, 1)
                      THEN now() + make_interval(secs => %(delay)s) ELSE run_at END,
        failure_class = CASE WHEN attempt < coalesce(max_attempts, 1) THEN NULL
                             ELSE 'max_retries' END,
        completed_at = CASE WHEN attempt < coalesce(max_attempts, 1) THEN NULL ELSE now() END,
        error = %(error)s, owner_token = NULL, lease_expires_at = NULL,
        last_seq = last_seq + 1, updated_at = now()
    WHERE run_id = %(run_id)s AND owner_token = %(token)s AND status IN ('running', 'waiting')
      AND queue_name IS NOT NULL
    RETURNING run_id, status, attempt, max_attempts, run_at, last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, write_id)
    SELECT r.run_id, r.last_seq,
           CASE WHEN r.status = 'queued' THEN 'run.requeued' ELSE 'run.failed' END,
           %(payload)s::jsonb || jsonb_build_object(
               'attempt', r.attempt, 'maxAttempts', coalesce(r.max_attempts, 1),
               'failure_class', CASE WHEN r.status = 'failed' THEN 'max_retries' END,
               'delay_s', CASE WHEN r.status = 'queued' THEN %(delay)s::float8 END,
               'nextRunAt', CASE WHEN r.status = 'queued' THEN {_RUN_AT_ISO} END),
           %(write_id)s
    FROM r
)
SELECT r.status, {_NOTIFY_R} FROM r
"""

UPSERT_QUEUE = """
INSERT INTO {s}.queues (name, concurrency, rate_per_minute, invoke_url)
VALUES (%(name)s, %(concurrency)s, %(rate)s, %(invoke_url)s)
ON CONFLICT (name) DO UPDATE SET
    concurrency = EXCLUDED.concurrency, rate_per_minute = EXCLUDED.rate_per_minute,
    invoke_url = EXCLUDED.invoke_url, updated_at = now()
"""

LIST_QUEUES = f"""
SELECT n.name, q.concurrency, q.rate_per_minute, q.invoke_url,
       count(r.run_id) FILTER (WHERE r.status = 'queued'),
       count(r.run_id) FILTER (WHERE r.status = 'running')
FROM (
    SELECT name FROM {{s}}.queues
    UNION SELECT DISTINCT queue_name FROM {{s}}.runs
    WHERE queue_name IS NOT NULL AND status IN {_ACTIVE}
) n
LEFT JOIN {{s}}.queues q ON q.name = n.name
LEFT JOIN {{s}}.runs r ON r.queue_name = n.name AND r.status IN ('queued', 'running')
GROUP BY n.name, q.concurrency, q.rate_per_minute, q.invoke_url
ORDER BY n.name
"""

# -- the reconciler -----------------------------------------------------------------------------

RECONCILER_LOCK = "SELECT pg_try_advisory_lock(%(key)s)"
RECONCILER_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"

# Runs whose worker may be gone: the lease expired, or the owner lived on this host (whether
# that process still exists is checked by the caller, which can look at the process table).
STALLED_RUNS = """
SELECT run_id, workflow_name, queue_name, owner_token, owner_host, owner_pid, owner_started,
       lease_expires_at < now(), recovery_webhook, input
FROM {s}.runs
WHERE status = 'running' AND owner_token IS NOT NULL
  AND (lease_expires_at < now() OR owner_host = %(host)s)
  AND (%(workflows)s::text[] IS NULL OR workflow_name = ANY(%(workflows)s))
  AND (%(queued)s::bool IS NULL OR (queue_name IS NOT NULL) = %(queued)s)
  -- the reconciler only acts on queued runs and runs with a webhook: others must not crowd
  -- them out of the LIMIT
  AND (NOT %(actionable)s OR queue_name IS NOT NULL OR recovery_webhook IS NOT NULL)
ORDER BY lease_expires_at
LIMIT %(limit)s
"""

# Plain runs with nobody on them (a gate decided while parked, runs.recover): a worker that has
# the workflow registered re-invokes them.
IDLE_PLAIN_RUNS = """
SELECT run_id, workflow_name FROM {s}.runs
WHERE status = 'pending' AND queue_name IS NULL AND workflow_name = ANY(%(workflows)s)
  AND (owner_token IS NULL OR lease_expires_at < now())
ORDER BY updated_at
LIMIT %(limit)s
"""

# A queued run whose worker is gone: fenced on the dead owner's token, back to 'queued' at once.
# In process a crash is not the workflow's failure: a run that kills its worker every time still
# ends, past max_attempts + 3 claims, as max_retries. A run claimed over the HTTP protocol
# (protocol_owner) spends an attempt per claim, as the protocol's reconciler does: once they are
# spent, its lapsed lease fails it.
_CLAIMS_ALLOWED = "coalesce(max_attempts, 1) + CASE WHEN protocol_owner IS NULL THEN 3 ELSE 0 END"
REQUEUE_STALLED = f"""
WITH r AS (
    UPDATE {{s}}.runs SET
        status = CASE WHEN attempt < {_CLAIMS_ALLOWED} THEN 'queued' ELSE 'failed' END,
        failure_class = CASE WHEN attempt < {_CLAIMS_ALLOWED} THEN NULL ELSE 'max_retries' END,
        completed_at = CASE WHEN attempt < {_CLAIMS_ALLOWED} THEN NULL ELSE now() END,
        owner_token = NULL, protocol_owner = NULL, lease_expires_at = NULL,
        -- in process at once (the worker died, not the attempt); over HTTP after the backoff
        run_at = CASE WHEN protocol_owner IS NULL THEN now() ELSE now() + make_interval(
            secs => least(%(base)s * 2 ^ greatest(attempt - 1, 0), %(cap)s)) END,
        last_seq = last_seq + 1, updated_at = now()
    WHERE run_id = %(run_id)s AND owner_token = %(token)s AND status = 'running'
      AND queue_name IS NOT NULL
    RETURNING run_id, status, attempt, max_attempts, last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, write_id)
    SELECT r.run_id, r.last_seq,
           CASE WHEN r.status = 'queued' THEN 'run.requeued' ELSE 'run.failed' END,
           jsonb_build_object('reason', %(reason)s::text, 'attempt', r.attempt,
                              'maxAttempts', coalesce(r.max_attempts, 1)), %(write_id)s
    FROM r
)
SELECT r.status, {_NOTIFY_R} FROM r
"""

# A queued run parked at a gate goes back to its queue once the gate is decided.
REQUEUE_PENDING = f"""
WITH r AS (
    UPDATE {{s}}.runs SET status = 'queued', run_at = now(), last_seq = last_seq + 1,
                         updated_at = now()
    WHERE queue_name IS NOT NULL AND status = 'pending'
      AND (owner_token IS NULL OR lease_expires_at < now())
    RETURNING run_id, last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload)
    SELECT r.run_id, r.last_seq, 'run.requeued', '{{"reason": "gate_decided"}}'::jsonb FROM r
)
SELECT r.run_id, {_NOTIFY_R} FROM r
"""

CANCEL_PAST_DEADLINE = f"""
WITH r AS (
    UPDATE {{s}}.runs SET
        status = 'cancelled', cancel_reason = 'deadline', last_seq = last_seq + 1,
        completed_at = now(), updated_at = now()
    WHERE deadline_at < now() AND status IN ('queued', 'running', 'waiting', 'pending')
    RETURNING run_id, last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload)
    SELECT r.run_id, r.last_seq, 'run.cancelled', '{{"reason": "deadline"}}'::jsonb FROM r
)
SELECT r.run_id, {_NOTIFY_R} FROM r
"""

PRUNE_CLAIMS = """
DELETE FROM {s}.queue_claims WHERE claimed_at < now() - interval '2 minutes'
"""

# Throttle: a run's webhook of a kind is sent again only after `every` seconds.
LAST_WEBHOOK_AGE = """
SELECT extract(epoch FROM now() - max(created_at))::float8 FROM {s}.webhook_attempts
WHERE run_id = %(run_id)s AND kind = %(kind)s
"""

RECORD_WEBHOOK = """
INSERT INTO {s}.webhook_attempts (run_id, kind, url, status_code, error)
VALUES (%(run_id)s, %(kind)s, %(url)s, %(status_code)s, %(error)s)
"""

LIST_WEBHOOKS = """
SELECT run_id, kind, url, status_code, error, created_at FROM {s}.webhook_attempts
WHERE run_id = %(run_id)s ORDER BY id
"""

# Push queues: ready runs whose queue has an invoke_url; the caller throttles redelivery.
PUSH_READY = """
SELECT r.run_id, r.workflow_name, r.queue_name, q.invoke_url FROM {s}.runs r
JOIN {s}.queues q ON q.name = r.queue_name AND q.invoke_url IS NOT NULL
WHERE r.status = 'queued' AND r.run_at <= now()
ORDER BY r.priority DESC, r.run_at
LIMIT %(limit)s
"""

# runs.recover: put a run that nobody is driving back where something will re-invoke it.
RECOVER_RUN = f"""
WITH r AS (
    UPDATE {{s}}.runs SET
        status = CASE WHEN queue_name IS NOT NULL THEN 'queued' ELSE 'pending' END,
        run_at = CASE WHEN queue_name IS NOT NULL THEN now() ELSE run_at END,
        owner_token = NULL, lease_expires_at = NULL, error = NULL, failure_class = NULL,
        completed_at = NULL, last_seq = last_seq + 1, updated_at = now()
    WHERE run_id = %(run_id)s AND status IN ('running', 'failed', 'pending', 'queued')
      AND (owner_token IS NULL OR lease_expires_at < now() OR owner_token = %(void_token)s)
    RETURNING run_id, last_seq, {_WATCHED}
), ev AS (
    INSERT INTO {{s}}.events (run_id, seq, type, payload, write_id)
    SELECT r.run_id, r.last_seq, 'run.recovering', jsonb_build_object('reason', %(reason)s::text),
           %(write_id)s
    FROM r
)
SELECT r.run_id, {_NOTIFY_R} FROM r
"""

# runs.create: a run nobody executes yet ('pending').
CREATE_RUN = """
WITH r AS (
    INSERT INTO {s}.runs (
        run_id, workflow_name, status, input, input_hash, metadata, recovery_webhook, last_seq,
        budget, budget_holders)
    VALUES (%(run_id)s, %(workflow)s, 'pending', %(input)s, %(input_hash)s, %(metadata)s,
            %(recovery_webhook)s, 1, %(budget)s, %(holders)s::text[])
    ON CONFLICT DO NOTHING
    RETURNING run_id
), ev AS (
    INSERT INTO {s}.events (run_id, seq, type, payload)
    SELECT r.run_id, 1, 'run.created', '{}'::jsonb FROM r
)
SELECT run_id FROM r
"""

RUN_OWNER = """
SELECT status, owner_token, owner_host, owner_pid, owner_started,
       lease_expires_at < now(), extract(epoch FROM lease_expires_at - now())::float8,
       recovery_webhook, queue_name, workflow_name, input
FROM {s}.runs WHERE run_id = %(run_id)s
"""

SET_RECOVERY_WEBHOOK = """
UPDATE {s}.runs SET recovery_webhook = %(url)s WHERE run_id = %(run_id)s
"""

RECOVERY_WEBHOOK = "SELECT recovery_webhook FROM {s}.runs WHERE run_id = %(run_id)s"

# -- schedules ----------------------------------------------------------------------------------

UPSERT_SCHEDULE = """
INSERT INTO {s}.schedules AS sc (
    name, cron, workflow_name, input, queue_name, max_attempts, enabled, next_fire_at)
VALUES (%(name)s, %(cron)s, %(workflow)s, %(input)s, %(queue)s, %(max_attempts)s, %(enabled)s,
        %(next_fire_at)s)
ON CONFLICT (name) DO UPDATE SET
    cron = EXCLUDED.cron, workflow_name = EXCLUDED.workflow_name, input = EXCLUDED.input,
    queue_name = EXCLUDED.queue_name, max_attempts = EXCLUDED.max_attempts,
    enabled = EXCLUDED.enabled,
    -- an unchanged cron keeps its place, so re-setting a schedule at startup does not skip a fire
    next_fire_at = CASE WHEN sc.cron = EXCLUDED.cron AND sc.next_fire_at IS NOT NULL
                        THEN sc.next_fire_at ELSE EXCLUDED.next_fire_at END,
    updated_at = now()
RETURNING name, cron, workflow_name, queue_name, enabled, next_fire_at, input, max_attempts,
          last_fired_at
"""

_SCHEDULE_COLUMNS = """
name, cron, workflow_name, queue_name, enabled, next_fire_at, input, max_attempts, last_fired_at
"""

LIST_SCHEDULES = f"SELECT {_SCHEDULE_COLUMNS} FROM {{s}}.schedules ORDER BY name"

DELETE_SCHEDULE = "DELETE FROM {s}.schedules WHERE name = %(name)s RETURNING name"

# Due schedules, each locked for the transaction that fires it (a racing reconciler skips it).
DUE_SCHEDULES = f"""
SELECT {_SCHEDULE_COLUMNS} FROM {{s}}.schedules
WHERE enabled AND next_fire_at <= %(now)s
ORDER BY next_fire_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

# Compare-and-set on the fire time: a fire is taken once, whatever else is ticking.
ADVANCE_SCHEDULE = """
UPDATE {s}.schedules SET next_fire_at = %(next)s, last_fired_at = %(fired)s, updated_at = now()
WHERE name = %(name)s AND next_fire_at = %(fired)s
RETURNING name
"""


@dataclass(frozen=True, slots=True)
class QueueQueries:
    """The statements above; ``for_schema`` fills in the schema name."""

    enqueue: str = ENQUEUE
    active_by_dedupe: str = ACTIVE_BY_DEDUPE
    claim_queued: str = CLAIM_QUEUED
    fail_queued: str = FAIL_QUEUED
    upsert_queue: str = UPSERT_QUEUE
    list_queues: str = LIST_QUEUES
    reconciler_lock: str = RECONCILER_LOCK
    reconciler_unlock: str = RECONCILER_UNLOCK
    stalled_runs: str = STALLED_RUNS
    idle_plain_runs: str = IDLE_PLAIN_RUNS
    requeue_stalled: str = REQUEUE_STALLED
    requeue_pending: str = REQUEUE_PENDING
    cancel_past_deadline: str = CANCEL_PAST_DEADLINE
    prune_claims: str = PRUNE_CLAIMS
    last_webhook_age: str = LAST_WEBHOOK_AGE
    record_webhook: str = RECORD_WEBHOOK
    list_webhooks: str = LIST_WEBHOOKS
    push_ready: str = PUSH_READY
    recover_run: str = RECOVER_RUN
    create_run: str = CREATE_RUN
    run_owner: str = RUN_OWNER
    set_recovery_webhook: str = SET_RECOVERY_WEBHOOK
    recovery_webhook: str = RECOVERY_WEBHOOK
    upsert_schedule: str = UPSERT_SCHEDULE
    list_schedules: str = LIST_SCHEDULES
    delete_schedule: str = DELETE_SCHEDULE
    due_schedules: str = DUE_SCHEDULES
    advance_schedule: str = ADVANCE_SCHEDULE

    @classmethod
    def for_schema(cls, schema: str) -> QueueQueries:
        return fill_schema(cls, schema)
