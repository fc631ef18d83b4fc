-- Interactive logins in progress, shared by the replicas: a login started
-- on one replica completes on whichever one the browser's callback (or
-- the admin's approval) reaches, and the client waiting on another one
-- reads the result here. Times are unix milliseconds of the replicas'
-- clocks. No credential is kept in plain form: a login URL's token and an
-- OIDC state are kept as their SHA-256 (hex); the nonce and the PKCE
-- verifier are kept only in the browser's cookie.
CREATE TABLE pending_logins (
	id          TEXT PRIMARY KEY, -- the short login ID admins approve
	token_hash  TEXT NOT NULL UNIQUE,
	machine     TEXT NOT NULL,            -- the identity that may wait for it
	bound       TEXT NOT NULL DEFAULT '', -- opaque, the starter's (control: the node key)
	cap_group   TEXT NOT NULL DEFAULT '', -- open logins of one group are capped
	device      TEXT NOT NULL DEFAULT '',
	check_user  TEXT NOT NULL DEFAULT '', -- a check: the one user who may complete it
	started_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	state       TEXT NOT NULL DEFAULT 'open', -- open, done or canceled
	result_user TEXT NOT NULL DEFAULT '',
	result_via  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX pending_logins_by_group ON pending_logins (cap_group, state);

-- One trip to the identity provider for a pending login, by the SHA-256
-- of its state; taken (deleted) by the first callback that brings it.
CREATE TABLE login_flows (
	state_hash TEXT PRIMARY KEY,
	login_id   TEXT NOT NULL,
	provider   TEXT NOT NULL, -- which provider and client the browser was sent to
	expires_at BIGINT NOT NULL
);

-- SSH checks passed: the source node and the user who logged in again,
-- for the checkPeriod of the rule that asks next.
CREATE TABLE ssh_checks_passed (
	node_id   BIGINT NOT NULL,
	login     TEXT NOT NULL,
	passed_at BIGINT NOT NULL,
	PRIMARY KEY (node_id, login)
);
