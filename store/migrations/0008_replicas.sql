-- Several replicas on one database (PostgreSQL). server_state holds the
-- state every replica must share to be one server: its Noise key, the
-- embedded relay's certificate, which replica applied the latest revision.
-- Each value is created once, by whichever replica needs it first.
CREATE TABLE server_state (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- replicas is one row per running replica: its heartbeat lease. Times are
-- the database server's clock, in milliseconds. The applier (the replica
-- that applies revisions) is the live replica that started first.
CREATE TABLE replicas (
	id          TEXT PRIMARY KEY,
	address     TEXT NOT NULL,
	started_at  BIGINT NOT NULL,
	renewed_at  BIGINT NOT NULL,
	lease_until BIGINT NOT NULL,
	nodes       BIGINT NOT NULL DEFAULT 0,
	derp        TEXT NOT NULL DEFAULT ''
);
