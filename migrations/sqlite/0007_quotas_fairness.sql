-- Bulkhead ledger, SQLite dialect, version 7: per-tenant quotas and fair claiming.

-- Fair claiming takes runnable jobs round-robin across the tenants of a queue. This index serves
-- both of its walks: the next tenant with queued work (a seek on (queue, tenant)) and a tenant's
-- own claim order (priority DESC, run_at, id). It replaces jobs_claim, whose order it keeps within
-- each tenant.
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim_fair ON jobs (queue, tenant, priority DESC, run_at, id) WHERE state = 'queued';

-- A tenant's unfinished jobs by state: what maxQueued (awaiting_approval, queued, blocked) and
-- maxRunning (leased, running) count, without reading the tenant's finished history.
CREATE INDEX jobs_tenant_open ON jobs (tenant, state)
  WHERE state IN ('awaiting_approval', 'queued', 'blocked', 'leased', 'running');

-- Where round-robin resumes in each queue: the tenant served last.
CREATE TABLE claim_cursors (
  queue  TEXT PRIMARY KEY,
  tenant TEXT NOT NULL
) WITHOUT ROWID;

-- Token buckets (submitPerSecond and other rates), shared by every process on the file: `tokens`
-- as of `updated_at` (epoch ms); `granted` records whether the last take was granted.
CREATE TABLE rate_buckets (
  tenant     TEXT    NOT NULL,
  bucket     TEXT    NOT NULL,
  tokens     REAL    NOT NULL,
  updated_at INTEGER NOT NULL,
  granted    INTEGER NOT NULL,
  PRIMARY KEY (tenant, bucket)
) WITHOUT ROWID;
