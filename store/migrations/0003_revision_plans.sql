-- The plan each revision applied, as reconcile's JSON plan document
-- (docs/plan.md; secrets masked), so history shows what a commit changed.
ALTER TABLE revisions ADD COLUMN plan TEXT NOT NULL DEFAULT '';
