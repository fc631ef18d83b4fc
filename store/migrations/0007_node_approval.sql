-- Device approval (tailnet.deviceApproval): a node registered while approval
-- was required waits, unauthorized, until an admin approves it. Nodes
-- stored before this migration were all authorized.
ALTER TABLE nodes ADD COLUMN pending_approval INTEGER NOT NULL DEFAULT 0;
