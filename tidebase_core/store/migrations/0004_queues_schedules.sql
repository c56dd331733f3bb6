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
