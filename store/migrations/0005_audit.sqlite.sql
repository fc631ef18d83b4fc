-- The audit log: who did what, when, and how it ended. Rows are only ever
-- added. Entries never hold a secret (no key, no token, no secret hash).
CREATE TABLE audit (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	at     INTEGER NOT NULL,          -- unix seconds
	who    TEXT NOT NULL DEFAULT '',  -- the actor ("alice@example.com", "apikey:ci", "node:web1", "system"); '' = unknown
	what   TEXT NOT NULL,             -- the action and its target ("delete node web1")
	result TEXT NOT NULL DEFAULT ''   -- "ok", or why it failed
);
