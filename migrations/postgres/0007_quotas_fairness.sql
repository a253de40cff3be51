-- Bulkhead ledger, PostgreSQL dialect, version 7: per-tenant quotas and fair claiming.

-- Fair claiming takes runnable jobs round-robin across the tenants of a queue. This index serves
-- both of its walks: the next tenant with queued work (an index descent on (queue, tenant)) and a
-- tenant's own claim order (priority DESC, run_at, id). It replaces jobs_claim, whose order it keeps
-- within each tenant.
DROP INDEX bulkhead.jobs_claim;
CREATE INDEX jobs_claim_fair ON bulkhead.jobs (queue, tenant, priority DESC, run_at, id) WHERE state = 'queued';

-- A tenant's unfinished jobs by state: what maxQueued (awaiting_approval, queued, blocked) and
-- maxRunning (leased, running) count, without reading the tenant's finished history. Keyed on
-- (tenant || '') rather than tenant on purpose: the claim's scans name `tenant` and `state =
-- 'queued'`, and before the table has statistics the planner would take this smaller index for them
-- and sort a whole tenant's backlog; only the count queries, which spell the expression, can use it.
CREATE INDEX jobs_tenant_open ON bulkhead.jobs ((tenant || ''), state)
  WHERE state IN ('awaiting_approval', 'queued', 'blocked', 'leased', 'running');

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
