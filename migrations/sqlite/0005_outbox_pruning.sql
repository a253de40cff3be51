-- Bulkhead ledger, SQLite dialect, version 5: the outbox's low-water mark. Pruning old events moves
-- it; a consumer whose cursor is below it knows events it never saw are gone (the evidence shipper
-- records that range as a gap).
CREATE TABLE outbox_state (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  pruned_through INTEGER NOT NULL
);
INSERT INTO outbox_state (id, pruned_through) VALUES (1, 0);
