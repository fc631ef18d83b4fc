// Package admin serves tailplane's admin HTTP API (sync status, revision history, applied state, metrics and the push webhook), guarded by the declared apiKeys.
//
// Endpoints (all JSON unless noted):
//
//	GET  /api/v1/status              Status: applied and attempted revision, source, nodes
//	GET  /api/v1/revisions?limit=N   []reconcile.Revision, newest first (default 20)
//	GET  /api/v1/revisions/{id}/plan the JSON plan that revision applied (docs/plan.md)
//	GET  /api/v1/applied             Applied: the applied objects and registered nodes (secret hashes masked unless admin)
//	POST /api/v1/sync                poll the source now and retry a failed revision (admin)
//	GET  /api/v1/logins              []Login: the open interactive logins
//	POST /api/v1/logins/{id}/approve {"user": LOGIN}: register the login's device as that declared user (admin)
//	POST /api/v1/webhook             push webhook, HMAC-signed (no API key)
//	GET  /metrics                    Prometheus text format
//	GET  /api/v1/replicas            replica.Status: every replica on the PostgreSQL database (replicas.go)
//	/api/v2/...                      a subset of Tailscale's API v2 (v2.go, docs/api-v2.md)
//	/api/v1/nodes, /users, /audit    the node inventory, its actions and the audit log (nodes.go)
//
// Every endpoint but the webhook needs "Authorization: Bearer <api key>"
// where the key's "sha256:"+hex(sha256(key)) is a secretHash declared under
// apiKeys in the served config (Config.Served: the coordination server's,
// the only copy). Role "read" may GET; role "admin" may also
// POST (and DELETE). Errors are application/problem+json (Problem). Every
// state change made through the API is recorded in the audit log, who
// being "apikey:NAME". With no apiKeys applied, the API refuses every request, except
// that GET /api/v1/status is open until the first revision is applied
// (no key can exist yet, and the operator needs to see why).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/replica"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

// Config configures the admin API. Pipeline, Served and Store are
// required.
type Config struct {
	Pipeline *pipeline.Pipeline // the sync pipeline: status, metrics, sync
	// Served returns the tailnet being served (control.Server.Tailnet):
	// its apiKeys guard the API, so a key works exactly while the config
	// that declares it is served.
	Served func() *schema.Tailnet
	Store  *store.Store // the server's database, for history and applied state

	// Nodes counts registered nodes and those with a live map session.
	// Nil: node counts are reported as zero.
	Nodes func(ctx context.Context) (online, total int, err error)
	// Metrics holds the counted metrics (propagation histogram, audit
	// actions) and the Go and process collectors; see NewMetrics. Nil:
	// Handler makes its own, which sees no propagation or audit events.
	Metrics *Metrics
	// Stats reads the coordination server's counts for /metrics
	// (control.Server.Stats). Nil: registrations, map sessions and nodes
	// by user and tag are left out.
	Stats func(ctx context.Context) (control.Stats, error)
	// PendingApprovals counts the nodes waiting for device approval, for
	// /metrics. Nil: Control's pending nodes, or 0 without Control.
	PendingApprovals func(ctx context.Context) (int, error)
	// Control is the coordination server: the nodes and users endpoints
	// list and act on its nodes (docs/operations.md). Nil: those endpoints
	// are not served.
	Control *control.Server
	// Replicas reports the replicas on the server's PostgreSQL database
	// (replica.Replica.Status). Nil: a single server, without replicas.
	Replicas func(ctx context.Context) (*replica.Status, error)
	// WebhookSecret is the HMAC secret push webhooks are signed with.
	// Empty: the webhook endpoint is off and answers 403 to every request.
	WebhookSecret []byte
	// Logins is the interactive login manager whose open logins
	// /api/v1/logins lists and approves. Nil: those endpoints answer 404.
	Logins *login.Manager
}

// Roles of API keys.
const (
	RoleRead  = "read"
	RoleAdmin = "admin"
)

