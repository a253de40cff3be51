-- Bulkhead evidence store, PostgreSQL dialect, version 1 (schema bulkhead_evidence): the
-- hash-chained entries, the shipper's position, checkpoint keys, legal holds and the last
-- verification. It may live in another database or server than the ledger, with its own credentials.

CREATE TABLE bulkhead_evidence.entries (
  seq            bigint PRIMARY KEY,
  prev_hash      text   NOT NULL,
  hash           text   NOT NULL,
  recorded_at    bigint NOT NULL,
  occurred_at    bigint NOT NULL,
  tenant         text   NOT NULL,
  correlation_id text,
  kind           text   NOT NULL,
  subject        text   NOT NULL,
  source_seq     bigint,
  -- Text, not jsonb: the verifier checks these bytes are canonical JSON.
  commitments    text   NOT NULL,
  fields         text   NOT NULL
);
CREATE UNIQUE INDEX entries_source ON bulkhead_evidence.entries (source_seq) WHERE source_seq IS NOT NULL;
CREATE INDEX entries_correlation ON bulkhead_evidence.entries (correlation_id, seq) WHERE correlation_id IS NOT NULL;
CREATE INDEX entries_kind ON bulkhead_evidence.entries (kind, seq)
  WHERE kind IN ('checkpoint', 'gap', 'redaction', 'retention', 'hold', 'hold_released');

-- One row: the chain head and the highest outbox seq shipped. Appenders lock it (FOR UPDATE), so
-- appends from several processes take their turns.
CREATE TABLE bulkhead_evidence.head (
  id              integer PRIMARY KEY CHECK (id = 1),
  seq             bigint NOT NULL,
  hash            text   NOT NULL,
  shipped_through bigint NOT NULL,
  updated_at      bigint NOT NULL
);
INSERT INTO bulkhead_evidence.head (id, seq, hash, shipped_through, updated_at)
  VALUES (1, 0, repeat('0', 64), 0, 0);

CREATE TABLE bulkhead_evidence.signing_keys (
  key_id     text PRIMARY KEY,
  public_pem text   NOT NULL,
  added_at   bigint NOT NULL
);

-- A hold covers one tenant's evidence, or one correlation id of one tenant.
CREATE TABLE bulkhead_evidence.holds (
  id             text PRIMARY KEY,
  tenant         text    NOT NULL,
  correlation_id text,
  placed_by      text    NOT NULL,
  -- Placed with a system-tenant key: only a system-tenant key releases it.
  by_system      boolean NOT NULL,
  reason         text   NOT NULL,
  placed_seq     bigint NOT NULL,
  placed_at      bigint NOT NULL,
  released_seq   bigint,
  released_at    bigint
);

CREATE TABLE bulkhead_evidence.verifications (
  id            integer PRIMARY KEY CHECK (id = 1),
  at            bigint  NOT NULL,
  ok            boolean NOT NULL,
  entries       bigint  NOT NULL,
  head_seq      bigint,
  first_bad_seq bigint,
  reason        text
);
