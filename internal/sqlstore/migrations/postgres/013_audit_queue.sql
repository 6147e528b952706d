-- audit_queue holds the events of committed changes that are not yet in
-- the log. A change's transaction inserts its events here (no shared row:
-- audited transactions commit side by side and their WAL flushes group);
-- one sequencer at a time across instances (advisory lock) moves them into
-- audit_events in batches, numbering them from audit_state and computing
-- their leaf hashes, and deletes them here in the same transaction. So an
-- event is in exactly one of the two tables, and the log stays gap-free.
-- The columns are audit_events' fields before numbering, with the
-- transaction that queued them: the sequencer takes whole transactions, in
-- order of xact then id, so each transaction's events stay contiguous and
-- in order in the log (ids alone interleave concurrent inserts).
CREATE TABLE audit_queue (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	xact BIGINT NOT NULL DEFAULT txid_current(),
	at BIGINT NOT NULL,
	request_id TEXT COLLATE "C" NOT NULL,
	actor_kind TEXT COLLATE "C" NOT NULL,
	actor_id TEXT COLLATE "C" NOT NULL,
	action TEXT COLLATE "C" NOT NULL,
	subject TEXT COLLATE "C" NOT NULL,
	client_id TEXT COLLATE "C" NOT NULL,
	public_body TEXT COLLATE "C" NOT NULL,
	legal_basis TEXT COLLATE "C" NOT NULL,
	attributes TEXT COLLATE "C" NOT NULL,
	outcome TEXT COLLATE "C" NOT NULL,
	detail TEXT COLLATE "C" NOT NULL,
	salt BYTEA
);

CREATE INDEX audit_queue_xact ON audit_queue (xact);

-- Rows leave the queue only by DELETE (the sequencer); they are never
-- changed.
CREATE TRIGGER audit_queue_guard BEFORE UPDATE ON audit_queue
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_queue_truncate_guard BEFORE TRUNCATE ON audit_queue
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
