-- Legal authorisations under which registry attributes are communicated
-- (internal/legal). Lists are space-separated and sorted; times are unix
-- milliseconds; valid_to is exclusive.
CREATE TABLE legal_authorisations (
	ref TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	title TEXT NOT NULL,
	purpose TEXT COLLATE "C" NOT NULL,
	legal_basis TEXT NOT NULL,
	source TEXT NOT NULL,
	recipients TEXT COLLATE "C" NOT NULL,
	attributes TEXT COLLATE "C" NOT NULL,
	valid_from BIGINT NOT NULL,
	valid_to BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	ended_at BIGINT NOT NULL
);
