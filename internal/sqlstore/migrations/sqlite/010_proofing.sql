-- Shared secrets delivered by their holder body for local checks
-- (internal/proofing): only keyed hashes, never the clear values.
CREATE TABLE proofing_secrets (
	secret_type TEXT NOT NULL,
	person_id TEXT NOT NULL,
	hash BLOB NOT NULL,
	delivered_at INTEGER NOT NULL,
	PRIMARY KEY (secret_type, person_id)
) STRICT, WITHOUT ROWID;
