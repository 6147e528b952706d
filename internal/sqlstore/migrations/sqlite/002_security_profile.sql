-- Security profile (PAR, DPoP, private_key_jwt, FAPI 2.0), legacy subjects,
-- single-use identifiers.

ALTER TABLE clients ADD COLUMN jwks_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN require_par INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN require_dpop INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN profile TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN subject_type TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN frontchannel_logout_uri TEXT NOT NULL DEFAULT '';

ALTER TABLE auth_requests ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_requests ADD COLUMN pushed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';

-- Identifiers that may be used once (client assertion jti, DPoP proof jti),
-- shared by every instance.
CREATE TABLE used_once (
	key TEXT NOT NULL PRIMARY KEY,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX used_once_expires_at ON used_once (expires_at);

-- A sub a public body already knew a citizen by (migration from a legacy
-- service): it wins over the pairwise one for that sector.
CREATE TABLE legacy_subjects (
	sector TEXT NOT NULL,
	account_id TEXT NOT NULL,
	sub TEXT NOT NULL,
	PRIMARY KEY (sector, account_id),
	UNIQUE (sector, sub)
) STRICT, WITHOUT ROWID;
