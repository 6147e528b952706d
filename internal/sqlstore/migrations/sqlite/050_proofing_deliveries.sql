-- Secrets delivered by their holder through the import pipeline
-- (sqin proofing import, docs/formats/proofing-secrets.md): each stored
-- hash remembers the delivery (source, sequence) that brought it, so that
-- a snapshot drops what it no longer holds; proofing_deliveries records
-- each delivery for the sequence rules and idempotence. No value in clear.
ALTER TABLE proofing_secrets ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE proofing_secrets ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
CREATE TABLE proofing_deliveries (
	source TEXT NOT NULL,
	secret_type TEXT NOT NULL,
	sequence INTEGER NOT NULL,
	kind TEXT NOT NULL,
	sha256 TEXT NOT NULL,
	records INTEGER NOT NULL,
	status TEXT NOT NULL, -- running, done, refused
	stored INTEGER NOT NULL DEFAULT 0,
	removed INTEGER NOT NULL DEFAULT 0,
	dropped INTEGER NOT NULL DEFAULT 0,
	unknown INTEGER NOT NULL DEFAULT 0,
	rejected INTEGER NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	started_at INTEGER NOT NULL,
	finished_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (source, secret_type, sequence)
) STRICT;
