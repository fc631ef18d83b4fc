package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/tailplane/tailplane/control"
	"tailscale.com/tailcfg"
)

// The nodes, users and audit endpoints (docs/operations.md):
//
//	GET    /api/v1/nodes?user=&tag=&online=&expired=&pending=  []control.NodeInfo, by ID
//	GET    /api/v1/nodes/{id}                                  control.NodeInfo
//	POST   /api/v1/nodes/{id}/expire                           (admin) the node after
//	DELETE /api/v1/nodes/{id}                                  (admin) the node as it was
//	POST   /api/v1/nodes/{id}/rename  {"name": "web-2"}        (admin) the node after
//	POST   /api/v1/nodes/{id}/approve                          (admin) the node after
//	POST   /api/v1/nodes/{id}/reject                           (admin) the node as it was
//	GET    /api/v1/users                                       []User, by login
//	GET    /api/v1/audit?limit=N                               []AuditEntry, newest first (default 100)
//
// Every call of a state-changing endpoint that passes the role check is
// recorded in the audit log, with its outcome, whether it succeeded or not.

// routeNodes adds the nodes, users and audit endpoints to mux.
func (a *api) routeNodes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/audit", a.auth(RoleRead, a.audit))
	if a.cfg.Control == nil {
		return
	}
	mux.Handle("GET /api/v1/nodes", a.auth(RoleRead, a.listNodes))
	mux.Handle("GET /api/v1/nodes/{id}", a.auth(RoleRead, a.showNode))
	mux.Handle("POST /api/v1/nodes/{id}/expire", a.auth(RoleAdmin, a.nodeAction("expire", a.cfg.Control.ExpireNode)))
	mux.Handle("DELETE /api/v1/nodes/{id}", a.auth(RoleAdmin, a.nodeAction("delete", a.cfg.Control.DeleteNode)))
	mux.Handle("POST /api/v1/nodes/{id}/approve", a.auth(RoleAdmin, a.nodeAction("approve", a.cfg.Control.ApproveNode)))
	mux.Handle("POST /api/v1/nodes/{id}/reject", a.auth(RoleAdmin, a.nodeAction("reject", a.cfg.Control.RejectNode)))
	mux.Handle("POST /api/v1/nodes/{id}/rename", a.auth(RoleAdmin, a.renameNode))
	mux.Handle("GET /api/v1/users", a.auth(RoleRead, a.users))
}

// nodeFilter is the query of GET /api/v1/nodes; a nil bool matches both.
type nodeFilter struct {
	user, tag                string
	online, expired, pending *bool
}

func parseNodeFilter(r *http.Request) (nodeFilter, error) {
	q := r.URL.Query()
	f := nodeFilter{user: q.Get("user"), tag: q.Get("tag")}
	for name, dst := range map[string]**bool{"online": &f.online, "expired": &f.expired, "pending": &f.pending} {
		s := q.Get(name)
		if s == "" {
			continue
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			return f, fmt.Errorf("filter %s=%q: want true or false", name, s)
		}
		*dst = &b
	}
	return f, nil
}

func (f nodeFilter) match(n control.NodeInfo) bool {
	is := func(want *bool, got bool) bool { return want == nil || *want == got }
	return (f.user == "" || n.User == f.user) && (f.tag == "" || slices.Contains(n.Tags, f.tag)) &&
		is(f.online, n.Online) && is(f.expired, n.Expired) && is(f.pending, n.PendingApproval)
}

func (a *api) listNodes(w http.ResponseWriter, r *http.Request) {
	f, err := parseNodeFilter(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	nodes, err := a.cfg.Control.Nodes(r.Context())
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "listing nodes: "+err.Error())
		return
	}
	out := []control.NodeInfo{}
	for _, n := range nodes {
		if f.match(n) {
			out = append(out, n)
		}
	}
	writeJSON(w, out)
}

// nodeID parses the {id} of a nodes path.
func nodeID(r *http.Request) (tailcfg.NodeID, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("node id %q is not a node ID (hint: the numeric id of GET /api/v1/nodes)", r.PathValue("id"))
	}
	return tailcfg.NodeID(id), nil
}

