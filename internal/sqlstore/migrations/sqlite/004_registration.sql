-- Client registration by public bodies' integrators (RFC 7591) and its
-- management (RFC 7592). Tokens are stored as SHA-256 hashes.

-- Initial access tokens: created by operators, presented to POST /register.
CREATE TABLE initial_access_tokens (
	id TEXT NOT NULL PRIMARY KEY,
	hash TEXT NOT NULL UNIQUE,
	sector TEXT NOT NULL,
	allow_public_subject INTEGER NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL,
	note TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL
) STRICT;

-- Clients registered through the API, with their registration access
-- token; deleting the client deletes the row.
CREATE TABLE client_registrations (
	client_id TEXT NOT NULL PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
	token_hash TEXT NOT NULL,
	initial_token_id TEXT NOT NULL,
	sector TEXT NOT NULL,
	allow_public_subject INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
