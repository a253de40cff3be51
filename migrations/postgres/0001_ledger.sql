-- Bulkhead ledger, PostgreSQL dialect, version 1: jobs, outbox events, durable steps, workers.
-- The same tables and columns as migrations/sqlite/0001_ledger.sql, in the schema `bulkhead`.
-- Times are epoch milliseconds (bigint) from the server's clock. JSON values are jsonb.
-- Identifiers use COLLATE "C" so that ORDER BY id is byte order, as in SQLite (and as JS compares
-- strings): job ids are UUIDv7 text that sorts by creation time.

CREATE SCHEMA IF NOT EXISTS bulkhead;

CREATE TABLE bulkhead.jobs (
  id               text COLLATE "C" PRIMARY KEY,
  tenant           text COLLATE "C" NOT NULL,
  task             text COLLATE "C" NOT NULL,
  task_version     integer  NOT NULL,
  queue            text COLLATE "C" NOT NULL,
  state            text COLLATE "C" NOT NULL,
  reason           text COLLATE "C",
  input            jsonb    NOT NULL,
  output           jsonb,
  error_code       text COLLATE "C",
  error_message    text,
  attempt          integer  NOT NULL DEFAULT 0,
  max_attempts     integer  NOT NULL,
  idempotency_key  text COLLATE "C",
  request_digest   text COLLATE "C",          -- with an idempotency key: SHA-256 of the canonical body
  correlation_id   text COLLATE "C" NOT NULL,
  parent_id        text COLLATE "C",
  priority         integer  NOT NULL DEFAULT 0,
  run_at           bigint   NOT NULL,
  deadline         bigint,
  classification   smallint NOT NULL,         -- 0 public, 1 internal, 2 confidential, 3 restricted
  lease_ms         integer  NOT NULL,
  lease_length_ms  integer,
  backoff_base_ms  integer  NOT NULL,
  backoff_max_ms   integer  NOT NULL,
  fence            bigint   NOT NULL DEFAULT 0,
  worker_id        text COLLATE "C",
  lease_expires_at bigint,
  cancel_requested boolean  NOT NULL DEFAULT false,
  progress         jsonb,
  authority        jsonb,
  created_at       bigint   NOT NULL,
  updated_at       bigint   NOT NULL,
  CHECK (state IN ('awaiting_approval','queued','blocked','leased','running',
                   'succeeded','dead','cancelled','expired','rejected'))
);

-- The claim walks this index in exactly its ORDER BY (priority DESC, run_at, id), so a deep queue
-- costs no sort: the first rows of the scan are the ones leased.
CREATE INDEX jobs_claim ON bulkhead.jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
-- The reaper's two scans (the first also finds a lost worker's leases: active leases are few).
CREATE INDEX jobs_lease_expiry ON bulkhead.jobs (lease_expires_at) WHERE state IN ('leased', 'running');
CREATE INDEX jobs_deadline ON bulkhead.jobs (deadline) WHERE deadline IS NOT NULL
  AND state IN ('awaiting_approval','queued','blocked','leased','running');
CREATE UNIQUE INDEX jobs_idempotency ON bulkhead.jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_tenant_list ON bulkhead.jobs (tenant, id);
CREATE INDEX jobs_correlation ON bulkhead.jobs (correlation_id);

-- The outbox. `tx_id` is the writing transaction's id. It is declared first on purpose: column
-- defaults are evaluated in column order, so a transaction has its id before it draws a `seq`,
-- which is what readEvents relies on to never skip an event still in flight.
CREATE TABLE bulkhead.events (
  tx_id          xid8     NOT NULL DEFAULT pg_current_xact_id(),
  seq            bigint   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type           text COLLATE "C" NOT NULL,
  tenant         text COLLATE "C" NOT NULL,
  job_id         text COLLATE "C",
  correlation_id text COLLATE "C",
  data           jsonb    NOT NULL,
  at             bigint   NOT NULL
);
CREATE INDEX events_job ON bulkhead.events (job_id, seq);

CREATE TABLE bulkhead.steps (
  job_id     text COLLATE "C" NOT NULL,
  step_key   text COLLATE "C" NOT NULL,
  result     jsonb    NOT NULL,
  fence      bigint   NOT NULL,
  attempt    integer  NOT NULL,
  created_at bigint   NOT NULL,
  PRIMARY KEY (job_id, step_key)
);

CREATE TABLE bulkhead.workers (
  id           text COLLATE "C" PRIMARY KEY,
  host         text     NOT NULL,
  pid          integer  NOT NULL,
  version      text     NOT NULL,
  labels       jsonb    NOT NULL,
  queues       jsonb    NOT NULL,
  clearance    smallint NOT NULL,
  concurrency  integer  NOT NULL,
  runtimes     jsonb    NOT NULL,
  meta         jsonb,
  state        text COLLATE "C" NOT NULL,
  started_at   bigint   NOT NULL,
  last_seen_at bigint   NOT NULL
);
