// Package server puts a whole tailplane server together: the store, the
// config source, the sync pipeline, the coordination server, the admin API
// and the embedded DERP relay. New builds and starts all of it from one
// Config; Close stops it in the one right order. `tailplane serve`, the
// end-to-end tests and any program embedding tailplane use it.
//
//	store.Open(StateDir) or OpenPostgres(Database) ─ reconcile.LoadApplied ─▶ control.New (serves the applied tailnet at once)
//	gitsync.NewRepo / NewDir ─▶ pipeline.New(Store, Source, Server: control) ─▶ Install
//	HTTP listener: /api/, /metrics ─▶ admin (reads pipeline.Status, control.Tailnet); /admin/ ─▶ console; / ─▶ control
//	control.StartDERP (unless Config.DERPMap) ─▶ admits only the control server's nodes
//	acmedns.NewServer (DNSListen) or NewProvider (DNSProvider) ─▶ Publisher ─▶ control's /machine/set-dns
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tailplane/tailplane/acmedns"
	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/console"
	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/replica"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
	"tailscale.com/tailcfg"
)

// Config configures a Server. StateDir is required, and so is a source:
// Repo.URL or ConfigDir.
type Config struct {
	// StateDir holds the SQLite database (unless Database), the Noise
	// key, the embedded relay's certificate and the Git cache.
	StateDir string
	// Database, when set, is the PostgreSQL URL the store lives in instead
	// of the SQLite file in StateDir ("postgres://user@host/db"; what it
	// leaves out comes from the PG* environment variables, see
	// store.OpenPostgres). It may hold the password: the server logs and
	// reports it only with the password masked. StateDir still holds the
	// Noise key, the relay's certificate and the Git cache.
	Database string

	// Repo, when Repo.URL is set, is the Git remote to follow (see
	// gitsync.Config). An empty Repo.CacheDir means StateDir/git; a nil
	// Repo.Logf means Logf.
	Repo gitsync.Config
	// ConfigDir is the local directory to watch instead of Repo.
	ConfigDir string
	// FirstApplyWait is how long New waits, with ConfigDir, for the
	// directory's first revision to apply, so that serving starts with it
	// (`serve --config-wait`; 30 s there). A first revision refused while
	// nothing was ever applied fails New (a *FirstApplyError). Zero means
	// no wait: the revision applies in the background, and the log says
	// what is served meanwhile. With Repo, New never waits: the remote may
	// be down, and the applied state serves meanwhile.
	FirstApplyWait time.Duration

	// Listen is the TCP address of the control protocol and the admin API;
	// empty means "127.0.0.1:0" (a random loopback port, see URL).
	Listen string
	// ServerURL is the URL clients reach the server at; empty means
	// http(s)://<the listener's address>, which a wildcard Listen cannot
	// give (New fails with a *ServerURLError).
	ServerURL string
	// TLS, when set, is the certificate to serve HTTPS (and the embedded
	// relay) with; nil means plain HTTP and a self-signed, pinned relay
	// certificate kept in StateDir.
	TLS *tls.Certificate

	// DERPMap, when set, is handed to clients instead of running the
	// embedded DERP relay and STUN server.
	DERPMap *tailcfg.DERPMap
	// DERPListen is the embedded relay's TLS address; empty means the host
	// of the listener with a random port.
	DERPListen string
	// STUNListen is the embedded STUN server's UDP address; empty means
	// the relay's host with a random port, "off" disables STUN.
	STUNListen string
	// DERPMeshKey is the secret the replicas' relays share to mesh (64 hex
	// digits; `serve --derp-mesh-key-file` or $TAILPLANE_DERP_MESH_KEY).
	// It never appears in a log or status. Empty means no mesh.
	DERPMeshKey string
	// DERPMeshWith are the other replicas' relays (control.ParseMeshPeer;
	// this replica's own may be among them): the embedded relay meshes
	// with them (needs DERPMeshKey), and the DERP map lists them after it
	// in its region (derpmesh.go). Empty means a relay of its own.
	DERPMeshWith []*tailcfg.DERPNode

	// DNSListen, when set, starts the embedded authoritative DNS server
	// (package acmedns) on this UDP and TCP address; it answers the ACME
	// DNS-01 challenges of nodes' certificates (dns.https, docs/https.md).
	// Empty means no DNS server.
	DNSListen string
	// DNSServer configures the embedded DNS server beyond DNSListen (its
	// Addr is ignored). An empty Zone means the served tailnet domain,
	// followed when a new config changes it.
	DNSServer acmedns.ServerConfig
	// DNSProvider, when its Kind is set, publishes the challenges with an
	// external DNS provider instead of the embedded server (not both).
	DNSProvider acmedns.ProviderConfig

	// WebhookSecret is the push webhook's HMAC secret; empty turns the
	// webhook off (it answers 403).
	WebhookSecret []byte
	// ReplicaHeartbeat and ReplicaLease are, with Database, how often a
	// replica renews its lease and how long the lease holds: how soon after
	// a replica dies its nodes go offline on the others (see package
	// replica). Zero means 2 s and 10 s.
	ReplicaHeartbeat, ReplicaLease time.Duration

	// OIDCClientSecret is the client secret of the applied login.oidc's
	// client (`serve --oidc-client-secret-file`); it never comes from Git.
	// Empty means a public client (PKCE only), or no provider.
	OIDCClientSecret string
	// MinRetry and MaxRetry bound the pipeline's backoff after transient
	// failures; zero means 1 s and 5 min.
	MinRetry, MaxRetry time.Duration
	// ConsoleAllowHTTP serves the web console at /admin/ over plain HTTP
	// to any address; false: plain HTTP only on loopback connections
	// (docs/console.md).
	ConsoleAllowHTTP bool
	// RepoWebURL links the console's errors and rules to the file on the
	// Git host: a URL with {commit}, {path} and {line}, such as
	// https://github.com/org/tailnet/blob/{commit}/{path}#L{line}. Empty:
	// no links.
	RepoWebURL string

	// DebugListen, when set, is a TCP address that serves Go's runtime
	// profiles (net/http/pprof under /debug/pprof/, for `go tool pprof`)
	// without authentication: a loopback or otherwise private address
	// (`serve --debug-listen`). Empty means none.
	DebugListen string

	// Logf logs the server's events; nil means log.Printf.
	Logf func(format string, args ...any)
}