func (a *api) showNode(w http.ResponseWriter, r *http.Request) {
	id, err := nodeID(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := a.cfg.Control.Node(r.Context(), id)
	if err != nil {
		nodeError(w, err)
		return
	}
	writeJSON(w, n)
}

// nodeAction serves a node action without a body: it runs act on the
// node, records the call as "verb node NAME (ID)" and answers the node act
// returns.
func (a *api) nodeAction(verb string, act func(ctx context.Context, id tailcfg.NodeID) (control.NodeInfo, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := nodeID(r)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		a.finishNodeAction(w, r, id, verb, "", func() (control.NodeInfo, error) { return act(r.Context(), id) })
	}
}

func (a *api) renameNode(w http.ResponseWriter, r *http.Request) {
	id, err := nodeID(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var body struct {
		Name string `json:"name"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Name == "" {
		httpError(w, http.StatusBadRequest, `the body must be {"name": "<new MagicDNS name>"}`)
		return
	}
	a.finishNodeAction(w, r, id, "rename", " to "+strconv.Quote(body.Name), func() (control.NodeInfo, error) {
		return a.cfg.Control.RenameNode(r.Context(), id, body.Name)
	})
}

// finishNodeAction runs act on node id, records the call in the audit log
// ("verb node NAME (ID)" plus detail) with its outcome, and answers.
func (a *api) finishNodeAction(w http.ResponseWriter, r *http.Request, id tailcfg.NodeID, verb, detail string, act func() (control.NodeInfo, error)) {
	n, err, aerr := AuditedNodeAction(r.Context(), a.cfg.Control, a.cfg.Store, a.cfg.Metrics, "apikey:"+keyNameOf(r), id, verb, detail,
		func(context.Context) (control.NodeInfo, error) { return act() })
	if aerr != nil {
		httpError(w, http.StatusInternalServerError, aerr.Error())
		return
	}
	if err != nil {
		nodeError(w, err)
		return
	}
	writeJSON(w, n)
}

// nodeError answers a node action's error with its status.
func nodeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, control.ErrNodeNotFound):
		httpError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, control.ErrNotPending), errors.Is(err, control.ErrNameTaken):
		httpError(w, http.StatusConflict, err.Error())
	case errors.Is(err, control.ErrInvalidName):
		httpError(w, http.StatusBadRequest, err.Error())
	default:
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

// recorded adds the call r made, what, with the outcome err to the audit
// log. When the log refuses the entry it answers 500 (the action itself
// may have happened) and returns false.
func (a *api) recorded(w http.ResponseWriter, r *http.Request, what string, err error) bool {
	if aerr := Audit(r.Context(), a.cfg.Store, a.cfg.Metrics, "apikey:"+keyNameOf(r), what, err); aerr != nil {
		httpError(w, http.StatusInternalServerError, aerr.Error())
		return false
	}
	return true
}

// User is one entry of GET /api/v1/users: a declared user and its nodes.
type User struct {
	Login   string `json:"login"`
	Name    string `json:"name,omitempty"`
	Role    string `json:"role"`    // owner, admin or member
	Devices int    `json:"devices"` // registered nodes it owns, logged out ones included
	Online  int    `json:"online"`  // of those, the ones with a live map session
}

func (a *api) users(w http.ResponseWriter, r *http.Request) {
	nodes, err := a.cfg.Control.Nodes(r.Context())
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "listing nodes: "+err.Error())
		return
	}
	byLogin := map[string]*User{}
	out := []User{}
	for login, u := range a.cfg.Served().Users {
		role := string(u.Role)
		if role == "" {
			role = "member"
		}
		out = append(out, User{Login: login, Name: u.Name, Role: role})
	}
	slices.SortFunc(out, func(x, y User) int { return cmp.Compare(x.Login, y.Login) })
	for i := range out {
		byLogin[out[i].Login] = &out[i]
	}
	for _, n := range nodes {
		if u := byLogin[n.User]; u != nil && n.User != "" {
			u.Devices++
			if n.Online {
				u.Online++
			}
		}
	}
	writeJSON(w, out)
}

// AuditEntry is one entry of GET /api/v1/audit.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Who    string    `json:"who"`    // "apikey:NAME"
	What   string    `json:"what"`   // "delete node web1 (3)"
	Result string    `json:"result"` // "ok", or why it failed
}

func (a *api) audit(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 100)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	entries, err := a.cfg.Store.AuditEntries(r.Context(), limit)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]AuditEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, AuditEntry{ID: e.ID, At: e.At, Who: e.Who, What: e.What, Result: e.Result})
	}
	writeJSON(w, out)
}
