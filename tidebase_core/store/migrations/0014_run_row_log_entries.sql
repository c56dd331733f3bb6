-- A new run that completes before its first durable operation is written in one statement
-- (DESIGN §6): its row is then also its log's first two entries, seq 1 run.started and seq 2
-- run.completed (both {"attempt": 1}, at created_at and completed_at), as a completed step's
-- row is its step.completed entry. The log reads the same (queries._RUN_LOG); the run is one
-- row where it was three. Later entries (an event appended from outside) take seq 3 on.
-- Applied with search_path set to the Tidebase schema.

ALTER TABLE runs ADD COLUMN log_in_row boolean NOT NULL DEFAULT false;
