-- Bearer tokens of the administration API (internal/admin), created with
-- sqin admin token create; stored as SHA-256 hashes.
CREATE TABLE admin_tokens (
	id TEXT NOT NULL PRIMARY KEY,
	hash TEXT NOT NULL UNIQUE,
	note TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL
) STRICT;
