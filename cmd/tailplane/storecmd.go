package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/tailplane/tailplane/server"
	"github.com/tailplane/tailplane/store"
)

func init() {
	register(&command{
		name:    "store",
		summary: "copy a single node's SQLite database into PostgreSQL, to run replicas on it: store copy",
		run:     runStore,
	})
}

const storeUsage = "copy --from-state-dir DIR (--database-url-file FILE | --database URL) [--overwrite]"

func runStore(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "store", storeUsage)
	from := fs.String("from-state-dir", "", "copy: the single node's --state-dir, holding tailplane.db and noise.key (stop its server first)")
	var db databaseFlags // serve's, with the help of this command
	fs.StringVar(&db.database, "database", "", "copy: the PostgreSQL URL to copy into, without a password (it comes from $PGPASSWORD or ~/.pgpass)")
	fs.StringVar(&db.urlFile, "database-url-file", "", "copy: file holding the PostgreSQL URL to copy into, password included (default: $"+envDatabaseURL+")")
	overwrite := fs.Bool("overwrite", false, "copy: replace what the PostgreSQL database holds (default: refuse a database with any row)")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || fs.Arg(0) != "copy" {
		fmt.Fprintln(env.stderr, "tailplane store: say copy")
		fs.Usage()
		return exitUsage
	}
	if *from == "" {
		fmt.Fprintln(env.stderr, "tailplane store copy: --from-state-dir DIR is required: the state directory of the server whose SQLite database to copy")
		fs.Usage()
		return exitUsage
	}
	url, err := db.url(env.getenv)
	if err == nil && url == "" {
		err = fmt.Errorf("name the PostgreSQL database to copy into: --database-url-file FILE (the URL, password included), $%s, or --database URL with the password in $PGPASSWORD or ~/.pgpass", envDatabaseURL)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "tailplane store copy: %v\n", err)
		fs.Usage()
		return exitUsage
	}
	if err := copyStore(ctx, env, *from, url, *overwrite); err != nil {
		fmt.Fprintf(env.stderr, "tailplane store copy: %v\n", err)
		return exitProblems
	}
	return exitOK
}

// copyStore copies the SQLite database in stateDir into the PostgreSQL
// database at url, then the state directory's identity, and says what it
// copied.
func copyStore(ctx context.Context, env *cliEnv, stateDir, url string, overwrite bool) error {
	file := filepath.Join(stateDir, store.FileName)
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s holds no %s (hint: --from-state-dir is the single node's --state-dir)", stateDir, store.FileName)
	} else if err != nil {
		return err
	}
	from, err := store.Open(ctx, stateDir)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := store.OpenPostgres(ctx, url)
	if err != nil {
		return err
	}
	defer to.Close()
	tables, err := store.Copy(ctx, from, to, store.CopyOptions{Overwrite: overwrite})
	if err != nil {
		if errors.Is(err, store.ErrTargetNotEmpty) {
			return fmt.Errorf("%w; nothing was copied", err)
		}
		return fmt.Errorf("%w; nothing was copied (the target is as it was)", err)
	}
	fmt.Fprintf(env.stdout, "copied %s to %s:\n", from.Path, to.Path)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	var rows int64
	for _, t := range tables {
		if rows += t.Rows; t.Rows > 0 {
			fmt.Fprintf(tw, "  %s\t%s\n", t.Name, plural(t.Rows, "row"))
		}
	}
	tw.Flush()
	fmt.Fprintf(env.stdout, "  (%s in all; the row counts match the source's)\n", plural(rows, "row"))
	imported, err := server.ImportIdentity(ctx, to, stateDir)
	if err != nil {
		return fmt.Errorf("the tables are copied, but the identity is not: %w (hint: start the first replica with --state-dir %s, which imports it)", err, stateDir)
	}
	if len(imported) == 0 {
		fmt.Fprintf(env.stdout, "identity: %s has no noise.key: the replicas make a new one, and every client must register again\n", stateDir)
	} else {
		fmt.Fprintf(env.stdout, "identity: %s imported from %s\n", strings.Join(imported, ", "), stateDir)
	}
	fmt.Fprintln(env.stdout, "Start the replicas with the database now (docs/deploy.md, Replicas); keep the state directory as a backup.")
	return nil
}

// plural is "1 row", "2 rows".
func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