// Server is a running tailplane: see New.
type Server struct {
	st   *store.Store
	src  gitsync.Source
	derp *control.DERP // nil with Config.DERPMap
	// mesh is the relay's mesh with the other replicas' relays; nil
	// without Config.DERPMeshKey.
	mesh *control.DERPMesh
	ctrl *control.Server
	lm   *login.Manager // interactive logins, mounted at /login/
	pl   *pipeline.Pipeline
	rep  *replica.Replica // nil on SQLite
	ln   net.Listener
	hs   *http.Server
	dbg  *debugServer // nil without Config.DebugListen
	url  string
	errc chan error // the HTTP server's own failure

	// dns, cert and dnsFollows publish ACME challenges (https.go): the
	// embedded DNS server (nil without DNSListen), the publisher (nil
	// without DNSListen or DNSProvider), and whether dns follows the
	// tailnet domain.
	dns        *acmedns.Server
	cert       *acmedns.Publisher
	dnsFollows bool

	closeOnce sync.Once
	closeErr  error
}

// shutdownTimeout bounds how long Close waits for HTTP requests in
// flight (map streams are not among them: they run over Noise and end
// with the coordination server).
const shutdownTimeout = 5 * time.Second

// New opens the store, serves the applied tailnet from it at once, starts
// following the source and the sync pipeline, and serves the control
// protocol and the admin API on the listener. ctx bounds only the start
// (opening, and with ConfigDir the wait for the first apply); what New
// starts runs until Close. On error, everything New started is stopped.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.StateDir == "" || (cfg.Repo.URL == "") == (cfg.ConfigDir == "") {
		return nil, errors.New("server: Config needs StateDir and one source: Repo.URL or ConfigDir")
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	s := &Server{errc: make(chan error, 1)}
	if err := s.start(ctx, cfg); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.ConfigDir != "" {
		if err := s.waitFirstApply(ctx, cfg); err != nil {
			s.Close()
			return nil, err
		}
	}
	go func() {
		var err error
		if cfg.TLS != nil {
			err = s.hs.ServeTLS(s.ln, "", "")
		} else {
			err = s.hs.Serve(s.ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	}()
	return s, nil
}

// start builds every part in dependency order; the caller closes s when
// it fails.
func (s *Server) start(ctx context.Context, cfg Config) error {
	run := context.WithoutCancel(ctx) // the parts' lifetime: until Close
	var err error
	if s.st, err = openStore(ctx, cfg); err != nil {
		return err
	}
	served, _, err := s.st.LatestRevision(ctx) // before the state: see pipeline.Config.Served
	if err != nil {
		return err
	}
	applied, err := reconcile.LoadApplied(ctx, s.st) // the one read at start
	if err != nil {
		return err
	}
	src, err := openSource(run, cfg)
	if err != nil {
		return err
	}
	s.src = src
	if cfg.DebugListen != "" {
		if s.dbg, err = startDebug(cfg.DebugListen, cfg.Logf); err != nil {
			return err
		}
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if s.ln, err = net.Listen("tcp", listen); err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	u, err := s.serverURL(cfg, listen)
	if err != nil {
		return err
	}
	s.url = u.String()
	id, err := loadIdentity(ctx, s.st, cfg, u.Hostname())
	if err != nil {
		return err
	}
	noiseKey := id.noise
	if cfg.DERPMeshKey == "" {
		cfg.DERPMeshKey = id.derpMeshKey // replicas: the relays mesh with the database's key (see replica.go)
	}
	derpMap := cfg.DERPMap
	if derpMap == nil {
		if s.derp, err = startDERP(ctx, cfg, s.ln, u.Hostname(), id); err != nil {
			return err
		}
		derpMap = s.derp.Map
		if s.mesh, derpMap, err = startMesh(ctx, cfg, s.derp); err != nil {
			return err
		}
	} else if len(cfg.DERPMeshWith) > 0 {
		return errors.New("server: DERPMeshWith (--derp-mesh-with) meshes the embedded relay, which DERPMap (--derp-map) replaces: give one or the other")
	}
	if err := s.startCertDNS(ctx, cfg, applied); err != nil {
		return err
	}
	if s.lm, err = startLogin(ctx, cfg, s.st, s.url, applied, s.lookupUser); err != nil {
		return err
	}
	ccfg := control.Config{
		Store: s.st, NoiseKey: noiseKey, Tailnet: applied, DERPMap: derpMap, DERP: s.derp,
		ServerURL: s.url, CertDNS: s.certDNS(), Login: s.lm, Logf: cfg.Logf,
	}
	metrics := admin.NewMetrics()
	pcfg := pipeline.Config{
		Store: s.st, Source: s.src,
		MinBackoff: cfg.MinRetry, MaxBackoff: cfg.MaxRetry, Logf: cfg.Logf,
		ObservePropagation: metrics.ObservePropagation, Served: &served,
	}
	if err := s.joinReplicas(cfg, &ccfg, &pcfg); err != nil {
		return err
	}
	s.ctrl, err = control.New(ctx, ccfg)
	if err != nil {
		return err
	}
	if err := s.startReplica(ctx, cfg); err != nil {
		return err
	}
	pcfg.Server = s.installer(cfg)
	s.pl, err = pipeline.New(run, pcfg)
	if err != nil {
		return err
	}
	if s.rep != nil {
		s.rep.OnSync(s.pl.Sync)
		s.rep.OnLogin(s.lm.Changed) // another replica ended a login: its waits here read it again
	}
	acfg := admin.Config{
		Pipeline: s.pl, Served: s.ctrl.Tailnet, Store: s.st, Nodes: s.ctrl.NodeCounts, WebhookSecret: cfg.WebhookSecret,
		Metrics: metrics, Stats: s.ctrl.Stats,
		Control: s.ctrl, Logins: s.lm,
	}
	if s.rep != nil {
		acfg.Replicas = s.rep.Status
	}
	api := admin.Handler(acfg)
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/metrics", api)
	mux.Handle("/login/", s.lm)
	con, err := console.New(console.Config{Control: s.ctrl, Pipeline: s.pl, Store: s.st, Metrics: metrics, BaseURL: s.url,
		AllowHTTP: cfg.ConsoleAllowHTTP, RepoWebURL: cfg.RepoWebURL, Login: s.lm, Logf: cfg.Logf})
	if err != nil {
		return err
	}
	mux.Handle("/admin/", con)
	mux.Handle("/", s.ctrl.Handler())
	s.hs = s.ctrl.HTTPServer(mux)
	if cfg.TLS != nil {
		s.hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cfg.TLS}}
	}
	return nil
}

