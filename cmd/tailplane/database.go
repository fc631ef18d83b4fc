package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/store"
)

// envDatabaseURL holds the PostgreSQL URL, password included, when
// neither --database nor --database-url-file is given.
const envDatabaseURL = "TAILPLANE_DATABASE_URL"

// databaseFlags choose where serve keeps its store: SQLite in --state-dir
// by default, or a PostgreSQL database. A flag value never holds the
// password (ps and shell history show flags): --database refuses a URL
// with one, and the password comes from --database-url-file,
// $TAILPLANE_DATABASE_URL, $PGPASSWORD or ~/.pgpass instead.
type databaseFlags struct {
	database string // --database: a PostgreSQL URL without a password
	urlFile  string // --database-url-file: a file holding the URL, password included
}

func (d *databaseFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&d.database, "database", "", "PostgreSQL URL to keep the state in instead of SQLite in --state-dir (postgres://user@host/db, no password: it comes from $PGPASSWORD or ~/.pgpass)")
	fs.StringVar(&d.urlFile, "database-url-file", "", "file holding the PostgreSQL URL, password included (default: $"+envDatabaseURL+"; none: SQLite)")
}

// url returns the PostgreSQL URL to use; empty means SQLite.
func (d *databaseFlags) url(getenv func(string) string) (string, error) {
	if d.database != "" && d.urlFile != "" {
		return "", errors.New("--database and --database-url-file both name the database: give one")
	}
	if d.database != "" {
		if !store.IsPostgresURL(d.database) {
			return "", fmt.Errorf("--database %s is not a PostgreSQL URL like postgres://tailplane@db.example.com/tailplane (SQLite needs no flag: it is the default, in --state-dir)", notPostgres(d.database))
		}
		u, err := url.Parse(d.database)
		if err != nil {
			return "", errors.New("--database: the URL does not parse (hint: percent-encode special characters)")
		}
		if hasPassword(u) {
			return "", fmt.Errorf("--database %s holds a password, which ps and shell history would show: put the whole URL in a file for --database-url-file (or $%s), or the password in $PGPASSWORD or ~/.pgpass", store.RedactURL(d.database), envDatabaseURL)
		}
		return d.database, nil
	}
	b, err := readSecretFile(d.urlFile, envDatabaseURL, getenv)
	if err != nil {
		return "", fmt.Errorf("--database-url-file: %w", err)
	}
	if u := string(b); u != "" && !store.IsPostgresURL(u) {
		where := "$" + envDatabaseURL
		if d.urlFile != "" {
			where = d.urlFile
		}
		return "", fmt.Errorf("%s holds %s, not a PostgreSQL URL like postgres://tailplane:PASSWORD@db.example.com/tailplane", where, notPostgres(u))
	}
	return string(b), nil
}

// notPostgres names s, a value that is not a PostgreSQL URL, for an
// error: a URL with a host (scheme://[user@]host/...) with its password
// masked, anything else only as "(a value without scheme://host)", since
// store.RedactURL masks no password in what it cannot take apart
// ("tp:PASSWORD@db/tp", a URL that lacks its "postgres://").
func notPostgres(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		return store.RedactURL(s)
	}
	return "(a value without scheme://host)"
}

// hasPassword reports whether u carries a password, in its user part or
// as a parameter.
func hasPassword(u *url.URL) bool {
	_, inUser := u.User.Password()
	return inUser || u.Query().Has("password") || u.Query().Has("sslpassword")
}
