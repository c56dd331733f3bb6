-- What a state version says about itself, as the protocol's state writes give it: why it was
-- written, how much it matters, free-form metadata and who wrote it (upstream's
-- state_versions.reason, .importance, .metadata_json and .created_by). NULL: not given.
-- Applied with search_path set to the Tidebase schema.

ALTER TABLE state_versions
    ADD COLUMN reason text,
    ADD COLUMN importance text CHECK (importance IN ('transient', 'normal', 'checkpoint', 'milestone')),
    ADD COLUMN metadata jsonb,
    ADD COLUMN created_by text;
