-- Account creation and identity proofing (internal/signup, issue 7).

-- A registration waiting for its email to be verified (or, after, for
-- proofing): keyed by the hash of the browser's flow cookie. The code is
-- stored hashed; duplicate = 1 marks a registration whose email already has
-- an account (it never completes; nothing on the page tells).
CREATE TABLE signup_flows (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	email TEXT COLLATE "C" NOT NULL,
	password_hash TEXT COLLATE "C" NOT NULL,
	locale TEXT COLLATE "C" NOT NULL,
	auth_request TEXT COLLATE "C" NOT NULL,
	code_hash TEXT COLLATE "C" NOT NULL,
	code_expires_at BIGINT NOT NULL,
	attempts INTEGER NOT NULL,
	duplicate BOOLEAN NOT NULL,
	terms_accepted_at BIGINT NOT NULL,
	account_id TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX signup_flows_expires_at ON signup_flows (expires_at);

-- Outgoing mail, written in the transaction of the change it announces and
-- delivered by the sender worker (lease, retries with backoff). The body is
-- emptied once the mail is sent.
CREATE TABLE mail_outbox (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	recipient TEXT COLLATE "C" NOT NULL,
	subject TEXT COLLATE "C" NOT NULL,
	body TEXT COLLATE "C" NOT NULL,
	kind TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	attempts INTEGER NOT NULL,
	lease_until BIGINT NOT NULL,
	sent_at BIGINT NOT NULL,
	last_error TEXT COLLATE "C" NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, next_attempt_at);

-- Proofs an account made (a secret type that matched, for one registry
-- person) and the levels it reached, how and when.
CREATE TABLE account_proofs (
	account_id TEXT COLLATE "C" NOT NULL,
	person_id TEXT COLLATE "C" NOT NULL,
	proof TEXT COLLATE "C" NOT NULL,
	proved_at BIGINT NOT NULL,
	PRIMARY KEY (account_id, person_id, proof)
);

CREATE TABLE account_levels (
	account_id TEXT COLLATE "C" NOT NULL,
	loa INTEGER NOT NULL,
	how TEXT COLLATE "C" NOT NULL,
	reached_at BIGINT NOT NULL,
	PRIMARY KEY (account_id, loa)
);

-- The proofing step looks the claimed identity up by birth date, then
-- compares names (Unicode-normalised, case-folded) among those persons.
CREATE INDEX persons_birth_date ON persons (birth_date);
