-- Lookups by health-insurance number (FindPersonByHealthNumber: health_no,
-- not removed, lowest id) answered from the index alone: the index holds
-- every column the query reads, in the order it returns them, so neither
-- a table row nor a sort is needed (an index-only scan on PostgreSQL once
-- the table is vacuumed, a covering index on SQLite). It replaces the
-- index on health_no alone.
DROP INDEX IF EXISTS persons_health_no;
CREATE INDEX persons_health_no_live ON persons (health_no, removed_import, id);
