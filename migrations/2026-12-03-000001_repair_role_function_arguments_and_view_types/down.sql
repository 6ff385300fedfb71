-- Nothing to undo: up.sql leaves the objects migrations 9 and 16 make, so the schema before it
-- ran (on a database those versions made) is the schema after it. The old argument names and
-- DOUBLE PRECISION columns are not brought back: they are what made the template's database
-- fail to adopt.
SELECT 1;
