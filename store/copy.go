package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrTargetNotEmpty is Copy's error when the target database holds rows
// and CopyOptions.Overwrite is not set.
var ErrTargetNotEmpty = errors.New("the target database is not empty")

// CopyOptions configure Copy. The zero value copies into an empty target.
type CopyOptions struct {
	// Overwrite lets Copy replace what the target holds (in the same
	// transaction: the target ends as a copy of the source, or as it was).
	// False: a target with any row is refused (ErrTargetNotEmpty).
	Overwrite bool
}

// CopiedTable is one table Copy copied, with its number of rows.
type CopiedTable struct {
	Name string
	Rows int64
}

// Copy copies every row of every table of from into to: a single node's
// SQLite database into the PostgreSQL database its replicas will share
// (`tailplane store copy`), or back. Both must be at the same schema
// version (open both with this binary: Open and OpenPostgres migrate).
// The source is read in one transaction, so the copy is consistent even
// if a server writes meanwhile (stop it first: what it writes later is
// not copied); the target is written in one transaction, tables in the
// order of their foreign keys, values converted to the target's column
// types (SQLite's 0/1 flags to BOOLEAN, ...), identity sequences moved
// past the copied IDs, and the row counts compared before it commits. A
// target that holds rows is refused unless opt.Overwrite, and one with a
// live replica's lease always is. Replica leases themselves are not
// copied: they belong to running servers.
func Copy(ctx context.Context, from, to *Store, opt CopyOptions) ([]CopiedTable, error) {
	where := fmt.Sprintf("copying %s to %s", from.Path, to.Path)
	src, err := from.db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: from.db.d.snapshot()})
	if err != nil {
		return nil, fmt.Errorf("store: %s: reading the source: %w", where, err)
	}
	defer src.Rollback()
	srcQ := sqlTx{tx: src, d: from.db.d}
	fromVersion, err := schemaVersion(ctx, srcQ)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	tables, err := copyTables(ctx, srcQ, from.db.d)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	var out []CopiedTable
	err = to.Update(ctx, func(tx *Tx) error {
		toVersion, err := schemaVersion(ctx, tx.tx)
		if err != nil {
			return err
		}
		if fromVersion != toVersion {
			return fmt.Errorf("the source has schema version %d and the target %d (hint: open both with the same tailplane, which migrates them)", fromVersion, toVersion)
		}
		order, err := prepareTarget(ctx, tx.tx, to.db.d, tables, opt)
		if err != nil {
			return err
		}
		for _, t := range order {
			n, err := copyTable(ctx, srcQ, tx.tx, to.db.d, t)
			if err != nil {
				return fmt.Errorf("table %s: %w", t, err)
			}
			out = append(out, CopiedTable{Name: t, Rows: n})
		}
		return to.db.d.resetIdentities(ctx, tx.tx)
	})
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	return out, nil
}

// notCopied are the tables Copy leaves alone: the migrations (both
// databases are at the same version) and the replicas' leases.
var notCopied = map[string]bool{"schema_migrations": true, "replicas": true}

// copyTables lists the tables of the database q reads that Copy copies.
func copyTables(ctx context.Context, q querier, d *dialect) ([]string, error) {
	names, err := queryStrings(ctx, q, d.tables)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	return slices.DeleteFunc(names, func(n string) bool { return notCopied[n] || strings.HasPrefix(n, "sqlite_") }), nil
}

