-- Bulkhead evidence store, SQLite dialect, version 1: the hash-chained entries, the shipper's
-- position, checkpoint keys, legal holds and the last verification. A file of its own: a separate
-- failure domain from the ledger.

CREATE TABLE entries (
  seq            INTEGER PRIMARY KEY,
  prev_hash      TEXT    NOT NULL,
  hash           TEXT    NOT NULL,
  recorded_at    INTEGER NOT NULL,
  occurred_at    INTEGER NOT NULL,
  tenant         TEXT    NOT NULL,
  correlation_id TEXT,
  kind           TEXT    NOT NULL,
  subject        TEXT    NOT NULL,
  source_seq     INTEGER,
  commitments    TEXT    NOT NULL,
  fields         TEXT    NOT NULL
);
-- One entry per outbox event, however often the shipper retries.
CREATE UNIQUE INDEX entries_source ON entries (source_seq) WHERE source_seq IS NOT NULL;
CREATE INDEX entries_correlation ON entries (correlation_id, seq) WHERE correlation_id IS NOT NULL;
CREATE INDEX entries_kind ON entries (kind, seq) WHERE kind IN ('checkpoint', 'gap', 'redaction', 'retention', 'hold', 'hold_released');

-- The highest outbox seq shipped (or recorded as a gap), moved in the transaction that appends.
CREATE TABLE shipping (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  shipped_through INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
);
INSERT INTO shipping (id, shipped_through, updated_at) VALUES (1, 0, 0);

CREATE TABLE signing_keys (
  key_id     TEXT PRIMARY KEY,
  public_pem TEXT    NOT NULL,
  added_at   INTEGER NOT NULL
);

-- A hold covers one tenant's evidence, or one correlation id of one tenant.
CREATE TABLE holds (
  id             TEXT PRIMARY KEY,
  tenant         TEXT    NOT NULL,
  correlation_id TEXT,
  placed_by      TEXT    NOT NULL,
  -- Placed with a system-tenant key: only a system-tenant key releases it.
  by_system      INTEGER NOT NULL,
  reason         TEXT    NOT NULL,
  placed_seq     INTEGER NOT NULL,
  placed_at      INTEGER NOT NULL,
  released_seq   INTEGER,
  released_at    INTEGER
);

CREATE TABLE verifications (
  id            INTEGER PRIMARY KEY CHECK (id = 1),
  at            INTEGER NOT NULL,
  ok            INTEGER NOT NULL,
  entries       INTEGER NOT NULL,
  head_seq      INTEGER,
  first_bad_seq INTEGER,
  reason        TEXT
);