// Handler returns the admin API's handler. Mount it at the server's root:
// it answers /api/v1/... and /metrics only.
func Handler(cfg Config) http.Handler {
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.PendingApprovals == nil && cfg.Control != nil {
		cfg.PendingApprovals = pendingApprovals(cfg.Control)
	}
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/status", a.bootstrapOpen(a.auth(RoleRead, a.status), a.status))
	mux.Handle("GET /api/v1/revisions", a.auth(RoleRead, a.revisions))
	mux.Handle("GET /api/v1/revisions/{id}/plan", a.auth(RoleRead, a.revisionPlan))
	mux.Handle("GET /api/v1/revisions/refused", a.auth(RoleRead, a.refused))
	mux.Handle("GET /api/v1/applied", a.auth(RoleRead, a.applied))
	mux.Handle("POST /api/v1/sync", a.auth(RoleAdmin, a.sync))
	mux.Handle("GET /api/v1/logins", a.auth(RoleRead, a.logins))
	mux.Handle("POST /api/v1/logins/{id}/approve", a.auth(RoleAdmin, a.approveLogin))
	mux.Handle("/api/v1/webhook", gitsync.WebhookHandler(cfg.WebhookSecret, cfg.Pipeline.Sync))
	mux.Handle("GET /metrics", a.auth(RoleRead, a.metrics))
	mux.Handle("GET /api/v1/replicas", a.auth(RoleRead, a.replicas))
	a.v2(mux) // Tailscale's API v2 subset, for existing tools (v2.go)
	a.routeNodes(mux)
	return mux
}

type api struct{ cfg Config }

// auth wraps h so it runs only for a bearer token of an applied API key
// whose role allows need.
func (a *api) auth(need string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" { // the scheme is case-insensitive (RFC 9110)
			w.Header().Set("WWW-Authenticate", `Bearer realm="tailplane"`)
			httpError(w, http.StatusUnauthorized, "missing API key (hint: send Authorization: Bearer <key>; the CLI reads it from $TAILPLANE_API_KEY or --api-key-file)")
			return
		}
		name, role := a.key(token)
		switch {
		case role == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="tailplane", error="invalid_token"`)
			httpError(w, http.StatusUnauthorized, "unknown API key (hint: its sha256 must be a secretHash under apiKeys in the applied config)")
		case need == RoleAdmin && role != RoleAdmin:
			httpError(w, http.StatusForbidden, "this API key has role "+role+"; this request needs role admin")
		default:
			ctx := context.WithValue(r.Context(), roleKey{}, role)
			h(w, r.WithContext(context.WithValue(ctx, keyNameKey{}, name)))
		}
	})
}

// roleKey is the request context key auth stores the caller's role under.
type roleKey struct{}

// keyNameKey is the request context key auth stores the caller's API key
// name under, for the audit log.
type keyNameKey struct{}

// keyNameOf returns the name of the API key r was authenticated with.
func keyNameOf(r *http.Request) string {
	name, _ := r.Context().Value(keyNameKey{}).(string)
	return name
}

// roleOf returns the role of the API key r was authenticated with, or ""
// when it was not (the open bootstrap status).
func roleOf(r *http.Request) string {
	role, _ := r.Context().Value(roleKey{}).(string)
	return role
}

// bootstrapOpen serves open instead of authed while no revision was ever
// applied: no API key can exist yet, and an operator must be able to see
// why (say, the remote is unreachable). Only the status is open, and only
// until the first apply.
func (a *api) bootstrapOpen(authed http.Handler, open http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.Pipeline.Status().Serving {
			open(w, r)
			return
		}
		authed.ServeHTTP(w, r)
	})
}

// key returns the name and role of the applied API key token is, or "".
func (a *api) key(token string) (name, role string) { return LookupAPIKey(a.cfg.Served(), token) }

// Status is the answer of GET /api/v1/status.
type Status struct {
	// Serving is false only before the first revision was ever applied.
	Serving bool `json:"serving"`
	// Applied is the revision being served; nil before the first.
	Applied *reconcile.Revision `json:"applied,omitempty"`
	// Attempted is the last revision tried, with its problems when it
	// failed; nil before the first.
	Attempted *pipeline.Attempt `json:"attempted,omitempty"`
	// Applying is the revision being processed right now; nil when idle.
	Applying *reconcile.Revision `json:"applying,omitempty"`
	// NextRetry is when a retry-later failure is retried; zero if none.
	NextRetry time.Time `json:"nextRetry,omitzero"`
	// Failures counts consecutive retry-later failures of the pipeline.
	Failures int          `json:"failures"`
	Source   SourceStatus `json:"source"`
	Nodes    NodeCounts   `json:"nodes"`
	// Replicas lists the replicas sharing the server's PostgreSQL
	// database; nil for a single server (GET /api/v1/replicas).
	Replicas *replica.Status `json:"replicas,omitempty"`
}

// SourceStatus is the Git remote's or directory's health.
type SourceStatus struct {
	URL      string    `json:"url"`
	Branch   string    `json:"branch,omitempty"`
	Path     string    `json:"path,omitempty"`
	Head     string    `json:"head,omitempty"`
	LastSync time.Time `json:"lastSync,omitzero"` // last successful check
	LastTry  time.Time `json:"lastAttempt,omitzero"`
	NextPoll time.Time `json:"nextPoll,omitzero"`
	Failures int       `json:"failures"`
	Error    string    `json:"error,omitempty"`
	// ErrorClass is "retry later" or "needs a new commit".
	ErrorClass string `json:"errorClass,omitempty"`
}

// NodeCounts counts registered nodes.
type NodeCounts struct {
	Online int `json:"online"`
	Total  int `json:"total"`
}

// Applied is the answer of GET /api/v1/applied: what `tailplane plan
// --server` diffs a working tree against.
type Applied struct {
	Objects []reconcile.Object `json:"objects"`
	Nodes   []reconcile.Node   `json:"nodes"`
	// SecretsMasked is true when the secretHash values of authKey and
	// apiKey objects are shortened as plans show them
	// (reconcile.MaskSecrets): always for a read-role key; an admin key
	// gets them whole. A client diffing a working tree against masked
	// objects masks its own first.
	SecretsMasked bool `json:"secretsMasked,omitempty"`
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	ls := a.cfg.Pipeline.Status()
	src := ls.Source
	st := Status{
		Serving: ls.Serving, Applied: ls.Applied, Attempted: ls.Attempted, Applying: ls.Applying,
		NextRetry: ls.NextRetry, Failures: ls.Failures,
		Source: SourceStatus{
			URL: src.Source, Branch: src.Branch, Path: src.Path, Head: src.Head,
			LastSync: src.LastSuccess, LastTry: src.LastAttempt, NextPoll: src.NextPoll, Failures: src.Failures,
		},
	}
	if src.Err != nil {
		st.Source.Error = src.Err.Error()
		st.Source.ErrorClass = gitsync.KindOf(src.Err).String()
	}
	if a.cfg.Nodes != nil {
		on, total, err := a.cfg.Nodes(r.Context())
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, "counting nodes: "+err.Error())
			return
		}
		st.Nodes = NodeCounts{Online: on, Total: total}
	}
	if a.cfg.Replicas != nil {
		rs, err := a.cfg.Replicas(r.Context())
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, "reading the replicas: "+err.Error())
			return
		}
		st.Replicas = rs
	}
	writeJSON(w, st)
}

