-- Live state, gates, child runs, the usage ledger, and live event delivery.
-- Applied with search_path set to the Tidebase schema.

-- Workflow-body operations (state updates, emitted events) done by all attempts so far: a
-- resumed run skips the ones an earlier attempt already did, so replay does not repeat them.
ALTER TABLE runs ADD COLUMN ops integer NOT NULL DEFAULT 0;
-- Someone is listening for this run's events until then: writers NOTIFY only while it is set
-- (NOTIFY serialises committing transactions cluster-wide; unwatched runs do not pay for it).
ALTER TABLE runs ADD COLUMN watched_until timestamptz;

-- RFC 7386 JSON merge patch: objects merge recursively, null removes a key, anything else
-- replaces. search_path is pinned so the recursive call resolves without a qualified name.
CREATE FUNCTION json_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    result jsonb;
    k text;
    v jsonb;
BEGIN
    IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    IF target IS NULL OR jsonb_typeof(target) <> 'object' THEN
        result := '{}'::jsonb;
    ELSE
        result := target;
    END IF;
    FOR k, v IN SELECT key, value FROM jsonb_each(patch) LOOP
        IF jsonb_typeof(v) = 'null' THEN
            result := result - k;
        ELSE
            result := jsonb_set(result, ARRAY[k], json_merge_patch(result -> k, v), true);
        END IF;
    END LOOP;
    RETURN result;
END
$$;

CREATE TABLE run_state (
    run_id     text PRIMARY KEY,
    version    integer NOT NULL,
    value      jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE state_versions (
    run_id     text NOT NULL,
    version    integer NOT NULL,
    value      jsonb,
    labels     text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, version)
);

CREATE TABLE gates (
    run_id      text NOT NULL,
    name        text NOT NULL,
    prompt      text NOT NULL,
    data        jsonb,
    status      text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    actor       text,
    payload     jsonb,
    -- A secret for resolving from outside (an approval link): checked when a resolver gives one.
    token       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (run_id, name)
);

CREATE INDEX gates_pending_idx ON gates (created_at) WHERE status = 'pending';

CREATE TABLE run_edges (
    parent_run_id text NOT NULL,
    edge_name     text NOT NULL,
    child_run_id  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (parent_run_id, edge_name)
);

CREATE INDEX run_edges_child_idx ON run_edges (child_run_id);

CREATE TABLE usage_records (
    id            bigserial PRIMARY KEY,
    run_id        text NOT NULL,
    step_name     text,
    attempt       integer NOT NULL,
    kind          text NOT NULL,
    provider      text,
    model         text,
    input_tokens  bigint,
    output_tokens bigint,
    total_tokens  bigint,
    cost_usd      numeric(20, 10),
    cost_source   text,
    label         text,
    metadata      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX usage_records_run_idx ON usage_records (run_id);
CREATE INDEX usage_records_created_idx ON usage_records (created_at);
