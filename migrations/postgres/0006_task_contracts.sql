-- Bulkhead ledger, PostgreSQL dialect, version 6: the whole task contract on its registry row (effect,
-- egress, evidence mode, approval, freshControl beside the typed columns), as JSON. Rows written
-- before it hold '{}': readers fill the defaults.

ALTER TABLE bulkhead.task_types ADD COLUMN contract jsonb NOT NULL DEFAULT '{}'::jsonb;
