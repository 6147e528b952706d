-- Client registration by public bodies' integrators (RFC 7591) and its
-- management (RFC 7592). Tokens are stored as SHA-256 hashes.

CREATE TABLE initial_access_tokens (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	hash TEXT COLLATE "C" NOT NULL UNIQUE,
	sector TEXT COLLATE "C" NOT NULL,
	allow_public_subject BOOLEAN NOT NULL,
	max_uses BIGINT NOT NULL,
	uses BIGINT NOT NULL,
	note TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT NOT NULL
);

CREATE TABLE client_registrations (
	client_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
	token_hash TEXT COLLATE "C" NOT NULL,
	initial_token_id TEXT COLLATE "C" NOT NULL,
	sector TEXT COLLATE "C" NOT NULL,
	allow_public_subject BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
