package localsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresInstallHint is what a caller without PostgreSQL is told to do.
const PostgresInstallHint = "apt-get install postgresql (.ci/run installs it when missing)"

// Postgres is a throwaway PostgreSQL cluster (StartPostgres): a fresh data
// directory, a server on a free port of 127.0.0.1 (and a unix socket in
// the same temporary directory), and a superuser postgres whose password
// is random. The server is a child of the calling process and dies with it.
type Postgres struct {
	dir      string // temporary directory: data/, the socket, the log
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the server process has exited
}

// StartPostgres initializes and starts a cluster with Debian's (or PATH's)
// initdb and postgres. Run as root, both run as the user postgres
// (PostgreSQL refuses to run as root), like `runuser -u postgres`. When
// PostgreSQL is not installed the error says how to install it. Stop
// stops the server and removes its directory.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := postgresUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tailplane-postgres-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, password: randomHex(16), exited: make(chan struct{})}
	if err := p.start(ctx, bin, cred, uid, gid); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *Postgres) start(ctx context.Context, bin string, cred *syscall.Credential, uid, gid int) error {
	pwfile := filepath.Join(p.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.password+"\n"), 0o600); err != nil {
		return err
	}
	if uid >= 0 {
		for _, f := range []string{p.dir, pwfile} {
			if err := os.Chown(f, uid, gid); err != nil {
				return fmt.Errorf("postgres: handing %s to the user postgres: %w", f, err)
			}
		}
	}
	data := filepath.Join(p.dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local", "trust", "--auth-host", "scram-sha-256", "-E", "UTF8", "--locale", "C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = p.dir
	if out, err := initdb.CombinedOutput(); err != nil {
		hint := ""
		if uid >= 0 {
			hint = fmt.Sprintf(" (hint: the user postgres must be able to reach %s; point TMPDIR at a directory it can)", p.dir)
		}
		return fmt.Errorf("postgres: initdb: %v%s\n%s", err, hint, tailLines(string(out), 2000))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	p.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logFile, err := os.Create(filepath.Join(p.dir, "postgres.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	p.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+p.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.Dir = p.dir
	// SIGQUIT is PostgreSQL's immediate shutdown: the server goes when the
	// calling process does, however it ends.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("postgres: starting the server: %w", err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	return p.waitReady(ctx)
}

// waitReady connects until the server answers, it exits, or a minute
// passes.
func (p *Postgres) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, p.URL("postgres"))
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("postgres: the server exited while starting:\n%s", p.Log())
		case <-ctx.Done():
			return fmt.Errorf("postgres: not answering on port %d: %v\n%s", p.port, err, p.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL is the URL of database db, with the superuser's password in it.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", p.password, p.port, db)
}

// Password is the superuser's password.
func (p *Postgres) Password() string { return p.password }

// Dir is the cluster's temporary directory (gone after Stop).
func (p *Postgres) Dir() string { return p.dir }

// Log returns the end of the server's log.
func (p *Postgres) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
	return tailLines(string(b), 4000)
}

// CreateDatabase creates the empty database name and returns its URL
// (with the password).
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	c, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("postgres: connecting to create database %s: %w", name, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("postgres: creating database %s: %w", name, err)
	}
	return p.URL(name), nil
}

// Stop stops the server (PostgreSQL's fast shutdown, then a kill if it
// takes longer than a minute) and removes its directory.
func (p *Postgres) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(time.Minute):
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	os.RemoveAll(p.dir)
}

// postgresBin finds the directory of initdb and postgres: PATH, else the
// newest /usr/lib/postgresql/VERSION/bin (where Debian puts them).
func postgresBin() (string, error) { return postgresBinIn("/usr/lib/postgresql") }

// postgresBinIn is postgresBin looking in lib instead of /usr/lib/postgresql.
func postgresBinIn(lib string) (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob(filepath.Join(lib, "*", "bin"))
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL is needed and not installed: no initdb on PATH or in %s/*/bin (hint: %s)", lib, PostgresInstallHint)
}

func versionOf(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

// postgresUser is who the server runs as: the user postgres when the
// caller runs as root (cred set, uid and gid its IDs), else the caller's
// own user (cred nil, uid -1).
func postgresUser() (cred *syscall.Credential, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root, and PostgreSQL refuses to, but there is no user postgres to run it as: %v (hint: %s creates it)", err, PostgresInstallHint)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, uid, gid, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
