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
