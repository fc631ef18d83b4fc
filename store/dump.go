package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
)

// Dump writes every row of every table to w, one line per row ("table
// [values]"), tables by name and rows in insertion order (on PostgreSQL,
// which has no insertion order, sorted by their line), so tests can
// compare whole database states (a failed transaction must leave the dump
// unchanged). The output holds the applied config including secret
// hashes: it is for tests and local debugging, never for logs.
func (s *Store) Dump(ctx context.Context, w io.Writer) error {
	tables, err := s.tableNames(ctx)
	if err != nil {
		return err
	}
	for _, table := range tables {
		if err := s.dumpTable(ctx, w, table); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) tableNames(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.d.tables)
	if err != nil {
		return nil, fmt.Errorf("store: dumping %s: listing tables: %w", s.Path, err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: dumping %s: listing tables: %w", s.Path, err)
		}
		tables = append(tables, n)
	}
	return tables, rows.Err()
}

func (s *Store) dumpTable(ctx context.Context, w io.Writer, table string) error {
	// table comes from the database's catalog, not from a caller.
	q := `SELECT * FROM "` + table + `"`
	if !s.db.d.sortDump {
		q += ` ORDER BY rowid`
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("store: dumping table %s: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return fmt.Errorf("store: dumping table %s: %w", table, err)
	}
	var lines []string
	for rows.Next() {
		vals, err := scanAny(rows, len(cols))
		if err != nil {
			return fmt.Errorf("store: dumping table %s: %w", table, err)
		}
		lines = append(lines, fmt.Sprintf("%s %v\n", table, vals))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: dumping table %s: %w", table, err)
	}
	if s.db.d.sortDump {
		slices.Sort(lines)
	}
	for _, l := range lines {
		if _, err := io.WriteString(w, l); err != nil {
			return err
		}
	}
	return nil
}

// scanAny scans the current row of rows, which has n columns, as the
// driver reads each value.
func scanAny(rows *sql.Rows, n int) ([]any, error) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	return vals, rows.Scan(ptrs...)
}
