-- Budgets (DESIGN §9, guarantee 13) and usage by agent.
-- Applied with search_path set to the Tidebase schema.

-- The run's own caps ({"usd": "5.0", "tokens": 200000, ...}); NULL: none of its own.
ALTER TABLE runs ADD COLUMN budget jsonb;
-- The runs whose budgets govern this one, nearest first (itself if it has one, then the
-- ancestors that do), fixed when the run is created (and by set_budget). NULL: none, and then
-- a run checks nothing: the claim returns this column, so a run without a budget pays no I/O.
ALTER TABLE runs ADD COLUMN budget_holders text[];
-- The budget.warning event (80 % of a cap) went out for the current budget.
ALTER TABLE runs ADD COLUMN budget_warned boolean NOT NULL DEFAULT false;

-- Which agent made the call (Pydantic AI / Agents SDK agent name, LangChain run name).
ALTER TABLE usage_records ADD COLUMN agent text;

-- The spend of each budget in p_holders: every usage row of the holder's run tree (the run and
-- its descendants through run_edges), next to the budget. With p_warn, a budget at 80 % of a
-- cap that has not warned yet is marked and gets its budget.warning event, in the same
-- statement; the row lock and the re-checked NOT budget_warned make that happen once under
-- concurrent checks. The caller NOTIFYs listeners (it knows the channel prefix).
--
-- A function because of its plan: as a plain prepared statement Postgres re-plans it on every
-- execution (the generic plan's estimate for unnest(array) loses to the custom plans), and the
-- planning cost 4-6x the execution (measured ~450 µs against ~90 µs per check). Here the plan is
-- generic and cached for the session. Lookups go through the run_edges and usage_records
-- indexes (per run of the tree), never through a scan of the ledger.
CREATE FUNCTION budget_spend(p_holders text[], p_run_id text, p_warn boolean)
RETURNS TABLE (
    run_id text, budget jsonb, calls bigint, usd numeric, tokens bigint, input_tokens bigint,
    output_tokens bigint, warned boolean, watched boolean, last_seq bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    IF p_warn THEN
        RETURN QUERY
        WITH RECURSIVE tree AS (
            SELECT h.run_id AS holder, h.run_id FROM unnest(p_holders) AS h(run_id)
            UNION
            SELECT t.holder, e.child_run_id
            FROM run_edges e JOIN tree t ON e.parent_run_id = t.run_id
        ), per_run AS (
            SELECT t.holder, x.*
            FROM tree t CROSS JOIN LATERAL (
                SELECT count(*) AS calls, sum(u.cost_usd) AS usd, sum(u.total_tokens) AS tokens,
                       sum(u.input_tokens) AS input_tokens, sum(u.output_tokens) AS output_tokens
                FROM usage_records u WHERE u.run_id = t.run_id) x
        ), spend AS (
            SELECT p.holder, sum(p.calls)::bigint AS calls, coalesce(sum(p.usd), 0) AS usd,
                   coalesce(sum(p.tokens), 0)::bigint AS tokens,
                   coalesce(sum(p.input_tokens), 0)::bigint AS input_tokens,
                   coalesce(sum(p.output_tokens), 0)::bigint AS output_tokens
            FROM per_run p GROUP BY p.holder
        ), b AS (
            SELECT r.run_id, r.budget, s.calls, s.usd, s.tokens, s.input_tokens,
                   s.output_tokens,
                   coalesce(s.usd >= 0.8 * (r.budget->>'usd')::numeric, false)
                   OR coalesce(s.tokens >= 0.8 * (r.budget->>'tokens')::numeric, false)
                   OR coalesce(s.input_tokens >= 0.8 * (r.budget->>'input_tokens')::numeric,
                               false)
                   OR coalesce(s.output_tokens >= 0.8 * (r.budget->>'output_tokens')::numeric,
                               false) AS near
            FROM runs r JOIN spend s ON s.holder = r.run_id
            WHERE r.run_id = ANY(p_holders) AND r.budget IS NOT NULL
        ), w AS (
            UPDATE runs r SET budget_warned = true, last_seq = r.last_seq + 1
            FROM b
            WHERE r.run_id = b.run_id AND b.near AND NOT r.budget_warned
            RETURNING r.run_id, r.last_seq, coalesce(r.watched_until > now(), false) AS watched
        ), ev AS (
            INSERT INTO events (run_id, seq, type, payload)
            SELECT w.run_id, w.last_seq, 'budget.warning', jsonb_build_object(
                       'run_id', w.run_id, 'checked_by', p_run_id, 'budget', b.budget,
                       'spend', jsonb_build_object(
                           'calls', b.calls, 'usd', b.usd::text, 'tokens', b.tokens,
                           'input_tokens', b.input_tokens, 'output_tokens', b.output_tokens))
            FROM w JOIN b ON b.run_id = w.run_id
        )
        SELECT b.run_id, b.budget, b.calls, b.usd, b.tokens, b.input_tokens, b.output_tokens,
               w.run_id IS NOT NULL, coalesce(w.watched, false), w.last_seq
        FROM b LEFT JOIN w ON w.run_id = b.run_id;
    ELSE
        RETURN QUERY
        WITH RECURSIVE tree AS (
            SELECT h.run_id AS holder, h.run_id FROM unnest(p_holders) AS h(run_id)
            UNION
            SELECT t.holder, e.child_run_id
            FROM run_edges e JOIN tree t ON e.parent_run_id = t.run_id
        ), per_run AS (
            SELECT t.holder, x.*
            FROM tree t CROSS JOIN LATERAL (
                SELECT count(*) AS calls, sum(u.cost_usd) AS usd, sum(u.total_tokens) AS tokens,
                       sum(u.input_tokens) AS input_tokens, sum(u.output_tokens) AS output_tokens
                FROM usage_records u WHERE u.run_id = t.run_id) x
        )
        SELECT r.run_id, r.budget, sum(p.calls)::bigint, coalesce(sum(p.usd), 0),
               coalesce(sum(p.tokens), 0)::bigint, coalesce(sum(p.input_tokens), 0)::bigint,
               coalesce(sum(p.output_tokens), 0)::bigint, false, false, NULL::bigint
        FROM runs r JOIN per_run p ON p.holder = r.run_id
        WHERE r.run_id = ANY(p_holders) AND r.budget IS NOT NULL
        GROUP BY r.run_id, r.budget;
    END IF;
END
$$;
