package store

import (
	"context"
	"fmt"
	"strconv"
)

// SaveNodeSeen writes only what a node's own map stream tells the replica
// it streams to: its Hostinfo (and hostname), its disco key and when it
// was last seen, from n (by n.ID). The rest of the row stays as it is, so
// that an approval, rename, expiry or logout another replica stored
// meanwhile is not written over with this replica's older copy (SaveNode
// writes every column). Like SaveNode it notifies the other replicas.
func (s *Store) SaveNodeSeen(ctx context.Context, n *Node) error {
	hostinfo := string(n.Hostinfo)
	if hostinfo == "" {
		hostinfo = "{}"
	}
	return s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `UPDATE nodes SET hostname = ?, hostinfo = ?, disco_key = ?, last_seen = ? WHERE id = ?`,
			n.Hostname, hostinfo, n.DiscoKey, toUnix(n.LastSeen), n.ID)
		if err != nil {
			return fmt.Errorf("store: updating what node %d (%q) said: %w", n.ID, n.GivenName, err)
		}
		return tx.notify(ctx, NotifyNode, strconv.FormatInt(n.ID, 10))
	})
}
