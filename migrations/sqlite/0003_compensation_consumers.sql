-- Bulkhead ledger, SQLite dialect, version 3: compensation jobs and event-consumer cursors.

-- `run` jobs run a task's handler; `compensation` jobs run its compensate() for a parent job that
-- ended dead, cancelled or expired after committing steps.
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run' CHECK (kind IN ('run', 'compensation'));

-- Whether the task type defines compensate().
ALTER TABLE task_types ADD COLUMN compensable INTEGER NOT NULL DEFAULT 0;

-- Each outbox consumer owns its cursor (the last event seq it has handled) and its failures.
CREATE TABLE consumers (
  name       TEXT PRIMARY KEY,
  cursor     INTEGER NOT NULL DEFAULT 0,
  failures   INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  updated_at INTEGER NOT NULL
);
