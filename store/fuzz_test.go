package store

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	placeholderRE = regexp.MustCompile(`\$[0-9]+`)
	numberedRE    = regexp.MustCompile(`\?[0-9]`) // SQLite's ?NNN (TestRebind)
)

// FuzzRebind: rewriting placeholders only numbers ?s, 1, 2, 3, ... in
// order, and leaves SQLite's queries alone.
func FuzzRebind(f *testing.F) {
	for _, q := range []string{`SELECT 1`, `INSERT INTO t VALUES (?, ?)`, `SELECT '?' WHERE a = ? -- ?`, `"a?" = 'it''s' AND ?`, `--?`} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if got := sqliteDialect.rebind(q); got != q {
			t.Fatalf("sqlite rebind(%q) = %q", q, got)
		}
		d := &dialect{name: "postgres", numbered: true} // its own cache
		got := d.rebind(q)
		if strings.Contains(q, "$") || numberedRE.MatchString(q) {
			return // numbers in q itself would blur what rebind wrote
		}
		n := 0
		back := placeholderRE.ReplaceAllStringFunc(got, func(p string) string {
			n++
			if p != "$"+strconv.Itoa(n) {
				t.Fatalf("rebind(%q) = %q: placeholder %s where $%d belongs", q, got, p, n)
			}
			return "?"
		})
		if back != q {
			t.Fatalf("rebind(%q) = %q, which is not q with ?s numbered", q, got)
		}
		if again := d.rebind(q); again != got {
			t.Fatalf("rebind(%q) from the cache = %q, first %q", q, again, got)
		}
	})
}

// FuzzRedactURL: a URL's password never survives redaction, unless the
// same text stands elsewhere in the URL too.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"postgres://tp:s3cret@db.example/tp", "postgres://db/tp?password=s3cret", "postgres://tp@db/tp", "host=db password=x", "postgres://a:b@c:d@e/f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := RedactURL(s)
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		var secrets []string
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
		secrets = append(secrets, u.Query()["password"]...)
		if u.Opaque != "" { // "user:password@host/db" without "//": all of it may be secret
			secrets = append(secrets, u.Opaque)
		}
		for _, p := range secrets {
			if len(p) < 4 || p == "xxxxx" || strings.Count(s, p) > 1 || strings.Count(url.QueryEscape(p), "%") > 0 {
				continue // too short or too common to tell apart from the rest
			}
			if strings.Contains(got, p) {
				t.Fatalf("RedactURL(%q) = %q still holds the password %q", s, got, p)
			}
		}
	})
}
