-- Bulkhead ledger, SQLite dialect, version 4: published config versions, the rollout state, and
-- each worker's applied version (ACK) or refusal (NACK).

CREATE TABLE config_versions (
  version        INTEGER PRIMARY KEY,
  document       TEXT    NOT NULL,            -- canonical JSON (RFC 8785) of the document
  digest         TEXT    NOT NULL,            -- sha256:<hex> of that canonical JSON
  previous_digest TEXT,
  kind           TEXT    NOT NULL CHECK (kind IN ('publish', 'rollback', 'canary')),
  canary_label   TEXT,
  published_by   TEXT    NOT NULL,
  published_at   INTEGER NOT NULL
);

-- One row: what every worker should run, and the canary in flight if any.
CREATE TABLE config_rollout (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  current_version INTEGER REFERENCES config_versions (version),
  canary_version INTEGER REFERENCES config_versions (version),
  canary_label   TEXT,
  mode           TEXT    NOT NULL DEFAULT 'normal' CHECK (mode IN ('normal', 'read_only')),
  updated_at     INTEGER NOT NULL
);
INSERT INTO config_rollout (id, updated_at) VALUES (1, 0);

ALTER TABLE workers ADD COLUMN config_version INTEGER;   -- last version applied (ACK)
ALTER TABLE workers ADD COLUMN config_nack_version INTEGER;
ALTER TABLE workers ADD COLUMN config_nack_reason TEXT;
ALTER TABLE workers ADD COLUMN config_at INTEGER;        -- when the worker last reported
