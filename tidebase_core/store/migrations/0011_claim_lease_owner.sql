-- A queue claim over the HTTP protocol names its worker in the claim itself: the run row's
-- protocol_owner and the `run.claimed` entry's `leaseOwner` (as the protocol logs it), in the one
-- statement (the server named the owner in a second statement, after the entry was written).
-- In-process claims pass no owner. Otherwise the function of 0009.
-- Applied with search_path set to the Tidebase schema.

DROP FUNCTION claim_queued(text, bigint, uuid, text, integer, text, float8);

CREATE FUNCTION claim_queued(
    p_queue text, p_lock_key bigint, p_token uuid, p_host text, p_pid integer,
    p_started text, p_lease float8, p_protocol_owner text DEFAULT NULL)
RETURNS TABLE (
    run_id text, workflow_name text, attempt integer, input json, max_attempts integer,
    last_seq bigint, watched boolean)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    cap_concurrency integer;
    cap_rate integer;
BEGIN
    SELECT q.concurrency, q.rate_per_minute INTO cap_concurrency, cap_rate
    FROM queues q WHERE q.name = p_queue;
    IF cap_concurrency IS NOT NULL OR cap_rate IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(p_lock_key);
        IF cap_concurrency IS NOT NULL AND (
            SELECT count(*) FROM runs r
            WHERE r.queue_name = p_queue AND r.status = 'running') >= cap_concurrency THEN
            RETURN;
        END IF;
        IF cap_rate IS NOT NULL AND (
            SELECT count(*) FROM queue_claims c
            WHERE c.queue_name = p_queue AND c.claimed_at > now() - interval '1 minute'
            ) >= cap_rate THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT r.run_id FROM runs r
        WHERE r.queue_name = p_queue AND r.status = 'queued' AND r.run_at <= now()
          AND (r.deadline_at IS NULL OR r.deadline_at > now())
        ORDER BY r.priority DESC, r.run_at, r.created_at, r.run_id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE runs r SET
            status = 'running', attempt = r.attempt + 1, last_seq = r.last_seq + 1,
            owner_token = p_token, owner_host = p_host, owner_pid = p_pid,
            owner_started = p_started, protocol_owner = p_protocol_owner,
            lease_expires_at = now() + make_interval(secs => p_lease),
            -- after the lock: claims are ordered by it
            claimed_at = clock_timestamp(),
            error = NULL, failure_class = NULL, updated_at = now()
        FROM picked WHERE r.run_id = picked.run_id
        RETURNING r.run_id, r.workflow_name, r.attempt, r.input, r.max_attempts,
                  r.last_seq, coalesce(r.watched_until > now(), false) AS watched
    ), ev AS (
        INSERT INTO events (run_id, seq, type, payload)
        SELECT c.run_id, c.last_seq, 'run.claimed',
               jsonb_build_object('attempt', c.attempt, 'queue', p_queue)
                   || CASE WHEN p_protocol_owner IS NULL THEN '{}'::jsonb
                           ELSE jsonb_build_object('leaseOwner', p_protocol_owner) END
        FROM claimed c
    ), log AS (
        INSERT INTO queue_claims (queue_name, run_id) SELECT p_queue, c.run_id FROM claimed c
    )
    SELECT * FROM claimed;
END
$$;
