-- Bulkhead ledger, PostgreSQL dialect, version 5: the outbox's low-water mark. Pruning old events
-- moves it; a consumer whose cursor is below it knows events it never saw are gone (the evidence
-- shipper records that range as a gap).
CREATE TABLE bulkhead.outbox_state (
  id             integer PRIMARY KEY CHECK (id = 1),
  pruned_through bigint NOT NULL
);
INSERT INTO bulkhead.outbox_state (id, pruned_through) VALUES (1, 0);
