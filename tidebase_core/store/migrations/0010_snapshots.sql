-- Snapshots of the Tidebase v0.7 protocol (`POST /runs/{id}/snapshots` of `tidebase serve`): a
-- labeled value in a stream of its own ("<target type>:<target id>"), beside the run's state,
-- which has one stream. Versions count per stream; a snapshot never changes the run's state.
-- Applied with search_path set to the Tidebase schema.

CREATE TABLE snapshots (
    run_id     text NOT NULL,
    stream     text NOT NULL,
    version    integer NOT NULL,
    label      text NOT NULL,
    value      jsonb,
    reason     text,
    metadata   jsonb,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, stream, version)
);
