-- Legal authorisations under which registry attributes are communicated
-- (internal/legal). Lists are space-separated and sorted; times are unix
-- milliseconds; valid_to is exclusive.
CREATE TABLE legal_authorisations (
	ref TEXT NOT NULL PRIMARY KEY,
	title TEXT NOT NULL,
	purpose TEXT NOT NULL,
	legal_basis TEXT NOT NULL,
	source TEXT NOT NULL,
	recipients TEXT NOT NULL,
	attributes TEXT NOT NULL,
	valid_from INTEGER NOT NULL,
	valid_to INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	ended_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