// openStore opens the PostgreSQL database cfg.Database names, or else the
// SQLite one in cfg.StateDir.
func openStore(ctx context.Context, cfg Config) (*store.Store, error) {
	if cfg.Database == "" {
		return store.Open(ctx, cfg.StateDir)
	}
	st, err := store.OpenPostgres(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	cfg.Logf("store: PostgreSQL database %s", st.Path) // Path has no password
	return st, nil
}

// openSource starts following cfg's Git remote or directory. The result
// is nil on error (not a nil *Repo or *Dir in the interface).
func openSource(ctx context.Context, cfg Config) (gitsync.Source, error) {
	if cfg.ConfigDir != "" {
		d, err := gitsync.NewDir(ctx, cfg.ConfigDir, gitsync.DirConfig{Logf: cfg.Logf})
		if err != nil {
			return nil, err
		}
		return d, nil
	}
	rc := cfg.Repo
	if rc.CacheDir == "" {
		rc.CacheDir = filepath.Join(cfg.StateDir, "git")
	}
	if rc.Logf == nil {
		rc.Logf = cfg.Logf
	}
	r, err := gitsync.NewRepo(ctx, rc)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// ServerURLError is New's error when clients cannot be told where the
// server is: ServerURL is not a URL with a host, or it is empty while the
// server listens on every address.
type ServerURLError struct {
	URL    string // Config.ServerURL; empty when it was not given
	Listen string // Config.Listen
	Port   int    // the port listened on
}

func (e *ServerURLError) Error() string {
	if e.URL != "" {
		return fmt.Sprintf("server: ServerURL %q is not a URL like https://tailplane.example.com", e.URL)
	}
	return fmt.Sprintf("server: %s listens on every address, so clients (and the DERP map) cannot be told where the server is: set ServerURL, e.g. https://tailplane.example.com or http://192.0.2.10:%d", e.Listen, e.Port)
}

// serverURL is cfg.ServerURL, or the listener's address.
func (s *Server) serverURL(cfg Config, listen string) (*url.URL, error) {
	raw := cfg.ServerURL
	if raw == "" {
		if a, ok := s.ln.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
			return nil, &ServerURLError{Listen: listen, Port: a.Port}
		}
		scheme := "http"
		if cfg.TLS != nil {
			scheme = "https"
		}
		raw = scheme + "://" + s.ln.Addr().String()
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return nil, &ServerURLError{URL: raw, Listen: listen}
	}
	return u, nil
}

// startDERP starts the embedded relay beside ln and logs where it is.
func startDERP(ctx context.Context, cfg Config, ln net.Listener, host string, id identity) (*control.DERP, error) {
	listen := cfg.DERPListen
	if listen == "" {
		listenHost, _, _ := net.SplitHostPort(ln.Addr().String())
		listen = net.JoinHostPort(listenHost, "0")
	}
	d, err := control.StartDERP(ctx, control.DERPConfig{
		Listen: listen, STUNListen: cfg.STUNListen, HostName: host, Cert: cfg.TLS, StateDir: cfg.StateDir,
		PinnedCert: id.derpCert, MeshKey: cfg.DERPMeshKey, Logf: relayLogf(cfg),
	})
	if err != nil {
		return nil, err
	}
	for _, r := range d.Map.Regions {
		for _, n := range r.Nodes {
			cfg.Logf("embedded DERP relay on %s:%d (STUN port %d)%s", n.HostName, n.DERPPort, n.STUNPort, pinNote(n))
		}
	}
	return d, nil
}

// URL is the URL clients reach the server at (Config.ServerURL, or the
// listener's address).
func (s *Server) URL() string { return s.url }

// Addr is the address the control protocol and the admin API listen on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// DebugAddr is the address of the debug listener (Config.DebugListen);
// nil without one.
func (s *Server) DebugAddr() net.Addr {
	if s.dbg == nil {
		return nil
	}
	return s.dbg.ln.Addr()
}

// Tailnet returns the tailnet being served. It is never nil and must not
// be modified.
func (s *Server) Tailnet() *schema.Tailnet { return s.ctrl.Tailnet() }

// Login is the interactive login manager (pending logins, Approve).
func (s *Server) Login() *login.Manager { return s.lm }

// Pipeline is the sync pipeline: its Status, Wait and Sync.
func (s *Server) Pipeline() *pipeline.Pipeline { return s.pl }

// Control is the coordination server.
func (s *Server) Control() *control.Server { return s.ctrl }

// Store is the server's database.
func (s *Server) Store() *store.Store { return s.st }

// DERP is the embedded relay; nil with Config.DERPMap.
func (s *Server) DERP() *control.DERP { return s.derp }

// Err receives the error that stopped the HTTP server on its own (say,
// the listener failed); nothing is sent after Close.
func (s *Server) Err() <-chan error { return s.errc }

// Close stops the server, each part after what depends on it: the HTTP
// server first (no new requests; those in flight get up to 5 s), then
// the pipeline (nothing more is installed), the source, the coordination
// server (map sessions end), the ACME challenge records and DNS server,
// the relay and last the store. It is safe to
// call more than once and returns the first error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.hs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			errs = append(errs, s.hs.Shutdown(ctx))
			cancel()
		}
		if s.ln != nil {
			s.ln.Close() // Shutdown closed it if serving started
		}
		if s.pl != nil {
			errs = append(errs, s.pl.Close())
		}
		if s.rep != nil {
			errs = append(errs, s.rep.Close())
		}
		if s.src != nil {
			errs = append(errs, s.src.Close())
		}
		if s.ctrl != nil {
			errs = append(errs, s.ctrl.Close())
		}
		errs = append(errs, s.closeCertDNS()) // after control: no set-dns in flight
		if s.mesh != nil {
			errs = append(errs, s.mesh.Close())
		}
		if s.derp != nil {
			errs = append(errs, s.derp.Close())
		}
		if s.st != nil {
			errs = append(errs, s.st.Close())
		}
		if s.dbg != nil {
			errs = append(errs, s.dbg.close())
		}
		for _, err := range errs {
			if err != nil {
				s.closeErr = err
				break
			}
		}
	})
	return s.closeErr
}

