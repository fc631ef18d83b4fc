-- The order logins of one group were opened in: started_at is in
-- milliseconds, and two logins started within one had no order, so the
-- cap could cancel the newer one. seq is one more than the group's
-- highest when a login is opened (0: opened before this migration).
ALTER TABLE pending_logins ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
