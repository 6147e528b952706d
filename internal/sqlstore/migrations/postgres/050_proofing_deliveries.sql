-- Secrets delivered by their holder through the import pipeline
-- (sqin proofing import, docs/formats/proofing-secrets.md): each stored
-- hash remembers the delivery (source, sequence) that brought it, so that
-- a snapshot drops what it no longer holds; proofing_deliveries records
-- each delivery for the sequence rules and idempotence. No value in clear.
ALTER TABLE proofing_secrets ADD COLUMN source TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE proofing_secrets ADD COLUMN sequence BIGINT NOT NULL DEFAULT 0;
CREATE TABLE proofing_deliveries (
	source TEXT COLLATE "C" NOT NULL,
	secret_type TEXT COLLATE "C" NOT NULL,
	sequence BIGINT NOT NULL,
	kind TEXT COLLATE "C" NOT NULL,
	sha256 TEXT COLLATE "C" NOT NULL,
	records BIGINT NOT NULL,
	status TEXT COLLATE "C" NOT NULL, -- running, done, refused
	stored BIGINT NOT NULL DEFAULT 0,
	removed BIGINT NOT NULL DEFAULT 0,
	dropped BIGINT NOT NULL DEFAULT 0,
	unknown BIGINT NOT NULL DEFAULT 0,
	rejected BIGINT NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	started_at BIGINT NOT NULL,
	finished_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (source, secret_type, sequence)
);
