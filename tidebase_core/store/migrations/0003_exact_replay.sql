-- Exact replay: values come back as they were written, and workflow-body operations are
-- recognised by key rather than by position.
-- Applied with search_path set to the Tidebase schema.

-- `json` keeps the text exactly as written (key order, 1e16, -0.0); `jsonb` re-normalizes it,
-- and a replayed value that hashes differently breaks the next step's input check.
ALTER TABLE steps ALTER COLUMN output TYPE json USING output::json;
ALTER TABLE runs ALTER COLUMN input TYPE json USING input::json;
ALTER TABLE runs ALTER COLUMN result TYPE json USING result::json;

-- The concrete class of a model/dataclass/enum output, so a union or base-class annotation
-- replays the type the first execution returned.
ALTER TABLE steps ADD COLUMN output_type text;
ALTER TABLE runs ADD COLUMN result_type text;

-- A workflow-body operation (state update, emitted event) is the event row it wrote, under a
-- key from the same allocator as steps: a resumed run skips exactly the ones done before,
-- whatever order concurrent branches reached them in.
ALTER TABLE events ADD COLUMN op_key text;
CREATE UNIQUE INDEX events_op_key_idx ON events (run_id, op_key) WHERE op_key IS NOT NULL;
ALTER TABLE runs DROP COLUMN ops;

-- Where each state version sits in the run's log: a replaying body reads the state as it was.
ALTER TABLE state_versions ADD COLUMN seq bigint;
