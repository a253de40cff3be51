-- Bulkhead ledger, PostgreSQL dialect, version 4: published config versions, the rollout state, and
-- each worker's applied version (ACK) or refusal (NACK).

CREATE TABLE bulkhead.config_versions (
  version        bigint PRIMARY KEY,
  document       TEXT    NOT NULL,            -- canonical JSON (RFC 8785) of the document
  digest         TEXT    NOT NULL,            -- sha256:<hex> of that canonical JSON
  previous_digest TEXT,
  kind           TEXT    NOT NULL CHECK (kind IN ('publish', 'rollback', 'canary')),
  canary_label   TEXT,
  published_by   TEXT    NOT NULL,
  published_at   bigint NOT NULL
);

-- One row: what every worker should run, and the canary in flight if any.
CREATE TABLE bulkhead.config_rollout (
  id             integer PRIMARY KEY CHECK (id = 1),
  current_version bigint REFERENCES bulkhead.config_versions (version),
  canary_version bigint REFERENCES bulkhead.config_versions (version),
  canary_label   TEXT,
  mode           TEXT    NOT NULL DEFAULT 'normal' CHECK (mode IN ('normal', 'read_only')),
  updated_at     bigint NOT NULL
);
INSERT INTO bulkhead.config_rollout (id, updated_at) VALUES (1, 0);

ALTER TABLE bulkhead.workers ADD COLUMN config_version bigint;   -- last version applied (ACK)
ALTER TABLE bulkhead.workers ADD COLUMN config_nack_version bigint;
ALTER TABLE bulkhead.workers ADD COLUMN config_nack_reason TEXT;
ALTER TABLE bulkhead.workers ADD COLUMN config_at bigint;        -- when the worker last reported
