-- Codes by mail and password resets (internal/signup, issue 7).

-- A letter with a one-time code, requested by an account for the registry
-- person it claims to be, printed by `sqin letters export` to the address
-- the registry holds. No address is copied here: the export reads it. The
-- code exists in clear only in the printed PDF; code_hash is its HMAC under
-- a key derived from the master key. batch is '' until an export claims the
-- letter; exported_at, expires_at and code_hash are set when the export
-- commits. A letter is spent (used_at) once, or voided (voided_at) after
-- too many wrong codes or when it cannot be printed.
CREATE TABLE mail_letters (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	account_id TEXT COLLATE "C" NOT NULL,
	person_id TEXT COLLATE "C" NOT NULL,
	locale TEXT COLLATE "C" NOT NULL,
	requested_at BIGINT NOT NULL,
	batch TEXT COLLATE "C" NOT NULL,
	claimed_at BIGINT NOT NULL,
	code_hash TEXT COLLATE "C" NOT NULL,
	exported_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	attempts INTEGER NOT NULL,
	used_at BIGINT NOT NULL,
	voided_at BIGINT NOT NULL
);
CREATE INDEX mail_letters_account ON mail_letters (account_id);
CREATE INDEX mail_letters_queue ON mail_letters (exported_at, batch);

-- A password reset link sent by mail: keyed by the SHA-256 of its token,
-- short-lived and spent once.
CREATE TABLE password_resets (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	account_id TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at BIGINT NOT NULL
);
CREATE INDEX password_resets_account ON password_resets (account_id);
CREATE INDEX password_resets_expires_at ON password_resets (expires_at);

-- A password reset ends every session of the account.
CREATE INDEX sessions_account_id ON sessions (account_id);
