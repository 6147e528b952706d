-- The proofing step's claimed-identity lookup (FindPersonByNameAndBirthDate)
-- reads only this index: the persons born that day who are present and
-- alive, with their names, in id order. At 9 million people a birth date
-- has about 250 of them, whose rows lie all over the table: reading them
-- through persons_birth_date cost one random page each.
DROP INDEX persons_birth_date;
CREATE INDEX persons_birth_names ON persons (birth_date, removed_import, death_date, id, family_name, given_name);
