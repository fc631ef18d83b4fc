-- Registered nodes. Runtime state (endpoints, DERP home, online) is kept in memory.
CREATE TABLE nodes (
	id            INTEGER PRIMARY KEY AUTOINCREMENT, -- tailcfg.NodeID
	stable_id     TEXT NOT NULL UNIQUE,
	machine_key   TEXT NOT NULL,        -- "mkey:..."
	node_key      TEXT NOT NULL UNIQUE, -- "nodekey:..."
	disco_key     TEXT NOT NULL DEFAULT '',
	hostname      TEXT NOT NULL DEFAULT '', -- as the node reported it
	given_name    TEXT NOT NULL UNIQUE,     -- unique MagicDNS label
	user_login    TEXT NOT NULL DEFAULT '', -- owning user; '' for tagged nodes
	tags          TEXT NOT NULL DEFAULT '[]', -- JSON array
	ipv4          TEXT NOT NULL DEFAULT '',
	ipv6          TEXT NOT NULL DEFAULT '',
	hostinfo      TEXT NOT NULL DEFAULT '{}', -- JSON tailcfg.Hostinfo
	auth_key      TEXT NOT NULL DEFAULT '', -- name of the auth key it registered with
	ephemeral     INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL,          -- unix seconds
	key_expiry    INTEGER NOT NULL DEFAULT 0, -- unix seconds; 0 = never
	last_seen     INTEGER NOT NULL DEFAULT 0,
	logged_out    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX nodes_machine_key ON nodes (machine_key);
CREATE INDEX nodes_user_login ON nodes (user_login);
-- An address stays with its node for the node's whole life.
CREATE UNIQUE INDEX nodes_ipv4 ON nodes (ipv4) WHERE ipv4 != '';
CREATE UNIQUE INDEX nodes_ipv6 ON nodes (ipv6) WHERE ipv6 != '';
