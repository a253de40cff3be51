-- Bulkhead ledger, SQLite dialect, version 1: jobs, outbox events, durable steps, workers.
-- Times are epoch milliseconds. JSON values are stored as text.

CREATE TABLE jobs (
  id               TEXT PRIMARY KEY,
  tenant           TEXT    NOT NULL,
  task             TEXT    NOT NULL,
  task_version     INTEGER NOT NULL,
  queue            TEXT    NOT NULL,
  state            TEXT    NOT NULL,
  reason           TEXT,
  input            TEXT    NOT NULL,
  output           TEXT,
  error_code       TEXT,
  error_message    TEXT,
  attempt          INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER NOT NULL,
  idempotency_key  TEXT,
  request_digest   TEXT,                     -- with an idempotency key: SHA-256 of the canonical body
  correlation_id   TEXT    NOT NULL,
  parent_id        TEXT,
  priority         INTEGER NOT NULL DEFAULT 0,
  run_at           INTEGER NOT NULL,
  deadline         INTEGER,
  classification   INTEGER NOT NULL,         -- 0 public, 1 internal, 2 confidential, 3 restricted
  lease_ms         INTEGER NOT NULL,         -- the contract's lease length
  lease_length_ms  INTEGER,                  -- the current lease's length (a claim may override lease_ms)
  backoff_base_ms  INTEGER NOT NULL,
  backoff_max_ms   INTEGER NOT NULL,
  fence            INTEGER NOT NULL DEFAULT 0,
  worker_id        TEXT,
  lease_expires_at INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  progress         TEXT,
  authority        TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  CHECK (state IN ('awaiting_approval','queued','blocked','leased','running',
                   'succeeded','dead','cancelled','expired','rejected'))
);

-- The claim walks this index in exactly its ORDER BY, so a deep queue costs no sort.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
-- The reaper's two scans (the first also finds a lost worker's leases: active leases are few).
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE state IN ('leased', 'running');
CREATE INDEX jobs_deadline ON jobs (deadline) WHERE deadline IS NOT NULL
  AND state IN ('awaiting_approval','queued','blocked','leased','running');
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_tenant_list ON jobs (tenant, id);
CREATE INDEX jobs_correlation ON jobs (correlation_id);

CREATE TABLE events (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  type           TEXT    NOT NULL,
  tenant         TEXT    NOT NULL,
  job_id         TEXT,
  correlation_id TEXT,
  data           TEXT    NOT NULL,
  at             INTEGER NOT NULL
);
CREATE INDEX events_job ON events (job_id, seq);

CREATE TABLE steps (
  job_id     TEXT    NOT NULL,
  step_key   TEXT    NOT NULL,
  result     TEXT    NOT NULL,
  fence      INTEGER NOT NULL,
  attempt    INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, step_key)
) WITHOUT ROWID;

CREATE TABLE workers (
  id           TEXT PRIMARY KEY,
  host         TEXT    NOT NULL,
  pid          INTEGER NOT NULL,
  version      TEXT    NOT NULL,
  labels       TEXT    NOT NULL,
  queues       TEXT    NOT NULL,
  clearance    INTEGER NOT NULL,
  concurrency  INTEGER NOT NULL,
  runtimes     TEXT    NOT NULL,
  meta         TEXT,
  state        TEXT    NOT NULL,
  started_at   INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;
