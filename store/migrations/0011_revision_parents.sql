-- The parents of each revision's commit (Git SHAs, space-separated; empty
-- for a directory or a revision recorded before this migration): a replica
-- whose remote lags never applies the parent of a revision applied since.
ALTER TABLE revisions ADD COLUMN parents TEXT NOT NULL DEFAULT '';
