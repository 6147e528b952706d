-- The registry of identity attributes (RAIG): provenance of each person,
-- health-card data, the deliveries imported from the official source and
-- the history of attribute values (docs/formats/registry-import.md).

ALTER TABLE persons ADD COLUMN card_expiry TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN card_seq TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN source_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN import_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE persons ADD COLUMN effective_date TEXT NOT NULL DEFAULT '';
ALTER TABLE persons ADD COLUMN removed_import INTEGER NOT NULL DEFAULT 0;
CREATE INDEX persons_health_no ON persons (health_no);
CREATE INDEX accounts_person_id ON accounts (person_id);

CREATE TABLE registry_imports (
	id INTEGER NOT NULL PRIMARY KEY,
	source TEXT NOT NULL,
	sequence INTEGER NOT NULL,
	kind TEXT NOT NULL,
	format TEXT NOT NULL,
	sha256 TEXT NOT NULL,
	record_count INTEGER NOT NULL,
	extracted_at INTEGER NOT NULL,
	state TEXT NOT NULL,
	staged_line INTEGER NOT NULL,
	staged_rows INTEGER NOT NULL,
	records INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL DEFAULT 0,
	changed INTEGER NOT NULL DEFAULT 0,
	unchanged INTEGER NOT NULL DEFAULT 0,
	deceased INTEGER NOT NULL DEFAULT 0,
	removed INTEGER NOT NULL DEFAULT 0,
	unknown INTEGER NOT NULL DEFAULT 0,
	rejected INTEGER NOT NULL DEFAULT 0,
	reason TEXT NOT NULL DEFAULT '',
	started_at INTEGER NOT NULL,
	finished_at INTEGER NOT NULL DEFAULT 0,
	UNIQUE (source, sequence)
) STRICT;

CREATE TABLE registry_history (
	person_id TEXT NOT NULL,
	attribute TEXT NOT NULL,
	value TEXT NOT NULL,
	replaced_by INTEGER NOT NULL,
	replaced_on TEXT NOT NULL,
	PRIMARY KEY (person_id, attribute, replaced_by)
) STRICT, WITHOUT ROWID;
