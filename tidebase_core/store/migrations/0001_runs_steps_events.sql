-- Runs, their step checkpoints, and the per-run event log.
-- Applied with search_path set to the Tidebase schema.
--
-- steps and events carry no foreign key to runs on purpose: every row is inserted by a
-- statement that first updates its run row (the fence and the seq counter) and inserts FROM
-- that update, so a row without its run cannot be written. The foreign key's trigger cost ~7 %
-- of a step's first execution for no added guarantee. Deleting a run deletes its rows explicitly.

CREATE TABLE runs (
    run_id           text PRIMARY KEY,
    workflow_name    text NOT NULL,
    status           text NOT NULL CHECK (status IN
                         ('pending', 'queued', 'running', 'waiting', 'completed', 'failed', 'cancelled')),
    input            jsonb,
    input_hash       text,
    metadata         jsonb,
    result           jsonb,
    error            jsonb,
    failure_class    text,
    attempt          integer NOT NULL DEFAULT 0,
    -- The last seq handed out in this run's event log. Every log entry (a step checkpoint or an
    -- event row) takes last_seq + 1 while holding this row's lock, so seqs are gap-free and in
    -- commit order under any number of writers.
    last_seq         bigint NOT NULL DEFAULT 0,
    -- The lease: whoever holds owner_token may write; a takeover changes it (fencing).
    owner_token      uuid,
    owner_host       text,
    owner_pid        integer,
    owner_started    text,
    lease_expires_at timestamptz,
    cancel_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
) WITH (fillfactor = 70);  -- room for HOT updates: the row is touched on every checkpoint

CREATE INDEX runs_status_created_idx ON runs (status, created_at DESC);
CREATE INDEX runs_workflow_created_idx ON runs (workflow_name, created_at DESC);
CREATE INDEX runs_created_idx ON runs (created_at DESC);

CREATE TABLE steps (
    run_id          text NOT NULL,
    step_key        text NOT NULL,
    -- A completed checkpoint is also the run's `step.completed` log entry: one row per step.
    seq             bigint,
    status          text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    input_hash      text,
    output          jsonb,
    error           jsonb,
    attempt         integer NOT NULL,
    resume_decision text,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step_key)
);

CREATE TABLE events (
    run_id     text NOT NULL,
    seq        bigint NOT NULL,
    type       text NOT NULL,
    payload    jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
