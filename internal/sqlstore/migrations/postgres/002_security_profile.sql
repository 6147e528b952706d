-- Security profile (PAR, DPoP, private_key_jwt, FAPI 2.0), legacy subjects,
-- single-use identifiers.

ALTER TABLE clients ADD COLUMN jwks_uri TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE clients ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE clients ADD COLUMN profile TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN subject_type TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN frontchannel_logout_uri TEXT COLLATE "C" NOT NULL DEFAULT '';

ALTER TABLE auth_requests ADD COLUMN dpop_jkt TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE auth_requests ADD COLUMN pushed BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN dpop_jkt TEXT COLLATE "C" NOT NULL DEFAULT '';

CREATE TABLE used_once (
	key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	expires_at BIGINT NOT NULL
);
CREATE INDEX used_once_expires_at ON used_once (expires_at);

CREATE TABLE legacy_subjects (
	sector TEXT COLLATE "C" NOT NULL,
	account_id TEXT COLLATE "C" NOT NULL,
	sub TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (sector, account_id),
	UNIQUE (sector, sub)
);
