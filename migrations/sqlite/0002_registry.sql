-- Bulkhead ledger, SQLite dialect, version 2: the registry (tenants, API keys, task-type contracts).

CREATE TABLE tenants (
  name       TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,
  tenant      TEXT    NOT NULL REFERENCES tenants (name),
  roles       TEXT    NOT NULL,               -- JSON array of role names
  name        TEXT    NOT NULL,
  secret_hash TEXT    NOT NULL,               -- SHA-256 of the secret, hex; the secret itself is never stored
  created_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);

CREATE TABLE task_types (
  name           TEXT    NOT NULL,
  version        INTEGER NOT NULL,
  input_schema   TEXT    NOT NULL,
  queue          TEXT    NOT NULL,
  runtime        TEXT    NOT NULL,
  timeout_ms     INTEGER NOT NULL,
  lease_ms       INTEGER NOT NULL,
  max_attempts   INTEGER NOT NULL,
  backoff_base_ms INTEGER NOT NULL,
  backoff_max_ms INTEGER NOT NULL,
  classification INTEGER NOT NULL,
  source         TEXT    NOT NULL,
  updated_at     INTEGER NOT NULL,
  PRIMARY KEY (name, version)
);
