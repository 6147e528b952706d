-- Migration 052 let queued events carry their entry for PostgreSQL to hash;
-- a sequencing round now hashes the leaves from the queued fields
-- themselves (sqlstore/audit.go), so that no one who can insert into the
-- queue can make a leaf cover other bytes than the event it stands for.
DROP INDEX audit_queue_without_entry;
ALTER TABLE audit_queue DROP COLUMN entry;