// queryLimit is r's ?limit=N: def when absent, 0 meaning all.
func queryLimit(r *http.Request, def int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errors.New("limit must be a number ≥ 0 (0: all)")
	}
	return n, nil
}

func (a *api) revisions(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 20)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	revs, err := a.cfg.Store.Revisions(r.Context(), limit)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if revs == nil {
		revs = []reconcile.Revision{}
	}
	writeJSON(w, revs)
}

// refused lists the revisions the pipeline tried and did not apply,
// newest first, with their errors (?limit=N, default 20, 0 for all kept).
func (a *api) refused(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 20)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	refused, err := a.cfg.Pipeline.Refused(r.Context(), limit)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if refused == nil {
		refused = []pipeline.Attempt{}
	}
	writeJSON(w, refused)
}

func (a *api) revisionPlan(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "revision id must be a number (see GET /api/v1/revisions)")
		return
	}
	plan, err := a.cfg.Store.RevisionPlan(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		httpError(w, http.StatusNotFound, "no revision "+r.PathValue("id"))
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(plan)
}

func (a *api) applied(w http.ResponseWriter, r *http.Request) {
	objs, nodes, err := reconcile.ReadStore(r.Context(), a.cfg.Store)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if objs == nil {
		objs = []reconcile.Object{}
	}
	if nodes == nil {
		nodes = []reconcile.Node{}
	}
	masked := roleOf(r) != RoleAdmin
	if masked {
		objs = reconcile.MaskSecrets(objs)
	}
	// Not indented: object values are canonical JSON, compared byte for
	// byte by reconcile.Diff.
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Applied{Objects: objs, Nodes: nodes, SecretsMasked: masked})
}

func (a *api) sync(w http.ResponseWriter, r *http.Request) {
	a.cfg.Pipeline.Sync()
	if a.recorded(w, r, "sync now", nil) {
		w.WriteHeader(http.StatusAccepted)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Problem is the body of every error answer, an RFC 9457 problem
// (application/problem+json). Error repeats Detail for clients of older
// tailplane versions, which read only it.
type Problem struct {
	Type   string `json:"type"`   // always "about:blank": the status says it all
	Title  string `json:"title"`  // the status text
	Status int    `json:"status"` // the HTTP status
	Detail string `json:"detail"` // what went wrong, with a hint
	Error  string `json:"error"`  // = Detail
}

// httpError answers with a Problem.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(Problem{Type: "about:blank", Title: http.StatusText(code), Status: code, Detail: msg, Error: msg})
}
