package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// What Copy asks each database's catalog, per dialect.

// snapshot is the isolation level that reads one consistent state.
func (d *dialect) snapshot() sql.IsolationLevel {
	if d.name == "postgres" {
		return sql.LevelRepeatableRead
	}
	return sql.LevelDefault // a SQLite transaction reads one state anyway
}

// columnTypes maps each column of table to its declared type.
func (d *dialect) columnTypes(ctx context.Context, q querier, table string) (map[string]string, error) {
	query := `SELECT name, type FROM pragma_table_info(?)`
	if d.name == "postgres" {
		query = `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?`
	}
	rows, err := q.QueryContext(ctx, query, table)
	if err != nil {
		return nil, fmt.Errorf("reading the target's columns: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("reading the target's columns: %w", err)
		}
		out[name] = typ
	}
	return out, rows.Err()
}

// dependencyOrder sorts tables so that a table comes after those its
// foreign keys refer to (by name among equals).
func (d *dialect) dependencyOrder(ctx context.Context, q querier, tables []string) ([]string, error) {
	query := `SELECT m.name, p."table" FROM sqlite_master m, pragma_foreign_key_list(m.name) p WHERE m.type = 'table'`
	if d.name == "postgres" {
		query = `SELECT tc.table_name, ccu.table_name FROM information_schema.table_constraints tc
			JOIN information_schema.constraint_column_usage ccu
				ON ccu.constraint_name = tc.constraint_name AND ccu.constraint_schema = tc.constraint_schema
			WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()`
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("reading the target's foreign keys: %w", err)
	}
	defer rows.Close()
	needs := map[string][]string{}
	for rows.Next() {
		var t, ref string
		if err := rows.Scan(&t, &ref); err != nil {
			return nil, fmt.Errorf("reading the target's foreign keys: %w", err)
		}
		if t != ref {
			needs[t] = append(needs[t], ref)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the target's foreign keys: %w", err)
	}
	var order []string
	placed := map[string]bool{}
	for len(order) < len(tables) {
		progress := false
		for _, t := range slices.Sorted(slices.Values(tables)) {
			if placed[t] || slices.ContainsFunc(needs[t], func(r string) bool { return !placed[r] && slices.Contains(tables, r) }) {
				continue
			}
			order, placed[t], progress = append(order, t), true, true
		}
		if !progress {
			return nil, fmt.Errorf("the foreign keys between %q form a cycle", tables)
		}
	}
	return order, nil
}

// liveLeases counts the replicas holding a live lease (PostgreSQL only).
func (d *dialect) liveLeases(ctx context.Context, q querier) (int, error) {
	if d.name != "postgres" {
		return 0, nil
	}
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM replicas WHERE lease_until >= `+nowMillis).Scan(&n); err != nil {
		return 0, fmt.Errorf("reading the target's replica leases: %w", err)
	}
	return n, nil
}

// resetIdentities moves every identity column's sequence past the largest
// ID copied, so the next insert gets a new one (PostgreSQL; SQLite moves
// AUTOINCREMENT's counter by itself).
func (d *dialect) resetIdentities(ctx context.Context, tx sqlTx) error {
	if d.name != "postgres" {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = 'YES' ORDER BY table_name`)
	if err != nil {
		return fmt.Errorf("listing identity columns: %w", err)
	}
	var cols [][2]string
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return fmt.Errorf("listing identity columns: %w", err)
		}
		cols = append(cols, [2]string{t, c})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing identity columns: %w", err)
	}
	for _, tc := range cols {
		// Names from the catalog; setval(..., false) makes MAX+1 the next value.
		q := `SELECT setval(pg_get_serial_sequence(?, ?), COALESCE((SELECT MAX("` + tc[1] + `") FROM "` + tc[0] + `"), 0) + 1, false)`
		if _, err := tx.ExecContext(ctx, q, `"`+tc[0]+`"`, tc[1]); err != nil {
			return fmt.Errorf("moving the identity sequence of %s.%s: %w", tc[0], tc[1], err)
		}
	}
	return nil
}
