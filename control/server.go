// Package control is tailplane's coordination server: it speaks Tailscale's
// control protocol (Noise over HTTP, /machine/register and /machine/map) to
// unmodified Tailscale clients and serves them netmaps of the declared tailnet.
//
// A new config is prepared once (Prepare: the policy compiled, its derpMap
// merged), tested against the nodes the server evaluates (Test), and served
// (Install); package pipeline drives these steps for each revision, and
// package server wires the whole server together.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
	"golang.org/x/net/http2"
	"tailscale.com/control/controlbase"
	"tailscale.com/control/controlhttp/controlhttpserver"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// MinCapabilityVersion is the oldest client protocol version served
// (Tailscale v1.80). Older clients are told to upgrade.
const MinCapabilityVersion tailcfg.CapabilityVersion = 113

// maxBodyBytes caps register and map request bodies.
const maxBodyBytes = 1 << 20

// Config configures a Server. Store, NoiseKey and Tailnet are required.
type Config struct {
	Store    *store.Store       // durable node state; required
	NoiseKey key.MachinePrivate // the server's Noise key; see LoadOrCreateNoiseKey
	Tailnet  *schema.Tailnet    // the declared tailnet; required
	DERPMap  *tailcfg.DERPMap   // handed to clients; nil means DERP's map, or an empty one (no relays)
	// DERP is the embedded relay (see StartDERP) this server admits nodes
	// to: only registered, logged-in nodes with an unexpired key may
	// connect, and a node that loses that also loses its relay
	// connections. Nil means no embedded relay.
	DERP *DERP
	// ServerURL is the URL clients use, for SSH check callbacks; empty
	// means none is advertised.
	ServerURL string
	// Login runs interactive logins: a /machine/register without an auth
	// key gets a login URL from it, and the node registers as the user
	// who logged in (docs/login.md). Nil means interactive login is off:
	// such a register request is refused with an error that says to use
	// an auth key.
	Login *login.Manager
	// CertDNS publishes the ACME DNS-01 records nodes ask for with
	// /machine/set-dns when the tailnet has dns.https on (docs/https.md);
	// nil refuses set-dns, saying the server has no DNS configured.
	CertDNS ChallengePublisher

	// KeepAlive is how often an idle map stream gets a keep-alive; zero
	// means 50 s. Clients drop streams silent for 120 s.
	KeepAlive time.Duration
	// Timeouts bound idle and slow connections: the main listener's (see
	// HTTPServer) and the HTTP/2 connections over Noise. The zero value
	// means the defaults documented on Timeouts.
	Timeouts Timeouts
	// Limits bound what one node or machine may cost; the zero value
	// means the defaults documented on Limits.
	Limits Limits
	// RouterHealth configures the health checks of subnet routers and
	// the primaries' grace after a restart; the zero value means the
	// defaults documented on RouterHealth.
	RouterHealth RouterHealth

	// Fanout, when set, is handed the runtime state of a node streaming
	// to this server whenever it changes, for the other replicas (see
	// replicas.go). It is called on the owner goroutine and must not block.
	Fanout func(RuntimeState)

	// Logf logs server events; nil means log.Printf.
	Logf func(format string, args ...any)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Server is a coordination server. Its Handler serves clients; Prepare
// and Install swap in a new tailnet config at runtime.
//
// The mutable tailnet state is the world, owned by one goroutine (run).
// The world reads the Server's settings, which never change after New
// (but for its own DERP map, which SetDERPMap swaps atomically),
// and drives three parts that synchronize themselves: the store, the relay
// admission list and the propagation tracker. The one Server field it
// writes is published, through world.publish.
type Server struct {
	store     *store.Store
	noiseKey  key.MachinePrivate
	derpMap   *tailcfg.DERPMap
	derpBase  atomic.Pointer[tailcfg.DERPMap] // derpMap as SetDERPMap replaced it; nil: never (derpmapset.go)
	serverURL string
	login     *login.Manager     // nil: interactive login is off
	certDNS   ChallengePublisher // nil: set-dns refused
	keepAlive time.Duration
	timeouts  Timeouts
	relay     *relayAdmission // who may use the embedded DERP relay; kept current by the owner goroutine
	limits    Limits          // with defaults filled in
	health    RouterHealth    // with defaults filled in
	pings     pingTable       // outstanding router pings; see health.go
	logf      func(format string, args ...any)
	now       func() time.Time
	fanout    func(RuntimeState) // Config.Fanout; nil without replicas

	// primariesOut saves the primary-router elections; handed to by the
	// owner goroutine only (world.notePrimaries), closed by Close.
	primariesOut *primariesWriter

	// published is written by the owner goroutine, through world.publish
	// only, and read lock-free by handlers and sessions.
	published

	ops         chan func(*world) // run by the owner goroutine, in order
	stop        context.CancelFunc
	stopped     chan struct{}
	closeOne    sync.Once
	prop        propagation // Install's delivery to live sessions, started by the owner goroutine; see WaitPropagated
	counts      counters    // registrations and map sessions since start; see Stats (metrics.go)
	h2          *http2.Server
	connMu      sync.Mutex        // guards conns and connsClosed
	conns       map[net.Conn]bool // open Noise connections, closed by Close
	connsClosed bool              // Close closed conns: a new connection is closed at once, a new request refused
	connWG      sync.WaitGroup    // the goroutines serving conns (serveNoise) and their requests, waited for by Close
	mux         *http.ServeMux    // the public (pre-Noise) endpoints
	noiseMux    *http.ServeMux    // endpoints served over Noise

	h2Base *http.Server // per-request settings of h2, which serves HTTP/2 over Noise

	views  viewCache  // every node's current view, encoded once per change; see encode.go
	frames frameCache // small messages compressed once for every session sending them
	chunks chunkCache // runs of peer views compressed once for every message carrying them; see chunks.go
}

// published is the owner goroutine's state that other goroutines read
// without a round trip to it: registration reads the installed config (its
// auth keys), sessions the user profiles and the latest policy result.
// Sessions compute their node's policy view from that result before asking
// the owner for a full netmap, so the peer list is built on the session's
// goroutine (Result is safe for concurrent use and caches views) and the
// owner then finds it cached. Every value is immutable once published;
// world.publish is the one writer.
type published struct {
	tailnet   atomic.Pointer[schema.Tailnet]
	profiles  atomic.Pointer[map[tailcfg.UserID]tailcfg.UserProfile]
	policyRes atomic.Pointer[policy.Result]
	netmap    atomic.Pointer[netmapBase] // the config's part of every full netmap
}

// New loads node state from the store and starts the server's owner
// goroutine. Call Close to stop it.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Tailnet == nil || cfg.NoiseKey.IsZero() {
		return nil, errors.New("control: Config needs Store, Tailnet and NoiseKey")
	}
	s := &Server{
		store:     cfg.Store,
		noiseKey:  cfg.NoiseKey,
		derpMap:   cfg.DERPMap,
		serverURL: cfg.ServerURL,
		login:     cfg.Login,
		certDNS:   cfg.CertDNS,
		keepAlive: cfg.KeepAlive,
		timeouts:  cfg.Timeouts,
		limits:    cfg.Limits.withDefaults(),
		health:    cfg.RouterHealth.withDefaults(),
		logf:      cfg.Logf,
		now:       cfg.Now,
		fanout:    cfg.Fanout,
		ops:       make(chan func(*world), 64),
		stopped:   make(chan struct{}),
	}
	if s.logf == nil {
		s.logf = log.Printf
	}
	if s.keepAlive <= 0 {
		s.keepAlive = defaultKeepAlive
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.derpMap == nil && cfg.DERP != nil {
		s.derpMap = cfg.DERP.Map
	}
	if s.derpMap == nil {
		s.derpMap = &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{}}
	}
	s.h2, s.h2Base = s.timeouts.noiseServer()
	s.relay = newRelayAdmission(s.now)
	if cfg.DERP != nil {
		s.relay.revoke = cfg.DERP.disconnect
	}
	rows, err := s.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	savedPrimaries, err := s.store.PrimaryRoutes(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.Prepare(cfg.Tailnet)
	if err != nil {
		return nil, err
	}
	s.primariesOut = newPrimariesWriter(s.store, s.logf)
	w, err := newWorld(ctx, s, c, rows, primariesFromStore(savedPrimaries, s.logf)) // publishes the config
	if err != nil {
		s.primariesOut.close()
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /key", s.serveKey)
	s.mux.HandleFunc("POST /ts2021", s.serveNoiseUpgrade)
	s.mux.HandleFunc("GET /ts2021", s.serveNoiseUpgrade)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "tailplane coordination server: point Tailscale clients here with --login-server.")
	})
	s.noiseMux = http.NewServeMux()
	s.noiseMux.HandleFunc("POST /machine/register", s.serveRegister)
	s.noiseMux.HandleFunc("POST /machine/map", s.serveMap)
	s.noiseMux.HandleFunc("GET /machine/ssh/action/", s.serveSSHActionMalformed)
	s.noiseMux.HandleFunc("GET /machine/ssh/action/{src}/to/{dst}", s.serveSSHAction)
	s.noiseMux.HandleFunc("GET /machine/ssh/action/{src}/to/{dst}/check/{id}", s.serveSSHCheck)
	s.noiseMux.HandleFunc("HEAD /machine/ping/{token}", s.servePing)
	s.noiseMux.HandleFunc("POST /machine/set-dns", s.serveSetDNS)
	s.noiseMux.HandleFunc("POST /machine/feature/query", s.serveFeatureQuery)

	if cfg.DERP != nil {
		cfg.DERP.setAdmission(s.relay.check) // the world has filled s.relay
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.run(runCtx, w)
	return s, nil
}

