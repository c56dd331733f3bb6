-- Queues, schedules and recovery (issue 13). A job is a run with status 'queued': no second
-- table. Applied with search_path set to the Tidebase schema.

ALTER TABLE runs ADD COLUMN queue_name text;
ALTER TABLE runs ADD COLUMN dedupe_key text;
ALTER TABLE runs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN run_at timestamptz;
-- NULL on plain runs; an enqueued run defaults to 1 (no retry), like the original server.
ALTER TABLE runs ADD COLUMN max_attempts integer;
ALTER TABLE runs ADD COLUMN deadline_at timestamptz;
ALTER TABLE runs ADD COLUMN recovery_webhook text;
ALTER TABLE runs ADD COLUMN claimed_at timestamptz;

-- Dedupe: one active run per (queue, dedupe key); a finished run frees the key. The index makes
-- it exact under any number of concurrent enqueuers.
CREATE UNIQUE INDEX runs_queue_dedupe_active ON runs (queue_name, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'waiting');

-- What a claim scans: ready runs of one queue, highest priority first, then oldest run_at.
CREATE INDEX runs_queue_ready ON runs (queue_name, priority DESC, run_at)
    WHERE status = 'queued';

-- What the reconciler scans: live leases (expired, or held by a dead process) and deadlines.
CREATE INDEX runs_live_lease ON runs (lease_expires_at) WHERE status IN ('running', 'waiting');
CREATE INDEX runs_deadline ON runs (deadline_at)
    WHERE deadline_at IS NOT NULL AND status IN ('queued', 'running', 'waiting', 'pending');

CREATE TABLE queues (
    name            text PRIMARY KEY,
    concurrency     integer,
    rate_per_minute integer,
    invoke_url      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per claim, for the per-minute rate cap (a sliding window over the last 60 s). Old
-- rows are pruned by the reconciler.
CREATE TABLE queue_claims (
    queue_name text NOT NULL,
    run_id     text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_claims_window ON queue_claims (queue_name, claimed_at);

CREATE TABLE schedules (
    name          text PRIMARY KEY,
    cron          text NOT NULL,
    workflow_name text NOT NULL,
    input         jsonb,
    queue_name    text NOT NULL DEFAULT 'default',
    max_attempts  integer,
    enabled       boolean NOT NULL DEFAULT true,
    next_fire_at  timestamptz,
    last_fired_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Every webhook delivery attempt (recovery and push invoke), answered or not.
CREATE TABLE webhook_attempts (
    id          bigserial PRIMARY KEY,
    run_id      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('run.recover', 'run.invoke')),
    url         text NOT NULL,
    status_code integer,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_run ON webhook_attempts (run_id, created_at DESC);

-- One claim in one round trip. Plain SQL would read every count in the snapshot taken when the
-- statement started, before the queue lock was granted; in a VOLATILE function each statement
-- takes a fresh snapshot, so the counts made after the lock see every claim committed before it
-- and the caps hold across workers. The lock (transaction-scoped) is taken only for a queue
-- with caps: without them, FOR UPDATE SKIP LOCKED alone hands each run to one claimer.
CREATE FUNCTION claim_queued(
    p_queue text, p_lock_key bigint, p_token uuid, p_host text, p_pid integer,
    p_started text, p_lease float8)
RETURNS TABLE (
    run_id text, workflow_name text, attempt integer, input json, max_attempts integer,
    last_seq bigint, watched boolean)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    cap_concurrency integer;
    cap_rate integer;
BEGIN
    SELECT q.concurrency, q.rate_per_minute INTO cap_concurrency, cap_rate
    FROM queues q WHERE q.name = p_queue;
    IF cap_concurrency IS NOT NULL OR cap_rate IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(p_lock_key);
        IF cap_concurrency IS NOT NULL AND (
            SELECT count(*) FROM runs r
            WHERE r.queue_name = p_queue AND r.status = 'running') >= cap_concurrency THEN
            RETURN;
        END IF;
        IF cap_rate IS NOT NULL AND (
            SELECT count(*) FROM queue_claims c
            WHERE c.queue_name = p_queue AND c.claimed_at > now() - interval '1 minute'
            ) >= cap_rate THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT r.run_id FROM runs r
        WHERE r.queue_name = p_queue AND r.status = 'queued' AND r.run_at <= now()
          AND (r.deadline_at IS NULL OR r.deadline_at > now())
        ORDER BY r.priority DESC, r.run_at, r.created_at, r.run_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE runs r SET
            status = 'running', attempt = r.attempt + 1, last_seq = r.last_seq + 1,
            owner_token = p_token, owner_host = p_host, owner_pid = p_pid,
            owner_started = p_started,
            lease_expires_at = now() + make_interval(secs => p_lease),
            -- after the lock: claims are ordered by it
            claimed_at = clock_timestamp(),
            error = NULL, failure_class = NULL, updated_at = now()
        FROM picked WHERE r.run_id = picked.run_id
        RETURNING r.run_id, r.workflow_name, r.attempt, r.input, r.max_attempts,
                  r.last_seq, coalesce(r.watched_until > now(), false) AS watched
    ), ev AS (
        INSERT INTO events (run_id, seq, type, payload)
        SELECT c.run_id, c.last_seq, 'run.started',
               jsonb_build_object('attempt', c.attempt, 'queue', p_queue)
        FROM claimed c
    ), log AS (
        INSERT INTO queue_claims (queue_name, run_id) SELECT p_queue, c.run_id FROM claimed c
    )
    SELECT * FROM claimed;
END
$$;
