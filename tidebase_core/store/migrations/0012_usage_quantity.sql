-- A usage row can count something other than tokens: `quantity` of `unit` (3 "searches", 1.5
-- "GB"), as the protocol's usage records do (upstream's usage_records.quantity and .unit).
-- Applied with search_path set to the Tidebase schema.

ALTER TABLE usage_records ADD COLUMN quantity numeric, ADD COLUMN unit text;
