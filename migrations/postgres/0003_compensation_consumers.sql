-- Bulkhead ledger, PostgreSQL dialect, version 3: compensation jobs and event-consumer cursors.

ALTER TABLE bulkhead.jobs ADD COLUMN kind text NOT NULL DEFAULT 'run' CHECK (kind IN ('run', 'compensation'));

ALTER TABLE bulkhead.task_types ADD COLUMN compensable boolean NOT NULL DEFAULT false;

CREATE TABLE bulkhead.consumers (
  name       text PRIMARY KEY,
  cursor     bigint  NOT NULL DEFAULT 0,
  failures   integer NOT NULL DEFAULT 0,
  last_error text,
  updated_at bigint  NOT NULL
);
