-- Back-channel logout deliveries waiting to be sent (OpenID Connect
-- Back-Channel Logout 1.0). A row is added, in the transaction that ends a
-- session, for each client that held a grant of the session and registered
-- a back-channel URI; it leaves when the client acknowledged the logout
-- token or when delivery is given up. next_attempt_at is also the lease: a
-- worker claiming a row pushes it into the future, so no other instance
-- takes it meanwhile. attempts counts claims and fences late answers.
CREATE TABLE logout_queue (
	id INTEGER PRIMARY KEY,
	client_id TEXT NOT NULL,
	account_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	last_error TEXT NOT NULL,
	UNIQUE (session_id, client_id)
) STRICT;
CREATE INDEX logout_queue_next_attempt_at ON logout_queue (next_attempt_at);
