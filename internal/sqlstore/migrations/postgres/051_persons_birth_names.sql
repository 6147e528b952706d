-- The proofing step's claimed-identity lookup (FindPersonByNameAndBirthDate)
-- reads only this index (an index-only scan once the table is vacuumed):
-- the persons born that day who are present and alive, with their names,
-- in id order. At 9 million people a birth date has about 250 of them,
-- whose rows lie all over the table.
DROP INDEX persons_birth_date;
CREATE INDEX persons_birth_names ON persons (birth_date, removed_import, death_date, id) INCLUDE (family_name, given_name);
