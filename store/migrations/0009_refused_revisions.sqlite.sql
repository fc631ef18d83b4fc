-- Revisions the server tried and did not apply (refused by lint, tests or
-- apply), newest kept: the console and the admin API list them with their
-- errors. value is the pipeline's record of the attempt, as JSON.
CREATE TABLE refused_revisions (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	commit_id   TEXT NOT NULL,
	finished_at INTEGER NOT NULL, -- unix seconds
	value       TEXT NOT NULL
);
