-- Writes survive a lost connection: every statement that appends to a run's log stores a
-- client-generated id on its event row. A statement retried after the connection dropped
-- mid-flight looks for its own id first, so it is never applied twice; the unique index also
-- refuses a retry racing the original (a backend that committed after the client gave up).
-- Applied with search_path set to the Tidebase schema.

ALTER TABLE events ADD COLUMN write_id uuid;
CREATE UNIQUE INDEX events_write_id_idx ON events (run_id, write_id) WHERE write_id IS NOT NULL;
