package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
)

// PrimaryRoute is one primary-router election's outcome: the node peers
// route Prefix through, among the routers of the via tags Via.
type PrimaryRoute struct {
	Prefix string // the subnet route ("10.0.0.0/24"); required
	Via    string // sorted, comma-separated via tags ("tag:a,tag:b"); empty means the subnet's own election
	NodeID int64  // the primary router
}

// PrimaryRoutes returns the saved election outcomes, sorted by prefix and
// via (bytewise, whatever the database's collation). An empty result means
// none were saved.
func (s *Store) PrimaryRoutes(ctx context.Context) ([]PrimaryRoute, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT prefix, via, node_id FROM primary_routes ORDER BY prefix, via`)
	if err != nil {
		return nil, fmt.Errorf("store: reading the primary routes: %w", err)
	}
	defer rows.Close()
	var out []PrimaryRoute
	for rows.Next() {
		var p PrimaryRoute
		if err := rows.Scan(&p.Prefix, &p.Via, &p.NodeID); err != nil {
			return nil, fmt.Errorf("store: reading the primary routes: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading the primary routes: %w", err)
	}
	slices.SortFunc(out, func(a, b PrimaryRoute) int {
		return cmp.Or(strings.Compare(a.Prefix, b.Prefix), strings.Compare(a.Via, b.Via))
	})
	return out, nil
}

// SetPrimaryRoutes replaces the saved election outcomes with routes, in
// one transaction: afterwards PrimaryRoutes returns exactly routes. An
// empty routes clears them. On PostgreSQL the other replicas are notified
// (NotifyPrimaries); run it under WithApplierFence so that only the
// replica deciding the elections saves them.
func (s *Store) SetPrimaryRoutes(ctx context.Context, routes []PrimaryRoute) error {
	for _, p := range routes {
		if p.Prefix == "" {
			return fmt.Errorf("store: primary route of node %d names no prefix (hint: set PrimaryRoute.Prefix)", p.NodeID)
		}
	}
	return s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM primary_routes`); err != nil {
			return fmt.Errorf("store: replacing the primary routes: %w", err)
		}
		for _, p := range routes {
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO primary_routes (prefix, via, node_id) VALUES (?, ?, ?)`,
				p.Prefix, p.Via, p.NodeID); err != nil {
				return fmt.Errorf("store: saving primary route %s (via %q) of node %d: %w", p.Prefix, p.Via, p.NodeID, err)
			}
		}
		return tx.notify(ctx, NotifyPrimaries, "")
	})
}
