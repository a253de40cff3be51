-- Bulkhead ledger, PostgreSQL dialect, version 2: the registry (tenants, API keys, task-type
-- contracts). The same tables and columns as migrations/sqlite/0002_registry.sql.

CREATE TABLE bulkhead.tenants (
  name       text COLLATE "C" PRIMARY KEY,
  created_at bigint NOT NULL
);

CREATE TABLE bulkhead.api_keys (
  id          text COLLATE "C" PRIMARY KEY,
  tenant      text COLLATE "C" NOT NULL REFERENCES bulkhead.tenants (name),
  roles       jsonb  NOT NULL,                 -- JSON array of role names
  name        text   NOT NULL,
  secret_hash text   NOT NULL,                 -- SHA-256 of the secret, hex; the secret itself is never stored
  created_at  bigint NOT NULL,
  revoked_at  bigint
);
CREATE INDEX api_keys_tenant ON bulkhead.api_keys (tenant, created_at);

CREATE TABLE bulkhead.task_types (
  name            text COLLATE "C" NOT NULL,
  version         integer  NOT NULL,
  input_schema    jsonb    NOT NULL,
  queue           text COLLATE "C" NOT NULL,
  runtime         text     NOT NULL,
  timeout_ms      bigint   NOT NULL,
  lease_ms        integer  NOT NULL,
  max_attempts    integer  NOT NULL,
  backoff_base_ms integer  NOT NULL,
  backoff_max_ms  bigint   NOT NULL,
  classification  smallint NOT NULL,
  source          text COLLATE "C" NOT NULL,
  updated_at      bigint   NOT NULL,
  PRIMARY KEY (name, version)
);
