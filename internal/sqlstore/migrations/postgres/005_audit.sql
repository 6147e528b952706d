-- The tamper-evident audit log (internal/audit, docs/audit.md).
--
-- audit_state.size counts the events ever appended: a transaction that
-- appends k events adds k to it (UPDATE … RETURNING, which locks the row
-- until commit) and numbers them from the old value, so the numbers are
-- gap-free and in commit order across every server instance. audit_events
-- keeps each event's fields, its salt and the RFC 9162 leaf hash of its
-- canonical entry; a redacted event (retention) has its personal fields
-- and salt dropped and keeps the digest they made (personal_digest), so
-- its leaf still checks. audit_subtrees caches the hashes of complete
-- subtrees of 256 leaves and more (node = level << 56 | index), derived
-- data that proofs read. Triggers refuse any change but appending and
-- redaction: a guard against mistakes and injected SQL, not against
-- whoever owns the database (the signed tree heads published elsewhere
-- are). Give the server's role no TRUNCATE, DELETE or TRIGGER privilege on
-- these tables.

CREATE TABLE audit_state (
	id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	size BIGINT NOT NULL
);
INSERT INTO audit_state (id, size) VALUES (1, 0);

CREATE TABLE audit_events (
	seq BIGINT NOT NULL PRIMARY KEY,
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
	salt BYTEA,
	personal_digest BYTEA,
	leaf_hash BYTEA NOT NULL,
	redacted BOOLEAN NOT NULL
);
CREATE INDEX audit_events_subject ON audit_events (subject, seq) WHERE subject <> '';
CREATE INDEX audit_events_at ON audit_events (at);

CREATE TABLE audit_tree_heads (
	tree_size BIGINT NOT NULL PRIMARY KEY,
	timestamp BIGINT NOT NULL,
	root_hash BYTEA NOT NULL,
	key_id TEXT COLLATE "C" NOT NULL,
	signature BYTEA NOT NULL
);

CREATE TABLE audit_subtrees (
	node BIGINT NOT NULL PRIMARY KEY,
	hash BYTEA NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$;

CREATE FUNCTION audit_state_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		IF NEW.id = OLD.id AND NEW.size >= OLD.size THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'audit_state: the log size only grows (% refused)', TG_OP;
END
$$;

CREATE FUNCTION audit_events_redaction_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		IF NOT OLD.redacted AND NEW.redacted AND NEW.seq = OLD.seq AND NEW.at = OLD.at
			AND NEW.actor_kind = OLD.actor_kind AND NEW.action = OLD.action
			AND NEW.client_id = OLD.client_id AND NEW.public_body = OLD.public_body
			AND NEW.attributes = OLD.attributes AND NEW.outcome = OLD.outcome
			AND NEW.leaf_hash = OLD.leaf_hash AND NEW.request_id = '' AND NEW.actor_id = ''
			AND NEW.subject = '' AND NEW.legal_basis = '' AND NEW.detail = '' AND NEW.salt IS NULL
			AND OLD.personal_digest IS NULL AND length(NEW.personal_digest) = 32 THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'audit_events is append-only: only redaction may change a row (% refused)', TG_OP;
END
$$;

CREATE TRIGGER audit_state_guard BEFORE UPDATE OR DELETE ON audit_state
	FOR EACH ROW EXECUTE FUNCTION audit_state_grows();
CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION audit_events_redaction_only();
CREATE TRIGGER audit_tree_heads_guard BEFORE UPDATE OR DELETE ON audit_tree_heads
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_subtrees_guard BEFORE UPDATE ON audit_subtrees
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_truncate_guard BEFORE TRUNCATE ON audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_heads_truncate_guard BEFORE TRUNCATE ON audit_tree_heads
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_state_truncate_guard BEFORE TRUNCATE ON audit_state
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
