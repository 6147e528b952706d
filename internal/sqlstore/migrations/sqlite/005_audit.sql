-- The tamper-evident audit log (internal/audit, docs/audit.md).
--
-- audit_state.size counts the events ever appended: a transaction that
-- appends k events adds k to it and numbers them from the old value, so
-- the numbers are gap-free and in commit order (SQLite has one writer;
-- PostgreSQL queues writers on the row). audit_events keeps each event's
-- fields, its salt and the RFC 9162 leaf hash of its canonical entry; a
-- redacted event (retention) has its personal fields and salt dropped and
-- keeps the digest they made (personal_digest), so its leaf still checks.
-- audit_subtrees caches the hashes of complete subtrees of 256 leaves and
-- more (node = level << 56 | index), derived data that proofs read.
-- Triggers refuse any change but appending and redaction: a guard against
-- mistakes and injected SQL, not against whoever owns the database (the
-- signed tree heads published elsewhere are).

CREATE TABLE audit_state (
	id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	size INTEGER NOT NULL
) STRICT;
INSERT INTO audit_state (id, size) VALUES (1, 0);

CREATE TABLE audit_events (
	seq INTEGER NOT NULL PRIMARY KEY,
	at INTEGER NOT NULL,
	request_id TEXT NOT NULL,
	actor_kind TEXT NOT NULL,
	actor_id TEXT NOT NULL,
	action TEXT NOT NULL,
	subject TEXT NOT NULL,
	client_id TEXT NOT NULL,
	public_body TEXT NOT NULL,
	legal_basis TEXT NOT NULL,
	attributes TEXT NOT NULL,
	outcome TEXT NOT NULL,
	detail TEXT NOT NULL,
	salt BLOB,
	personal_digest BLOB,
	leaf_hash BLOB NOT NULL,
	redacted INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_events_subject ON audit_events (subject, seq) WHERE subject <> '';
CREATE INDEX audit_events_at ON audit_events (at);

CREATE TABLE audit_tree_heads (
	tree_size INTEGER NOT NULL PRIMARY KEY,
	timestamp INTEGER NOT NULL,
	root_hash BLOB NOT NULL,
	key_id TEXT NOT NULL,
	signature BLOB NOT NULL
) STRICT;

CREATE TABLE audit_subtrees (
	node INTEGER NOT NULL PRIMARY KEY,
	hash BLOB NOT NULL
) STRICT;

CREATE TRIGGER audit_state_grows BEFORE UPDATE ON audit_state
WHEN NEW.size < OLD.size OR NEW.id <> OLD.id
BEGIN SELECT RAISE(ABORT, 'audit_state: the log size only grows'); END;
CREATE TRIGGER audit_state_kept BEFORE DELETE ON audit_state
BEGIN SELECT RAISE(ABORT, 'audit_state: the log size only grows'); END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_only_redaction BEFORE UPDATE ON audit_events
WHEN NOT (OLD.redacted = 0 AND NEW.redacted = 1 AND NEW.seq = OLD.seq AND NEW.at = OLD.at
	AND NEW.actor_kind = OLD.actor_kind AND NEW.action = OLD.action AND NEW.client_id = OLD.client_id
	AND NEW.public_body = OLD.public_body AND NEW.attributes = OLD.attributes AND NEW.outcome = OLD.outcome
	AND NEW.leaf_hash = OLD.leaf_hash AND NEW.request_id = '' AND NEW.actor_id = '' AND NEW.subject = ''
	AND NEW.legal_basis = '' AND NEW.detail = '' AND NEW.salt IS NULL AND OLD.personal_digest IS NULL
	AND length(NEW.personal_digest) = 32)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: only redaction may change a row'); END;

CREATE TRIGGER audit_tree_heads_no_update BEFORE UPDATE ON audit_tree_heads
BEGIN SELECT RAISE(ABORT, 'audit_tree_heads is append-only'); END;
CREATE TRIGGER audit_tree_heads_no_delete BEFORE DELETE ON audit_tree_heads
BEGIN SELECT RAISE(ABORT, 'audit_tree_heads is append-only'); END;
CREATE TRIGGER audit_subtrees_no_update BEFORE UPDATE ON audit_subtrees
BEGIN SELECT RAISE(ABORT, 'audit_subtrees is append-only'); END;
