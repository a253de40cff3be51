-- Bulkhead ledger, PostgreSQL dialect, version 7: per-tenant quotas and fair claiming.

-- Fair claiming takes runnable jobs round-robin across the tenants of a queue. This index serves
-- both of its walks: the next tenant with queued work (an index descent on (queue, tenant)) and a
-- tenant's own claim order (priority DESC, run_at, id). It replaces jobs_claim, whose order it keeps
-- within each tenant.
DROP INDEX bulkhead.jobs_claim;
CREATE INDEX jobs_claim_fair ON bulkhead.jobs (queue, tenant, priority DESC, run_at, id) WHERE state = 'queued';

-- What maxRunning counts: a tenant's leased and running jobs, in every queue.
CREATE INDEX jobs_tenant_running ON bulkhead.jobs (tenant) WHERE state IN ('leased', 'running');
-- What maxQueued counts besides a tenant's queued jobs (those are counted on jobs_claim_fair, queue
-- by queue): its jobs awaiting approval or blocked. Jobs pass through these states off the
-- submit-claim-complete path, so this index costs that path nothing.
CREATE INDEX jobs_tenant_held ON bulkhead.jobs (tenant) WHERE state IN ('awaiting_approval', 'blocked');

-- Where round-robin resumes in each queue: the tenant served last. A claimer that finds the row
-- held by a concurrent claimer leaves it to that one (it never waits for it).
CREATE TABLE bulkhead.claim_cursors (
  queue  text COLLATE "C" PRIMARY KEY,
  tenant text COLLATE "C" NOT NULL
);

-- Token buckets (submitPerSecond and other rates), shared by every replica: `tokens` as of
-- `updated_at` (store clock, epoch ms); `granted` records whether the last take was granted.
CREATE TABLE bulkhead.rate_buckets (
  tenant     text COLLATE "C" NOT NULL,
  bucket     text COLLATE "C" NOT NULL,
  tokens     double precision NOT NULL,
  updated_at bigint NOT NULL,
  granted    boolean NOT NULL,
  PRIMARY KEY (tenant, bucket)
);
