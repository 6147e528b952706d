-- Each queued event carries its entry (the bytes its leaf hash covers,
-- audit.Event.AppendEntry, with a zero number), so that the sequencer moves
-- queued events into the log in one statement and PostgreSQL hashes each
-- leaf once its number is known (sqlstore/audit.go). Rows queued before
-- this column existed have none: the sequencer moves those as it did,
-- hashing in Go; the partial index finds them at no cost.
ALTER TABLE audit_queue ADD COLUMN entry BYTEA;
CREATE INDEX audit_queue_without_entry ON audit_queue (id) WHERE entry IS NULL;
