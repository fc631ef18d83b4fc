package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Node is one registered node as stored. Keys are kept in their text form
// ("mkey:…", "nodekey:…") so the store needs no Tailscale types.
type Node struct {
	ID         int64 // assigned by InsertNode
	StableID   string
	MachineKey string
	NodeKey    string
	DiscoKey   string // empty until the node first polls
	Hostname   string // as the node reported it
	GivenName  string // unique MagicDNS label
	UserLogin  string // owning user; empty for tagged nodes
	Tags       []string
	IPv4       string // empty means none allocated
	IPv6       string
	Hostinfo   json.RawMessage // tailcfg.Hostinfo; empty means {}
	AuthKey    string          // name of the auth key it registered with (uses are counted by its secretHash)
	Ephemeral  bool
	CreatedAt  time.Time
	KeyExpiry  time.Time // zero means never
	LastSeen   time.Time // zero means never connected
	LoggedOut  bool
	// PendingApproval is true for a node registered under device approval
	// that no admin approved yet: it is unauthorized until then.
	PendingApproval bool
}

// ErrAuthKeyUsedUp is returned by RegisterNode when the auth key already
// registered as many nodes as its limit allows.
var ErrAuthKeyUsedUp = errors.New("auth key has no uses left")

const nodeColumns = `id, stable_id, machine_key, node_key, disco_key, hostname, given_name, user_login, tags,
	ipv4, ipv6, hostinfo, auth_key, ephemeral, created_at, key_expiry, last_seen, logged_out,
	pending_approval`

// Nodes returns every registered node, ordered by ID.
func (s *Store) Nodes(ctx context.Context) ([]*Node, error) { return nodes(ctx, s.db) }

// Nodes returns every registered node as this transaction sees them,
// ordered by ID.
func (tx *Tx) Nodes(ctx context.Context) ([]*Node, error) { return nodes(ctx, tx.tx) }

func nodes(ctx context.Context, q querier) ([]*Node, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: listing nodes: %w", err)
	}
	defer rows.Close()
	var out []*Node
	for rows.Next() {
		n := new(Node)
		var tags, hostinfo string
		var created, expiry, seen int64
		if err := rows.Scan(&n.ID, &n.StableID, &n.MachineKey, &n.NodeKey, &n.DiscoKey, &n.Hostname, &n.GivenName,
			&n.UserLogin, &tags, &n.IPv4, &n.IPv6, &hostinfo, &n.AuthKey, &n.Ephemeral, &created, &expiry, &seen,
			&n.LoggedOut, &n.PendingApproval); err != nil {
			return nil, fmt.Errorf("store: reading nodes: %w", err)
		}
		if err := json.Unmarshal([]byte(tags), &n.Tags); err != nil {
			return nil, fmt.Errorf("store: node %d has malformed tags %q: %w", n.ID, tags, err)
		}
		n.Hostinfo = json.RawMessage(hostinfo)
		n.CreatedAt = fromUnix(created)
		n.KeyExpiry = fromUnix(expiry)
		n.LastSeen = fromUnix(seen)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading nodes: %w", err)
	}
	return out, nil
}

// RegisterNode stores n (inserting it when n.ID is 0, else updating it) and,
// when secretHash is not empty, counts one use of the auth key with that
// secretHash ("sha256:<hex>", compared in lowercase) in the same
// transaction. A limit above zero caps the key's uses: once reached,
// RegisterNode returns ErrAuthKeyUsedUp and stores nothing.
//
// Uses are counted per secret, not per key name, and never reset: a key
// renamed, or deleted and declared again with the same secretHash (a
// revert), keeps the uses it had; a rotated key (a new secretHash) starts
// from zero.
func (s *Store) RegisterNode(ctx context.Context, n *Node, secretHash string, limit int) error {
	return s.Update(ctx, func(tx *Tx) error {
		if secretHash != "" {
			if err := tx.CountAuthKeyUse(ctx, secretHash, limit); err != nil {
				return err
			}
		}
		return tx.SaveNode(ctx, n)
	})
}

// SaveNode inserts n when n.ID is 0 and updates it otherwise.
func (s *Store) SaveNode(ctx context.Context, n *Node) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.SaveNode(ctx, n) })
}

