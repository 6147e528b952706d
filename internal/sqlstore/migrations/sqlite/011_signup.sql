-- Account creation and identity proofing (internal/signup, issue 7).

-- A registration waiting for its email to be verified (or, after, for
-- proofing): keyed by the hash of the browser's flow cookie. The code is
-- stored hashed; duplicate = 1 marks a registration whose email already has
-- an account (it never completes; nothing on the page tells).
CREATE TABLE signup_flows (
	id TEXT NOT NULL PRIMARY KEY,
	email TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	locale TEXT NOT NULL,
	auth_request TEXT NOT NULL,
	code_hash TEXT NOT NULL,
	code_expires_at INTEGER NOT NULL,
	attempts INTEGER NOT NULL,
	duplicate INTEGER NOT NULL,
	terms_accepted_at INTEGER NOT NULL,
	account_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX signup_flows_expires_at ON signup_flows (expires_at);

-- Outgoing mail, written in the transaction of the change it announces and
-- delivered by the sender worker (lease, retries with backoff). The body is
-- emptied once the mail is sent.
CREATE TABLE mail_outbox (
	id TEXT NOT NULL PRIMARY KEY,
	recipient TEXT NOT NULL,
	subject TEXT NOT NULL,
	body TEXT NOT NULL,
	kind TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	attempts INTEGER NOT NULL,
	lease_until INTEGER NOT NULL,
	sent_at INTEGER NOT NULL,
	last_error TEXT NOT NULL
) STRICT;
CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, next_attempt_at);

-- Proofs an account made (a secret type that matched, for one registry
-- person) and the levels it reached, how and when.
CREATE TABLE account_proofs (
	account_id TEXT NOT NULL,
	person_id TEXT NOT NULL,
	proof TEXT NOT NULL,
	proved_at INTEGER NOT NULL,
	PRIMARY KEY (account_id, person_id, proof)
) STRICT, WITHOUT ROWID;

CREATE TABLE account_levels (
	account_id TEXT NOT NULL,
	loa INTEGER NOT NULL,
	how TEXT NOT NULL,
	reached_at INTEGER NOT NULL,
	PRIMARY KEY (account_id, loa)
) STRICT, WITHOUT ROWID;

-- The proofing step looks the claimed identity up by birth date, then
-- compares names (Unicode-normalised, case-folded) among those persons.
CREATE INDEX persons_birth_date ON persons (birth_date);
