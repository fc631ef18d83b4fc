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
		summary: "copy a single node's SQLite database into PostgreSQL, to run replicas on it, or back: store copy",
		run:     runStore,
	})
}

const storeUsage = "copy (--from-state-dir DIR | --to-state-dir DIR) (--database-url-file FILE | --database URL) [--overwrite]"

func runStore(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "store", storeUsage)
	from := fs.String("from-state-dir", "", "copy: the single node's --state-dir, holding tailplane.db and noise.key (stop its server first), to copy into PostgreSQL")
	to := fs.String("to-state-dir", "", "copy: a single node's --state-dir to copy PostgreSQL's database and identity into, the way back from replicas (stop every replica first)")
	var db databaseFlags // serve's, with the help of this command
	fs.StringVar(&db.database, "database", "", "copy: the PostgreSQL URL, without a password (it comes from $PGPASSWORD or ~/.pgpass)")
	fs.StringVar(&db.urlFile, "database-url-file", "", "copy: file holding the PostgreSQL URL, password included (default: $"+envDatabaseURL+")")
	overwrite := fs.Bool("overwrite", false, "copy: replace what the target database holds, and with --to-state-dir its identity files (default: refuse a database with any row, or other identity files)")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || fs.Arg(0) != "copy" {
		fmt.Fprintln(env.stderr, "tailplane store: say copy")
		fs.Usage()
		return exitUsage
	}
	if (*from == "") == (*to == "") {
		fmt.Fprintln(env.stderr, "tailplane store copy: name one state directory: --from-state-dir DIR, the server whose SQLite database to copy into PostgreSQL, or --to-state-dir DIR, where to copy PostgreSQL's back into")
		fs.Usage()
		return exitUsage
	}
	url, err := db.url(env.getenv)
	if err == nil && url == "" {
		err = fmt.Errorf("name the PostgreSQL database: --database-url-file FILE (the URL, password included), $%s, or --database URL with the password in $PGPASSWORD or ~/.pgpass", envDatabaseURL)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "tailplane store copy: %v\n", err)
		fs.Usage()
		return exitUsage
	}
	if *to != "" {
		err = copyStoreBack(ctx, env, url, *to, *overwrite)
	} else {
		err = copyStore(ctx, env, *from, url, *overwrite)
	}
	if err != nil {
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
	if err := copyTables(ctx, env, from, to, overwrite); err != nil {
		return err
	}
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

// copyTables copies every table of from into to and prints what it
// copied.
func copyTables(ctx context.Context, env *cliEnv, from, to *store.Store, overwrite bool) error {
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
	return nil
}

// copyStoreBack copies the PostgreSQL database at url, and the identity
// it holds, into stateDir's SQLite database and files, for a single node
// to serve what the replicas served; and says what it copied. Every
// replica must be stopped: one holding a live lease is refused.
func copyStoreBack(ctx context.Context, env *cliEnv, url, stateDir string, overwrite bool) error {
	from, err := store.OpenPostgresCurrent(ctx, url) // never migrates the replicas' database
	if err != nil {
		return err
	}
	defer from.Close()
	rs, err := from.Replicas(ctx)
	if err != nil {
		return err
	}
	live := 0
	for _, r := range rs {
		if r.Live {
			live++
		}
	}
	if live > 0 {
		return fmt.Errorf("%s: %d replica(s) hold a live lease, and what they write after the copy would be lost (hint: stop every tailplane serve using it first; a stopped replica's lease lapses within seconds); nothing was copied", from.Path, live)
	}
	plan, err := server.PlanIdentityExport(ctx, from, stateDir, overwrite)
	if err != nil {
		return fmt.Errorf("%w; nothing was copied", err)
	}
	dbFile := filepath.Join(stateDir, store.FileName)
	_, statErr := os.Stat(dbFile)
	to, err := store.Open(ctx, stateDir)
	if err != nil {
		return err
	}
	if err := copyTables(ctx, env, from, to, overwrite); err != nil {
		to.Close()
		if errors.Is(statErr, fs.ErrNotExist) { // the database was made for the copy: leave none behind
			for _, f := range []string{dbFile, dbFile + "-wal", dbFile + "-shm"} {
				os.Remove(f)
			}
		}
		return err
	}
	defer to.Close()
	written, err := plan.Write()
	if err != nil {
		return fmt.Errorf("the tables are copied, but the identity is not: %w (hint: run the copy again with --overwrite)", err)
	}
	fmt.Fprintf(env.stdout, "identity: %s written to %s\n", strings.Join(written, ", "), stateDir)
	fmt.Fprintf(env.stdout, "Start the single node with --state-dir %s and without --database now; keep the database as the backup.\n", stateDir)
	return nil
}

// plural is "1 row", "2 rows".
func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
