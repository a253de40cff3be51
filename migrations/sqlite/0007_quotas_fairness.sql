-- Bulkhead ledger, SQLite dialect, version 7: per-tenant quotas and fair claiming.

-- Fair claiming takes runnable jobs round-robin across the tenants of a queue. This index serves
-- both of its walks: the next tenant with queued work (a seek on (queue, tenant)) and a tenant's
-- own claim order (priority DESC, run_at, id). It replaces jobs_claim, whose order it keeps within
-- each tenant.
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim_fair ON jobs (queue, tenant, priority DESC, run_at, id) WHERE state = 'queued';

-- What maxRunning counts: a tenant's leased and running jobs, in every queue.
CREATE INDEX jobs_tenant_running ON jobs (tenant) WHERE state IN ('leased', 'running');
-- What maxQueued counts besides a tenant's queued jobs (those are counted on jobs_claim_fair, queue
-- by queue): its jobs awaiting approval or blocked. Jobs pass through these states off the
-- submit-claim-complete path, so this index costs that path nothing.
CREATE INDEX jobs_tenant_held ON jobs (tenant) WHERE state IN ('awaiting_approval', 'blocked');

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