// Handler returns the HTTP handler clients talk to (plain HTTP or HTTPS).
func (s *Server) Handler() http.Handler { return s.mux }

// Close stops the owner goroutine and ends every map session.
func (s *Server) Close() error {
	s.closeOne.Do(func() {
		s.stop()
		<-s.stopped
		s.primariesOut.close() // after the owner goroutine, the one that hands it outcomes
		s.connMu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.conns, s.connsClosed = nil, true
		s.connMu.Unlock()
		s.connWG.Wait()
	})
	return nil
}

// run is the owner goroutine: the only code that mutates the world.
func (s *Server) run(ctx context.Context, w *world) {
	defer close(s.stopped)
	reap := time.NewTicker(reapInterval(w.settings))
	defer reap.Stop()
	healthCheck, graceEnd, stopHealth := s.healthTicks()
	defer stopHealth()
	for {
		select {
		case op := <-s.ops:
			op(w)
		case <-reap.C:
			s.runOp(w, "periodic sweep", func(w *world) error {
				w.reapEphemeral(ctx, s.now())
				w.expireKeys(s.now())
				return nil
			})
			reap.Reset(reapInterval(w.settings))
		case <-healthCheck:
			s.runOp(w, "router health check", func(w *world) error { w.checkRouters(); return nil })
		case <-graceEnd:
			s.runOp(w, "end of the restart grace", func(w *world) error { w.endGrace(); return nil })
		case <-ctx.Done():
			for _, n := range w.live {
				n.sess.close("server shutting down")
			}
			return
		}
	}
}

