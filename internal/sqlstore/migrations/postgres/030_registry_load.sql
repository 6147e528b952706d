-- How a delivery is staged (docs/formats/registry-import.md): 'merge' (a
-- staging table merged into persons) or 'load' (a first snapshot loaded
-- into a table of persons' own shape that replaces persons at the merge),
-- and how many staged records carry a date of death.
ALTER TABLE registry_imports ADD COLUMN mode TEXT COLLATE "C" NOT NULL DEFAULT 'merge';
ALTER TABLE registry_imports ADD COLUMN staged_dead BIGINT NOT NULL DEFAULT 0;
