package console

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/control"
)

// pageData is what every page template gets.
type pageData struct {
	Title  string
	Active string  // the nav entry to highlight
	V      *Viewer // nil on the sign-in and error pages
	D      any     // the page's own data
}

var funcs = template.FuncMap{
	"ago":   ago,
	"id":    func(id tailcfg.NodeID) int64 { return int64(id) },
	"stamp": stamp,
	"join":  joinAny,
	"short": func(s string) string {
		if h, ok := strings.CutPrefix(s, "dir:sha256:"); ok && len(h) > 10 {
			return "dir:" + h[:10]
		}
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"firstLine": func(s string) string { l, _, _ := strings.Cut(s, "\n"); return l },
}

// parseTemplates parses each page with the layout.
func parseTemplates() map[string]*template.Template {
	pages, _ := templateFS.ReadDir("templates")
	out := map[string]*template.Template{}
	for _, p := range pages {
		if p.Name() == "layout.html" {
			continue
		}
		out[p.Name()] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p.Name()))
	}
	return out
}

// render writes page name with data d, for the viewer of r if any.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, d any) {
	title, active, _ := strings.Cut(strings.TrimSuffix(name, ".html"), "_")
	if active == "" {
		active = title
	}
	var buf bytes.Buffer
	err := c.tmpl[name].Execute(&buf, pageData{Title: pageTitles[title], Active: active, V: viewerOf(r), D: d})
	if err != nil {
		c.logf("console: rendering %s: %v", name, err)
		http.Error(w, "rendering the page failed; the server log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

var pageTitles = map[string]string{
	"signin": "Sign in", "nodes": "Nodes", "node": "Node", "users": "Users", "revisions": "Revisions",
	"revision": "Revision", "audit": "Audit log", "policy": "Policy explorer", "problem": "Problem",
}

// problemData is the error page's data.
type problemData struct {
	Status                 int
	Heading, Message, Hint string
}

// problem answers with the error page.
func (c *Console) problem(w http.ResponseWriter, r *http.Request, status int, heading, msg, hint string) {
	c.render(w, r, status, "problem.html", problemData{Status: status, Heading: heading, Message: msg, Hint: hint})
}

// forbidden answers a viewer whose role does not allow what it asked.
func (c *Console) forbidden(w http.ResponseWriter, r *http.Request, what string) {
	c.problem(w, r, http.StatusForbidden, "Not allowed",
		fmt.Sprintf("Your role (%s) does not allow %s.", viewerOf(r).Role, what),
		"Ask an owner or admin, or sign in with an admin API key.")
}

// visibleNodes lists the nodes the viewer may see: all of them, or a
// member's own.
func (c *Console) visibleNodes(ctx context.Context, v *Viewer) ([]control.NodeInfo, error) {
	nodes, err := c.cfg.Control.Nodes(ctx)
	if err != nil || v.SeesAll() {
		return nodes, err
	}
	return slices.DeleteFunc(nodes, func(n control.NodeInfo) bool { return n.User != v.Login }), nil
}

// matches reports whether n matches the search q: every word of q is in
// its name, hostname, owner, tags, addresses, OS or states.
func matches(n control.NodeInfo, q string) bool {
	hay := strings.ToLower(strings.Join([]string{n.Name, n.FQDN, n.Hostname, n.User, strings.Join(n.Tags, " "),
		joinAny(" ", n.Addresses), n.OS, n.ClientVersion, strings.Join(states(n), " ")}, " "))
	for _, w := range strings.Fields(strings.ToLower(q)) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

// states are a node's state words, as the nodes page shows them.
func states(n control.NodeInfo) []string {
	var s []string
	if n.Online {
		s = append(s, "online")
	} else {
		s = append(s, "offline")
	}
	for _, f := range []struct {
		on   bool
		word string
	}{{n.Expired, "expired"}, {n.PendingApproval, "pending"}, {n.LoggedOut, "logged-out"}, {n.Ephemeral, "ephemeral"}} {
		if f.on {
			s = append(s, f.word)
		}
	}
	return s
}

// nodeRow is a node with its state words.
type nodeRow struct {
	control.NodeInfo
	States []string
}

func rows(nodes []control.NodeInfo) []nodeRow {
	out := make([]nodeRow, len(nodes))
	for i, n := range nodes {
		out[i] = nodeRow{n, states(n)}
	}
	return out
}

func (c *Console) nodesPage(w http.ResponseWriter, r *http.Request) {
	nodes, err := c.visibleNodes(r.Context(), viewerOf(r))
	if err != nil {
		c.problem(w, r, http.StatusServiceUnavailable, "Nodes unavailable", err.Error(), "The coordination server may be shutting down.")
		return
	}
	q := r.URL.Query().Get("q")
	nodes = slices.DeleteFunc(nodes, func(n control.NodeInfo) bool { return !matches(n, q) })
	c.render(w, r, http.StatusOK, "nodes.html", map[string]any{"Q": q, "Nodes": rows(nodes), "Did": didText[r.URL.Query().Get("did")]})
}

// viewedNode is node {id} of r when the viewer may see it; otherwise it
// answers and returns false.
func (c *Console) viewedNode(w http.ResponseWriter, r *http.Request, raw string) (control.NodeInfo, bool) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		c.problem(w, r, http.StatusBadRequest, "No such node", fmt.Sprintf("%q is not a node ID.", raw), "Pick a node on the nodes page.")
		return control.NodeInfo{}, false
	}
	n, err := c.cfg.Control.Node(r.Context(), tailcfg.NodeID(id))
	if v := viewerOf(r); err == nil && !v.SeesAll() && n.User != v.Login {
		err = fmt.Errorf("node %d: %w", id, control.ErrNodeNotFound) // a member's view: not there
	}
	if err != nil {
		c.nodeError(w, r, err)
		return control.NodeInfo{}, false
	}
	return n, true
}

func (c *Console) nodePage(w http.ResponseWriter, r *http.Request) {
	n, ok := c.viewedNode(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "node.html", map[string]any{"N": nodeRow{n, states(n)}, "Did": didText[r.URL.Query().Get("did")]})
}

// didText says what an action did, on the page it goes back to.
var didText = map[string]string{
	"expire":  "The node's key was expired: it must log in again.",
	"delete":  "The node was deleted.",
	"approve": "The node was approved.",
	"reject":  "The node was rejected and removed.",
	"rename":  "The node was renamed.",
}

// nodeActions are the actions of the node page, by the path's {action}.
var nodeActions = map[string]func(*control.Server, context.Context, tailcfg.NodeID, string) (control.NodeInfo, error){
	"expire": func(s *control.Server, ctx context.Context, id tailcfg.NodeID, _ string) (control.NodeInfo, error) {
		return s.ExpireNode(ctx, id)
	},
	"delete": func(s *control.Server, ctx context.Context, id tailcfg.NodeID, _ string) (control.NodeInfo, error) {
		return s.DeleteNode(ctx, id)
	},
	"approve": func(s *control.Server, ctx context.Context, id tailcfg.NodeID, _ string) (control.NodeInfo, error) {
		return s.ApproveNode(ctx, id)
	},
	"reject": func(s *control.Server, ctx context.Context, id tailcfg.NodeID, _ string) (control.NodeInfo, error) {
		return s.RejectNode(ctx, id)
	},
	"rename": func(s *control.Server, ctx context.Context, id tailcfg.NodeID, name string) (control.NodeInfo, error) {
		return s.RenameNode(ctx, id, name)
	},
}

// nodeAction runs a node action for an owner, admin or admin key, audited
// as the API's are, and goes back to the node (or the list, when the node
// is gone).
func (c *Console) nodeAction(w http.ResponseWriter, r *http.Request) {
	verb := r.PathValue("action")
	act := nodeActions[verb]
	v := viewerOf(r)
	switch {
	case act == nil:
		c.problem(w, r, http.StatusNotFound, "No such action", fmt.Sprintf("%q is not a node action.", verb), "Use the buttons on the node's page.")
		return
	case !v.CanAct():
		c.forbidden(w, r, "node actions")
		return
	}
	n, ok := c.viewedNode(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	name, detail := strings.TrimSpace(r.PostFormValue("name")), ""
	if verb == "rename" {
		detail = " to " + strconv.Quote(name)
	}
	_, err, aerr := admin.AuditedNodeAction(r.Context(), c.cfg.Control, c.cfg.Store, c.cfg.Metrics, v.Who, n.ID, verb, detail,
		func(ctx context.Context) (control.NodeInfo, error) { return act(c.cfg.Control, ctx, n.ID, name) })
	switch {
	case aerr != nil:
		c.problem(w, r, http.StatusInternalServerError, "Not recorded", aerr.Error(), "Check the server's database; the action may have happened.")
	case err != nil:
		c.nodeError(w, r, err)
	case verb == "delete" || verb == "reject":
		http.Redirect(w, r, "/admin/nodes?did="+verb, http.StatusSeeOther)
	default:
		http.Redirect(w, r, fmt.Sprintf("/admin/nodes/%d?did=%s", n.ID, verb), http.StatusSeeOther)
	}
}

// nodeError answers a node action's error with its status, as the API.
func (c *Console) nodeError(w http.ResponseWriter, r *http.Request, err error) {
	status, heading := http.StatusInternalServerError, "Action failed"
	switch {
	case errors.Is(err, control.ErrNodeNotFound):
		status, heading = http.StatusNotFound, "No such node"
	case errors.Is(err, control.ErrNotPending), errors.Is(err, control.ErrNameTaken):
		status, heading = http.StatusConflict, "Not possible now"
	case errors.Is(err, control.ErrInvalidName):
		status, heading = http.StatusBadRequest, "Not a valid name"
	}
	c.problem(w, r, status, heading, err.Error(), "Go back to the nodes page and check the node's state.")
}

// userRow is one declared user with its devices.
type userRow struct {
	Login, Name, Role string
	Devices, Online   int
}

func (c *Console) usersPage(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	nodes, err := c.visibleNodes(r.Context(), v)
	if err != nil {
		c.problem(w, r, http.StatusServiceUnavailable, "Users unavailable", err.Error(), "The coordination server may be shutting down.")
		return
	}
	var out []userRow
	for login, u := range c.served().Users {
		if !v.SeesAll() && login != v.Login {
			continue
		}
		row := userRow{Login: login, Name: u.Name, Role: cmp.Or(string(u.Role), "member")}
		for _, n := range nodes {
			if n.User == login {
				row.Devices++
				if n.Online {
					row.Online++
				}
			}
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b userRow) int { return cmp.Compare(a.Login, b.Login) })
	c.render(w, r, http.StatusOK, "users.html", out)
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	if !viewerOf(r).SeesAll() {
		c.forbidden(w, r, "reading the audit log")
		return
	}
	entries, err := c.cfg.Store.AuditEntries(r.Context(), 500)
	if err != nil {
		c.problem(w, r, http.StatusInternalServerError, "Audit log unavailable", err.Error(), "Check the server's database.")
		return
	}
	c.render(w, r, http.StatusOK, "audit.html", entries)
}

// ago renders how long ago t was, coarsely; "never" for zero.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < 5*time.Second:
		return "now"
	case d < time.Hour:
		return d.String() + " ago"
	case d < 48*time.Hour:
		return d.Round(time.Minute).String() + " ago"
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// stamp renders t in UTC to the second; "-" for zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// joinAny joins the elements of a slice, each as fmt.Sprint renders it.
func joinAny(sep string, xs any) string {
	v := reflect.ValueOf(xs)
	if v.Kind() != reflect.Slice {
		return fmt.Sprint(xs)
	}
	parts := make([]string, v.Len())
	for i := range parts {
		parts[i] = fmt.Sprint(v.Index(i).Interface())
	}
	return strings.Join(parts, sep)
}