// reapInterval is how often ephemeral nodes are checked for inactivity,
// under settings s (defaults filled in).
func reapInterval(s schema.Settings) time.Duration {
	d := s.EphemeralTimeout / 4
	return min(max(d, 250*time.Millisecond), 30*time.Second)
}

// errServerClosed is returned by operations after Close.
var errServerClosed = errors.New("control: server is shut down")

// do runs f on the owner goroutine and waits for its result. A panic in f
// fails f alone (see runOp); the server keeps serving.
func (s *Server) do(ctx context.Context, f func(*world) error) error {
	done := make(chan error, 1)
	select {
	case s.ops <- func(w *world) { done <- s.runOp(w, "operation", f) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return errServerClosed
	}
	select {
	case err := <-done:
		return err
	case <-s.stopped:
		return errServerClosed
	}
}

// errInternal is what an operation that panicked returns. The panic value
// stays in the server log: it may describe internal state that a client
// should not see.
var errInternal = errors.New("control: internal error; the request was abandoned and the server log has the details")

// runOp runs f on the owner goroutine, turning a panic into errInternal.
// The panic and its stack go to the log. Every node waits behind the owner
// goroutine, so a bug in one operation must not end the process. Whatever
// f changed before it panicked stays changed: the world may then be
// inconsistent for the nodes f touched, until their next change.
func (s *Server) runOp(w *world, what string, f func(*world) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logf("control: BUG: %s panicked on the owner goroutine, abandoned it and kept serving: %v\n%s", what, p, debug.Stack())
			err = errInternal
		}
	}()
	return f(w)
}

