package main

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailplane/tailplane/internal/testkit"
)

// TestDatabaseFlags: --database takes a PostgreSQL URL without a
// password; the password comes with the URL from --database-url-file or
// $TAILPLANE_DATABASE_URL; no flag means SQLite. No error shows a password.
func TestDatabaseFlags(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	withPassword := "postgres://tp:s3cret@db.example/tailplane"
	tests := []struct {
		name    string
		flags   databaseFlags
		env     string // $TAILPLANE_DATABASE_URL
		want    string
		wantErr string
	}{
		{name: "none: SQLite"},
		{name: "url without password", flags: databaseFlags{database: "postgres://tp@db.example/tailplane"}, want: "postgres://tp@db.example/tailplane"},
		{name: "url with password", flags: databaseFlags{database: withPassword}, wantErr: "postgres://tp:xxxxx@db.example/tailplane holds a password"},
		{name: "password parameter", flags: databaseFlags{database: "postgres://db.example/tailplane?password=s3cret"}, wantErr: "holds a password"},
		{name: "not postgres", flags: databaseFlags{database: "sqlite:///var/lib/tailplane.db"}, wantErr: "not a PostgreSQL URL"},
		{name: "url file", flags: databaseFlags{urlFile: file("url", withPassword+"\n")}, want: withPassword},
		{name: "environment", env: withPassword, want: withPassword},
		{name: "file before environment", flags: databaseFlags{urlFile: file("url2", "postgres://tp:s3cret@file.example/tp")}, env: withPassword, want: "postgres://tp:s3cret@file.example/tp"},
		{name: "file not a URL", flags: databaseFlags{urlFile: file("kv", "host=db password=s3cret")}, wantErr: "not a PostgreSQL URL"},
		{name: "file without scheme", flags: databaseFlags{urlFile: file("noscheme", "tp:s3cret@db.example/tailplane")}, wantErr: "not a PostgreSQL URL"},
		{name: "file opaque URL", flags: databaseFlags{urlFile: file("opaque", "postgres:tp:s3cret@db.example/tailplane")}, wantErr: "not a PostgreSQL URL"},
		{name: "url without scheme", flags: databaseFlags{database: "tp:s3cret@db.example/tailplane"}, wantErr: "not a PostgreSQL URL"},
		{name: "url single slash", flags: databaseFlags{database: "postgres:/tp:s3cret@db.example/tailplane"}, wantErr: "not a PostgreSQL URL"},
		{name: "empty file", flags: databaseFlags{urlFile: file("empty", "\n")}, wantErr: "is empty"},
		{name: "both flags", flags: databaseFlags{database: "postgres://db.example/tp", urlFile: file("url3", withPassword)}, wantErr: "give one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.flags.url(func(k string) string {
				if k == envDatabaseURL {
					return tt.env
				}
				return ""
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %v, want one saying %q without the password", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("url() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestServePostgres runs `tailplane serve` on a real PostgreSQL server,
// with the URL from --database-url-file, and with --database and the
// password in $PGPASSWORD: it serves, and its log names the database
// without the password.
func TestServePostgres(t *testing.T) {
	pg := testkit.NewPostgres(t)
	tests := []struct {
		name  string
		flags func(t *testing.T, dbURL string) []string
	}{
		{"database-url-file", func(t *testing.T, dbURL string) []string {
			urlFile := filepath.Join(t.TempDir(), "database-url")
			if err := os.WriteFile(urlFile, []byte(dbURL+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"--database-url-file", urlFile}
		}},
		{"database and PGPASSWORD", func(t *testing.T, dbURL string) []string {
			u, err := url.Parse(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			u.User = url.User("postgres")
			t.Setenv("PGPASSWORD", pg.Password())
			return []string{"--database", u.String()}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, state := freeAddr(t), t.TempDir()
			args := append([]string{"--config", filepath.Join(repoRoot, "examples", "basic"), "--state-dir", state, "--listen", addr},
				tt.flags(t, pg.NewDatabase(t))...)
			log := startServe(t, args...)
			if k := getKey(t, http.DefaultClient, "http://"+addr); k.PublicKey.IsZero() {
				t.Fatal("no Noise key in /key answer")
			}
			const want = "store: PostgreSQL database postgres://postgres"
			if l := log.String(); !strings.Contains(l, want) || strings.Contains(l, pg.Password()) {
				t.Errorf("serve's log must say %q and never the password:\n%s", want, l)
			}
		})
	}
}
