-- Bearer tokens of the administration API (internal/admin), created with
-- sqin admin token create; stored as SHA-256 hashes.
CREATE TABLE admin_tokens (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	hash TEXT COLLATE "C" NOT NULL UNIQUE,
	note TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT NOT NULL
);