// serveKey answers GET /key?v=N with the server's Noise public key.
func (s *Server) serveKey(w http.ResponseWriter, r *http.Request) {
	if v := r.URL.Query().Get("v"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "bad v parameter: want the client's capability version", http.StatusBadRequest)
			return
		}
		if tailcfg.CapabilityVersion(n) < MinCapabilityVersion {
			http.Error(w, tooOldMessage(tailcfg.CapabilityVersion(n)), http.StatusBadRequest)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tailcfg.OverTLSPublicKeyResponse{PublicKey: s.noiseKey.Public()})
}

func tooOldMessage(v tailcfg.CapabilityVersion) string {
	return fmt.Sprintf("this Tailscale client is too old (capability version %d); tailplane needs Tailscale v1.80 or newer (capability version %d): please upgrade the client", v, MinCapabilityVersion)
}

// machineKeyCtx carries the Noise peer's machine key into request contexts.
type machineKeyCtx struct{}

// serveNoiseUpgrade upgrades the connection to Noise and serves HTTP/2
// over it; every request on it is bound to the peer's machine key.
func (s *Server) serveNoiseUpgrade(w http.ResponseWriter, r *http.Request) {
	conn, err := controlhttpserver.AcceptHTTP(r.Context(), w, r, s.noiseKey, nil)
	if err != nil {
		s.logf("control: noise upgrade from %s failed: %v", r.RemoteAddr, err)
		return
	}
	s.connMu.Lock()
	if s.connsClosed {
		s.connMu.Unlock()
		conn.Close()
		return
	}
	if s.conns == nil {
		s.conns = map[net.Conn]bool{}
	}
	s.conns[conn] = true
	s.connWG.Add(1)
	s.connMu.Unlock()
	// The connection is served on a goroutine of its own so that this
	// handler returns: net/http keeps the hijacked HTTP/1 connection's
	// buffers (about 11 KB) until it does, for as long as the node stays.
	go s.serveNoise(conn)
}

// serveNoise serves HTTP/2 over conn, an upgraded Noise connection listed
// in s.conns, until it ends or Close closes it.
func (s *Server) serveNoise(conn *controlbase.Conn) {
	defer s.connWG.Done()
	defer func() {
		s.connMu.Lock()
		delete(s.conns, conn)
		s.connMu.Unlock()
		conn.Close()
	}()
	mkey := conn.Peer()
	ctx := context.WithValue(context.Background(), machineKeyCtx{}, mkey)
	s.h2.ServeConn(conn, &http2.ServeConnOpts{
		Context:    ctx,
		Handler:    http.HandlerFunc(s.serveNoiseRequest),
		BaseConfig: s.h2Base,
	})
}

// serveNoiseRequest serves one request over Noise, counted in connWG:
// HTTP/2 ends a connection without waiting for its handlers (it cancels
// their contexts), and Close waits for them too.
func (s *Server) serveNoiseRequest(w http.ResponseWriter, r *http.Request) {
	s.connMu.Lock()
	if s.connsClosed {
		s.connMu.Unlock()
		http.Error(w, "the server is shutting down", http.StatusServiceUnavailable)
		return
	}
	s.connWG.Add(1)
	s.connMu.Unlock()
	defer s.connWG.Done()
	s.noiseMux.ServeHTTP(w, r)
}

func machineKeyOf(r *http.Request) key.MachinePublic {
	k, _ := r.Context().Value(machineKeyCtx{}).(key.MachinePublic)
	return k
}

// readJSON decodes a size-capped JSON request body.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body is larger than %d bytes", maxBodyBytes)
		}
		return fmt.Errorf("request body is not valid JSON: %v", err)
	}
	return nil
}
