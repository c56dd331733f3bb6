-- The Tidebase v0.7 HTTP protocol (`tidebase serve`): workers that drive runs over HTTP.
-- Applied with search_path set to the Tidebase schema.

-- The name a protocol worker holds the run's lease under (x-tidebase-worker, or one the server
-- chose). Such a worker also gets an owner_token (uuid5 of this name), so in-process workers see
-- the lease and are fenced by it exactly as by one of their own.
ALTER TABLE runs ADD COLUMN protocol_owner text;

-- Remote steps: each step has a lease of its own (steps/begin hands out `execute` to one worker
-- at a time; complete and fail are fenced by the owner), and keeps what the worker sent.
ALTER TABLE steps ADD COLUMN lease_owner text;
ALTER TABLE steps ADD COLUMN lease_expires_at timestamptz;
ALTER TABLE steps ADD COLUMN input json;
ALTER TABLE steps ADD COLUMN options jsonb;
ALTER TABLE steps ADD COLUMN started_at timestamptz;

-- Child runs created over HTTP carry upstream's edge type ('child', 'fanout', …) and metadata.
ALTER TABLE run_edges ADD COLUMN edge_type text NOT NULL DEFAULT 'child';
ALTER TABLE run_edges ADD COLUMN metadata jsonb;
