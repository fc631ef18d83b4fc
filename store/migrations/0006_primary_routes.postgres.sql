-- 0006_primary_routes.sqlite.sql for PostgreSQL: node IDs are BIGINT.
CREATE TABLE primary_routes (
	prefix  TEXT NOT NULL,
	via     TEXT NOT NULL DEFAULT '',
	node_id BIGINT NOT NULL, -- nodes.id
	PRIMARY KEY (prefix, via)
);
