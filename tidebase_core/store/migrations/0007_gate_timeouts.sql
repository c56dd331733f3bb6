-- Gate timeouts (`timeoutMs` on the protocol's gates/begin): when a pending gate expires, it is
-- decided 'rejected' by actor 'timeout', through the same statement as any decision, so every
-- waiter (in-process or over HTTP) sees it. Applied with search_path set to the Tidebase schema.

ALTER TABLE gates ADD COLUMN expires_at timestamptz;

CREATE INDEX gates_expiring_idx ON gates (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