// SaveNode inserts n when n.ID is 0 (setting n.ID) and updates it otherwise.
func (tx *Tx) SaveNode(ctx context.Context, n *Node) error {
	tags, err := json.Marshal(n.Tags)
	if err != nil {
		return err
	}
	if n.Tags == nil {
		tags = []byte("[]")
	}
	hostinfo := string(n.Hostinfo)
	if hostinfo == "" {
		hostinfo = "{}"
	}
	args := []any{n.StableID, n.MachineKey, n.NodeKey, n.DiscoKey, n.Hostname, n.GivenName, n.UserLogin, string(tags),
		n.IPv4, n.IPv6, hostinfo, n.AuthKey, n.Ephemeral, toUnix(n.CreatedAt), toUnix(n.KeyExpiry), toUnix(n.LastSeen),
		n.LoggedOut, n.PendingApproval}
	if n.ID == 0 {
		res, err := tx.tx.ExecContext(ctx, `INSERT INTO nodes (stable_id, machine_key, node_key, disco_key, hostname,
			given_name, user_login, tags, ipv4, ipv6, hostinfo, auth_key, ephemeral, created_at, key_expiry, last_seen,
			logged_out, pending_approval) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		if err != nil {
			return fmt.Errorf("store: inserting node %q: %w", n.GivenName, err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		n.ID = id
		return nil
	}
	_, err = tx.tx.ExecContext(ctx, `UPDATE nodes SET stable_id = ?, machine_key = ?, node_key = ?, disco_key = ?,
		hostname = ?, given_name = ?, user_login = ?, tags = ?, ipv4 = ?, ipv6 = ?, hostinfo = ?, auth_key = ?,
		ephemeral = ?, created_at = ?, key_expiry = ?, last_seen = ?, logged_out = ?, pending_approval = ? WHERE id = ?`,
		append(args, n.ID)...)
	if err != nil {
		return fmt.Errorf("store: updating node %d (%q): %w", n.ID, n.GivenName, err)
	}
	return nil
}

// DeleteNode removes the node with the given ID; a missing node is not an error.
func (s *Store) DeleteNode(ctx context.Context, id int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM nodes WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: deleting node %d: %w", id, err)
	}
	return nil
}

// CountAuthKeyUse counts one use of the auth key with secretHash
// ("sha256:<hex>", compared in lowercase), or returns ErrAuthKeyUsedUp and
// counts nothing when limit (above zero) uses were counted already. Errors
// name the key by a prefix of its hash only.
func (tx *Tx) CountAuthKeyUse(ctx context.Context, secretHash string, limit int) error {
	h := strings.ToLower(secretHash)
	uses, err := authKeyUses(ctx, tx.tx, h)
	if err != nil {
		return err
	}
	if limit > 0 && uses >= limit {
		return ErrAuthKeyUsedUp
	}
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO auth_key_uses (secret_hash, uses) VALUES (?, 1)
		ON CONFLICT (secret_hash) DO UPDATE SET uses = uses + 1`, h); err != nil {
		return fmt.Errorf("store: counting use of auth key %s: %w", shortHash(h), err)
	}
	return nil
}

// AuthKeyUses returns how many nodes the auth key with secretHash
// ("sha256:<hex>", compared in lowercase) has registered, under any name.
func (s *Store) AuthKeyUses(ctx context.Context, secretHash string) (int, error) {
	return authKeyUses(ctx, s.db, strings.ToLower(secretHash))
}

// authKeyUses reads the count of the lowercase secret hash h; no row is 0.
func authKeyUses(ctx context.Context, q querier, h string) (int, error) {
	var uses int
	err := q.QueryRowContext(ctx, `SELECT uses FROM auth_key_uses WHERE secret_hash = ?`, h).Scan(&uses)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: reading uses of auth key %s: %w", shortHash(h), err)
	}
	return uses, nil
}

// AllAuthKeyUses returns the use count of every auth key secret that
// registered a node, keyed by its lowercase secret hash. Counts of secrets
// no applied config declares any more are included: counts never reset.
func (s *Store) AllAuthKeyUses(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT secret_hash, uses FROM auth_key_uses`)
	if err != nil {
		return nil, fmt.Errorf("store: reading auth key uses: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var h string
		var n int
		if err := rows.Scan(&h, &n); err != nil {
			return nil, fmt.Errorf("store: reading auth key uses: %w", err)
		}
		out[h] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading auth key uses: %w", err)
	}
	return out, nil
}

// shortHash is how errors name a secret hash: enough to tell keys apart.
func shortHash(h string) string {
	if len(h) > len("sha256:")+8 {
		return h[:len("sha256:")+8] + "…"
	}
	return h
}

func toUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
