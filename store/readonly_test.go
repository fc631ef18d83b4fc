package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()

	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		_, err := OpenReadOnly(ctx, dir)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("OpenReadOnly(missing) error = %v, want fs.ErrNotExist", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenReadOnly created %s", dir)
		}
	})

	t.Run("reads and refuses writes", func(t *testing.T) {
		dir := t.TempDir()
		st, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.db.ExecContext(ctx, `INSERT INTO config_objects (kind, name, value) VALUES ('user', 'a@b', '{}')`); err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ro, err := OpenReadOnly(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		var n int
		if err := ro.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM config_objects`).Scan(&n); err != nil || n != 1 {
			t.Errorf("read %d rows, %v; want 1", n, err)
		}
		if _, err := ro.db.ExecContext(ctx, `DELETE FROM config_objects`); err == nil {
			t.Error("a read-only store accepted a write")
		}
	})

	t.Run("newer schema", func(t *testing.T) {
		dir := t.TempDir()
		st, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')`); err != nil {
			t.Fatal(err)
		}
		st.Close()
		_, err = OpenReadOnly(ctx, dir)
		if err == nil || !strings.Contains(err.Error(), "upgrade tailplane") {
			t.Errorf("OpenReadOnly(newer schema) error = %v, want a hint to upgrade", err)
		}
	})
}
