-- Shared secrets delivered by their holder body for local checks
-- (internal/proofing): only keyed hashes, never the clear values.
CREATE TABLE proofing_secrets (
	secret_type TEXT COLLATE "C" NOT NULL,
	person_id TEXT COLLATE "C" NOT NULL,
	hash BYTEA NOT NULL,
	delivered_at BIGINT NOT NULL,
	PRIMARY KEY (secret_type, person_id)
);