// prepareTarget checks that the target has the source's tables and is
// empty (or empties it, with opt.Overwrite), and returns the tables in
// the order their foreign keys need.
func prepareTarget(ctx context.Context, tx sqlTx, d *dialect, tables []string, opt CopyOptions) ([]string, error) {
	have, err := copyTables(ctx, tx, d)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(have, tables) {
		return nil, fmt.Errorf("the target has tables %q, the source %q (hint: are both at the same schema version?)", have, tables)
	}
	order, err := d.dependencyOrder(ctx, tx, tables)
	if err != nil {
		return nil, err
	}
	var full []string
	for _, t := range order {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+t+`"`).Scan(&n); err != nil {
			return nil, fmt.Errorf("counting the rows of %s in the target: %w", t, err)
		}
		if n > 0 {
			full = append(full, fmt.Sprintf("%s (%d)", t, n))
		}
	}
	if len(full) > 0 && !opt.Overwrite {
		return nil, fmt.Errorf("%w: it has rows in %s (hint: copy into a new, empty database; or, to replace what it holds, stop every server using it and pass --overwrite)", ErrTargetNotEmpty, strings.Join(full, ", "))
	}
	if live, err := d.liveLeases(ctx, tx); err != nil || live > 0 {
		if err == nil {
			err = fmt.Errorf("%d replica(s) hold a live lease on the target (hint: stop every tailplane serve using it first)", live)
		}
		return nil, err
	}
	for _, t := range slices.Backward(order) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM "`+t+`"`); err != nil {
			return nil, fmt.Errorf("emptying %s in the target: %w", t, err)
		}
	}
	return order, nil
}

// copyBatch is how many rows go into one INSERT.
const copyBatch = 100

// copyTable copies every row of table from src to dst and checks the
// count; it returns the number of rows.
func copyTable(ctx context.Context, src, dst sqlTx, d *dialect, table string) (int64, error) {
	types, err := d.columnTypes(ctx, dst, table)
	if err != nil {
		return 0, err
	}
	rows, err := src.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
	if err != nil {
		return 0, fmt.Errorf("reading the source: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, fmt.Errorf("reading the source: %w", err)
	}
	if got := slices.Sorted(maps.Keys(types)); !slices.Equal(got, slices.Sorted(slices.Values(cols))) {
		return 0, fmt.Errorf("the target has columns %q, the source %q", got, cols)
	}
	var n int64
	var batch []any
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := dst.ExecContext(ctx, insertRows(table, cols, len(batch)/len(cols)), batch...); err != nil {
			return fmt.Errorf("writing the target: %w", err)
		}
		batch = batch[:0]
		return nil
	}
	for rows.Next() {
		vals, err := scanAny(rows, len(cols))
		if err != nil {
			return 0, fmt.Errorf("reading the source: %w", err)
		}
		for i, c := range cols {
			v, err := convertValue(vals[i], types[c])
			if err != nil {
				return 0, fmt.Errorf("column %s: %w", c, err)
			}
			batch = append(batch, v)
		}
		if n++; n%copyBatch == 0 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading the source: %w", err)
	}
	if err := flush(); err != nil {
		return 0, err
	}
	var want, got int64
	if err := src.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+table+`"`).Scan(&want); err != nil {
		return 0, fmt.Errorf("counting the source's rows: %w", err)
	}
	if err := dst.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+table+`"`).Scan(&got); err != nil {
		return 0, fmt.Errorf("counting the target's rows: %w", err)
	}
	if got != want || got != n {
		return 0, fmt.Errorf("the target has %d rows after copying %d of the source's %d", got, n, want)
	}
	return n, nil
}

// insertRows is an INSERT of rows rows of cols into table. Table and
// column names come from the databases' catalogs, not from a caller.
func insertRows(table string, cols []string, rows int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	return `INSERT INTO "` + table + `" ("` + strings.Join(cols, `", "`) + `") VALUES ` +
		strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}

// convertValue converts v, as the source's driver read it, for a target
// column of type typ (as the target's catalog names it).
func convertValue(v any, typ string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch strings.ToLower(typ) {
	case "boolean":
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			return x != 0, nil
		}
	case "integer", "bigint", "smallint":
		switch x := v.(type) {
		case int64:
			return x, nil
		case int32:
			return int64(x), nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case "text":
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case "bytea", "blob":
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	default:
		return v, nil
	}
	return nil, fmt.Errorf("a %T value for a %s column", v, typ)
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w (hint: is it a tailplane database?)", err)
	}
	return v, nil
}

func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
