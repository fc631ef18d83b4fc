-- The primary-router elections' outcome (policy.Result.Primaries): for each
-- subnet route, and for the routers of a via grant its via tags, the node
-- peers route it through. Kept so a restart does not reshuffle primaries.
-- Rows naming nodes that are gone are harmless: the policy engine ignores
-- them, and the next save drops them.
CREATE TABLE primary_routes (
	prefix  TEXT NOT NULL,             -- the subnet route ("10.0.0.0/24")
	via     TEXT NOT NULL DEFAULT '',  -- sorted, comma-separated via tags ("tag:a,tag:b"); '' = the subnet's own election
	node_id INTEGER NOT NULL,          -- the primary router (nodes.id)
	PRIMARY KEY (prefix, via)
);
