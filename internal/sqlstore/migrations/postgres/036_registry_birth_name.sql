-- The family name at birth (registry attribute birth_family_name), from
-- which the health-insurance number's letters come; empty when the source
-- did not deliver it (docs/formats/registry-import.md).
ALTER TABLE persons ADD COLUMN birth_family_name TEXT COLLATE "C" NOT NULL DEFAULT '';
