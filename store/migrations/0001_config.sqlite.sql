-- The applied config: one row per declared object, as canonical JSON,
-- written and read only by package reconcile (see its doc comment).
-- kind is one of: tailnet, dns, dnsRecord, user, authKey, apiKey, route,
-- group, tagOwner, host, ipset, posture, policy.
CREATE TABLE config_objects (
	kind  TEXT NOT NULL,
	name  TEXT NOT NULL,
	value TEXT NOT NULL, -- canonical JSON of the object
	PRIMARY KEY (kind, name)
);

-- Every revision that was applied, newest last.
CREATE TABLE revisions (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	commit_sha  TEXT NOT NULL,  -- Git commit, or a content hash for a local dir
	author      TEXT NOT NULL DEFAULT '',
	message     TEXT NOT NULL DEFAULT '',
	committed_at INTEGER NOT NULL DEFAULT 0, -- unix seconds
	applied_at  INTEGER NOT NULL,            -- unix seconds
	summary     TEXT NOT NULL DEFAULT ''     -- "Plan: 1 to add, 0 to change, 0 to destroy."
);

-- Use counts of auth keys (runtime facts that survive config changes).
CREATE TABLE auth_key_uses (
	name  TEXT PRIMARY KEY,
	uses  INTEGER NOT NULL DEFAULT 0
);
