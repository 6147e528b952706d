-- Times are unix milliseconds (0 = none), lists are space-separated text,
-- booleans are 0 or 1.

CREATE TABLE clients (
	id TEXT NOT NULL PRIMARY KEY,
	secret_hash TEXT NOT NULL,
	name TEXT NOT NULL,
	redirect_uris TEXT NOT NULL,
	post_logout_redirect_uris TEXT NOT NULL,
	grant_types TEXT NOT NULL,
	scopes TEXT NOT NULL,
	claims TEXT NOT NULL,
	auth_method TEXT NOT NULL,
	signing_alg TEXT NOT NULL,
	min_loa INTEGER NOT NULL,
	sector TEXT NOT NULL,
	jwks BLOB,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE accounts (
	id TEXT NOT NULL PRIMARY KEY,
	email TEXT NOT NULL UNIQUE,
	email_verified INTEGER NOT NULL,
	password_hash TEXT NOT NULL,
	loa INTEGER NOT NULL,
	person_id TEXT NOT NULL,
	locale TEXT NOT NULL,
	locked INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE persons (
	id TEXT NOT NULL PRIMARY KEY,
	family_name TEXT NOT NULL,
	given_name TEXT NOT NULL,
	birth_date TEXT NOT NULL,
	sex TEXT NOT NULL,
	health_no TEXT NOT NULL,
	civic_number TEXT NOT NULL,
	street TEXT NOT NULL,
	unit TEXT NOT NULL,
	municipality TEXT NOT NULL,
	province TEXT NOT NULL,
	postal_code TEXT NOT NULL,
	country TEXT NOT NULL,
	language TEXT NOT NULL,
	death_date TEXT NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
	id TEXT NOT NULL PRIMARY KEY,
	account_id TEXT NOT NULL,
	loa INTEGER NOT NULL,
	amr TEXT NOT NULL,
	auth_time INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE auth_requests (
	id TEXT NOT NULL PRIMARY KEY,
	client_id TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	state TEXT NOT NULL,
	nonce TEXT NOT NULL,
	scopes TEXT NOT NULL,
	claims TEXT NOT NULL,
	code_challenge TEXT NOT NULL,
	prompt TEXT NOT NULL,
	max_age INTEGER NOT NULL,
	login_hint TEXT NOT NULL,
	ui_locale TEXT NOT NULL,
	acr_values TEXT NOT NULL,
	response_mode TEXT NOT NULL,
	session_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE auth_codes (
	hash TEXT NOT NULL PRIMARY KEY,
	client_id TEXT NOT NULL,
	account_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	nonce TEXT NOT NULL,
	scopes TEXT NOT NULL,
	claims TEXT NOT NULL,
	code_challenge TEXT NOT NULL,
	loa INTEGER NOT NULL,
	amr TEXT NOT NULL,
	auth_time INTEGER NOT NULL,
	grant_id TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at INTEGER NOT NULL
) STRICT;
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE grants (
	id TEXT NOT NULL PRIMARY KEY,
	client_id TEXT NOT NULL,
	account_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	scopes TEXT NOT NULL,
	claims TEXT NOT NULL,
	loa INTEGER NOT NULL,
	amr TEXT NOT NULL,
	auth_time INTEGER NOT NULL,
	offline INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL
) STRICT;
CREATE INDEX grants_session_id ON grants (session_id);
CREATE INDEX grants_account_client ON grants (account_id, client_id);
CREATE INDEX grants_client_id ON grants (client_id);
CREATE INDEX grants_expires_at ON grants (expires_at);

CREATE TABLE refresh_tokens (
	hash TEXT NOT NULL PRIMARY KEY,
	grant_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE revoked_tokens (
	jti TEXT NOT NULL PRIMARY KEY,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

CREATE TABLE consents (
	account_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	scopes TEXT NOT NULL,
	claims TEXT NOT NULL,
	granted_at INTEGER NOT NULL,
	PRIMARY KEY (account_id, client_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE signing_keys (
	id TEXT NOT NULL PRIMARY KEY,
	alg TEXT NOT NULL,
	private_key BLOB,
	public_jwk BLOB,
	created_at INTEGER NOT NULL,
	retired_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;

-- One row per key and time bucket; expires_at is when the bucket leaves
-- every window it can count in.
CREATE TABLE rate_limits (
	key TEXT NOT NULL,
	bucket INTEGER NOT NULL,
	hits INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (key, bucket)
) STRICT, WITHOUT ROWID;
CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