// FirstApplyError is New's error when the first revision of
// Config.ConfigDir is refused and nothing was ever applied in StateDir:
// the server would serve no tailnet, so it does not start.
type FirstApplyError struct {
	ConfigDir, StateDir string
	Attempt             pipeline.Attempt // the refused revision, with its problems
}

func (e *FirstApplyError) Error() string {
	return fmt.Sprintf("server: config %s has problems (%s failed) and no revision was ever applied in %s, so the server does not start (fix the config and start it again):\n%s",
		e.ConfigDir, e.Attempt.Step, e.StateDir, e.Problems())
}

// Problems returns the refused revision's problems, one per line.
func (e *FirstApplyError) Problems() string {
	lines := make([]string, len(e.Attempt.Problems))
	for i, p := range e.Attempt.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// waitFirstApply waits up to cfg.FirstApplyWait for the directory's first
// revision to apply or to be refused for good. A refusal with nothing
// applied before is a *FirstApplyError; running out of time is not an
// error (the state applied before, or none, is served, and the log says
// which).
func (s *Server) waitFirstApply(ctx context.Context, cfg Config) error {
	wait := cfg.FirstApplyWait
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	st, err := s.pl.Wait(wctx, func(st pipeline.Status) bool {
		a := st.Attempted
		return a != nil && (a.OK || st.Serving || a.Class == pipeline.ClassNeedsNewCommit)
	})
	switch {
	case err == nil && !st.Attempted.OK && !st.Serving:
		return &FirstApplyError{ConfigDir: cfg.ConfigDir, StateDir: cfg.StateDir, Attempt: *st.Attempted}
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case st.Serving:
		cfg.Logf("config %s: not applied after %v; serving the last applied state", cfg.ConfigDir, wait)
	default:
		cfg.Logf("config %s: not applied after %v, and nothing is applied yet: serving no tailnet (every registration is refused) until it applies", cfg.ConfigDir, wait)
	}
	return nil
}
