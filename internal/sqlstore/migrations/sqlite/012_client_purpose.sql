-- The purpose code a client declares (internal/legal): registry attributes
-- reach it under a legal authorisation for that purpose.
ALTER TABLE clients ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
