-- Gate timeouts and webhook channels of the protocol (`tidebase serve`). Applied with
-- search_path set to the Tidebase schema.

-- Gate timeouts (`timeoutMs` on gates/begin): when a pending gate expires, it is decided
-- 'rejected' by actor 'timeout', through the same statement as any decision, so every waiter
-- (in-process or over HTTP) sees it.
ALTER TABLE gates ADD COLUMN expires_at timestamptz;

CREATE INDEX gates_expiring_idx ON gates (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

-- Webhook channels: a run's (or one gate's) subscribers outside, POSTed the run's events that
-- match `events` (all when empty), signed with `secret` when there is one. The run's log is the
-- outbox: `delivered_seq` is how far it was delivered, `busy_until` the lease of whoever is
-- delivering it now (at least once: a delivery cut before it is recorded is sent again).
CREATE TABLE channels (
    id            bigserial PRIMARY KEY,
    run_id        text NOT NULL,
    gate_name     text,
    url           text NOT NULL,
    secret        text,
    events        jsonb NOT NULL DEFAULT '[]',
    delivered_seq bigint NOT NULL DEFAULT 0,
    busy_until    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channels_run_idx ON channels (run_id);

CREATE TABLE channel_deliveries (
    id            bigserial PRIMARY KEY,
    channel_id    bigint NOT NULL,
    run_id        text NOT NULL,
    gate_name     text,
    seq           bigint NOT NULL,
    event_type    text NOT NULL,
    payload       jsonb NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    http_status   integer,
    error_text    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX channel_deliveries_run_idx ON channel_deliveries (run_id, id);
