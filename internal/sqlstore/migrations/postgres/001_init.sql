-- Times are unix milliseconds (0 = none), lists are space-separated text,
-- booleans are BOOLEAN.
-- Text compares bytewise (COLLATE "C"), as in SQLite.

CREATE TABLE clients (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	secret_hash TEXT COLLATE "C" NOT NULL,
	name TEXT COLLATE "C" NOT NULL,
	redirect_uris TEXT COLLATE "C" NOT NULL,
	post_logout_redirect_uris TEXT COLLATE "C" NOT NULL,
	grant_types TEXT COLLATE "C" NOT NULL,
	scopes TEXT COLLATE "C" NOT NULL,
	claims TEXT COLLATE "C" NOT NULL,
	auth_method TEXT COLLATE "C" NOT NULL,
	signing_alg TEXT COLLATE "C" NOT NULL,
	min_loa INTEGER NOT NULL,
	sector TEXT COLLATE "C" NOT NULL,
	jwks BYTEA,
	created_at BIGINT NOT NULL
);

CREATE TABLE accounts (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	email TEXT COLLATE "C" NOT NULL UNIQUE,
	email_verified BOOLEAN NOT NULL,
	password_hash TEXT COLLATE "C" NOT NULL,
	loa INTEGER NOT NULL,
	person_id TEXT COLLATE "C" NOT NULL,
	locale TEXT COLLATE "C" NOT NULL,
	locked BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE persons (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	family_name TEXT COLLATE "C" NOT NULL,
	given_name TEXT COLLATE "C" NOT NULL,
	birth_date TEXT COLLATE "C" NOT NULL,
	sex TEXT COLLATE "C" NOT NULL,
	health_no TEXT COLLATE "C" NOT NULL,
	civic_number TEXT COLLATE "C" NOT NULL,
	street TEXT COLLATE "C" NOT NULL,
	unit TEXT COLLATE "C" NOT NULL,
	municipality TEXT COLLATE "C" NOT NULL,
	province TEXT COLLATE "C" NOT NULL,
	postal_code TEXT COLLATE "C" NOT NULL,
	country TEXT COLLATE "C" NOT NULL,
	language TEXT COLLATE "C" NOT NULL,
	death_date TEXT COLLATE "C" NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE sessions (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	account_id TEXT COLLATE "C" NOT NULL,
	loa INTEGER NOT NULL,
	amr TEXT COLLATE "C" NOT NULL,
	auth_time BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE auth_requests (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	client_id TEXT COLLATE "C" NOT NULL,
	redirect_uri TEXT COLLATE "C" NOT NULL,
	state TEXT COLLATE "C" NOT NULL,
	nonce TEXT COLLATE "C" NOT NULL,
	scopes TEXT COLLATE "C" NOT NULL,
	claims TEXT COLLATE "C" NOT NULL,
	code_challenge TEXT COLLATE "C" NOT NULL,
	prompt TEXT COLLATE "C" NOT NULL,
	max_age INTEGER NOT NULL,
	login_hint TEXT COLLATE "C" NOT NULL,
	ui_locale TEXT COLLATE "C" NOT NULL,
	acr_values TEXT COLLATE "C" NOT NULL,
	response_mode TEXT COLLATE "C" NOT NULL,
	session_id TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE auth_codes (
	hash TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	client_id TEXT COLLATE "C" NOT NULL,
	account_id TEXT COLLATE "C" NOT NULL,
	session_id TEXT COLLATE "C" NOT NULL,
	redirect_uri TEXT COLLATE "C" NOT NULL,
	nonce TEXT COLLATE "C" NOT NULL,
	scopes TEXT COLLATE "C" NOT NULL,
	claims TEXT COLLATE "C" NOT NULL,
	code_challenge TEXT COLLATE "C" NOT NULL,
	loa INTEGER NOT NULL,
	amr TEXT COLLATE "C" NOT NULL,
	auth_time BIGINT NOT NULL,
	grant_id TEXT COLLATE "C" NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at BIGINT NOT NULL
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE grants (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	client_id TEXT COLLATE "C" NOT NULL,
	account_id TEXT COLLATE "C" NOT NULL,
	session_id TEXT COLLATE "C" NOT NULL,
	scopes TEXT COLLATE "C" NOT NULL,
	claims TEXT COLLATE "C" NOT NULL,
	loa INTEGER NOT NULL,
	amr TEXT COLLATE "C" NOT NULL,
	auth_time BIGINT NOT NULL,
	offline BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT NOT NULL
);
CREATE INDEX grants_session_id ON grants (session_id);
CREATE INDEX grants_account_client ON grants (account_id, client_id);
CREATE INDEX grants_client_id ON grants (client_id);
CREATE INDEX grants_expires_at ON grants (expires_at);

CREATE TABLE refresh_tokens (
	hash TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	grant_id TEXT COLLATE "C" NOT NULL,
	client_id TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	used_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE revoked_tokens (
	jti TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

CREATE TABLE consents (
	account_id TEXT COLLATE "C" NOT NULL,
	client_id TEXT COLLATE "C" NOT NULL,
	scopes TEXT COLLATE "C" NOT NULL,
	claims TEXT COLLATE "C" NOT NULL,
	granted_at BIGINT NOT NULL,
	PRIMARY KEY (account_id, client_id)
);
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE signing_keys (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	alg TEXT COLLATE "C" NOT NULL,
	private_key BYTEA,
	public_jwk BYTEA,
	created_at BIGINT NOT NULL,
	retired_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);

-- One row per key and time bucket; expires_at is when the bucket leaves
-- every window it can count in.
-- UNLOGGED: counters are cheap to lose in a crash and costly to log.
CREATE UNLOGGED TABLE rate_limits (
	key TEXT COLLATE "C" NOT NULL,
	bucket BIGINT NOT NULL,
	hits INTEGER NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (key, bucket)
);
CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
