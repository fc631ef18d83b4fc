package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/control"
)

func init() {
	register(&command{
		name:    "nodes",
		summary: "list, show and act on registered nodes: list, show, expire, delete, rename, approve, reject",
		run:     runNodes,
	})
	register(&command{name: "users", summary: "list the declared users with their roles and device counts", run: runUsers})
	register(&command{name: "audit", summary: "show the audit log: every change made through the admin API", run: runAudit})
}

// subcommand is one of `tailplane nodes`' subcommands.
type subcommand struct {
	args    string // usage after the name
	summary string
	run     func(ctx context.Context, env *cliEnv, c *apiClient, args []string) int
}

// nodeSubcommands are `tailplane nodes`' subcommands; see runNodeSub.
var nodeSubcommands = map[string]subcommand{
	"list":    {"[--user LOGIN] [--tag TAG] [--online[=false]] [--expired[=false]] [--pending[=false]]", "list nodes, like tailscale status", runNodesList},
	"show":    {"ID|NAME", "show everything about one node", runNodesShow},
	"expire":  {"ID|NAME", "expire the node's key: it must log in again", nodeVerb("expire", http.MethodPost, "/expire")},
	"delete":  {"ID|NAME", "remove the node; its peers lose it", nodeVerb("delete", http.MethodDelete, "")},
	"rename":  {"ID|NAME NEW-NAME", "change the node's MagicDNS name", runNodesRename},
	"approve": {"ID|NAME", "approve a node waiting for device approval", nodeVerb("approve", http.MethodPost, "/approve")},
	"reject":  {"ID|NAME", "remove a node waiting for device approval", nodeVerb("reject", http.MethodPost, "/reject")},
}

// apiClient is a parsed set of admin API flags plus --json.
type apiClient struct {
	apiClientFlags
	fs     *pflag.FlagSet
	asJSON bool
}

// newAPIClient builds the flag set of `tailplane name` with the API
// client's flags.
func newAPIClient(env *cliEnv, name, args string) *apiClient {
	c := &apiClient{fs: newFlags(env, name, "--server URL [--json] "+args)}
	c.register(c.fs)
	c.fs.BoolVar(&c.asJSON, "json", false, "print the API's JSON answer instead of a table")
	return c
}

// parse parses args and checks --server and that nargs arguments were
// given; when it returns false, code is the exit code.
func (c *apiClient) parse(env *cliEnv, args []string, nargs int) (ok bool, code int) {
	if ok, code := parseFlags(c.fs, args); !ok {
		return false, code
	}
	if c.server == "" || c.fs.NArg() != nargs {
		fmt.Fprintf(env.stderr, "tailplane %s: --server URL is required, and %d argument(s)\n", c.fs.Name(), nargs)
		c.fs.Usage()
		return false, exitUsage
	}
	return true, exitOK
}

// fail prints err and returns its exit code.
func (c *apiClient) fail(env *cliEnv, err error) int {
	fmt.Fprintf(env.stderr, "tailplane %s: %v\n", c.fs.Name(), err)
	return exitCodeOf(err)
}

// printJSON prints v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runNodes(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) > 0 {
		if sub, ok := nodeSubcommands[args[0]]; ok {
			c := newAPIClient(env, "nodes "+args[0], sub.args)
			return sub.run(ctx, env, c, args[1:])
		}
	}
	w := env.stderr
	code := exitUsage
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		w, code = env.stdout, exitOK
		quiet := *env // each subcommand builds its flags, for the flag docs (env.flagSets)
		quiet.stdout, quiet.stderr = io.Discard, io.Discard
		for name, sub := range nodeSubcommands {
			sub.run(ctx, &quiet, newAPIClient(&quiet, "nodes "+name, sub.args), []string{"--help"})
		}
	} else if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(env.stderr, "tailplane nodes: unknown flag: %s\n\n", args[0])
	} else if len(args) > 0 {
		fmt.Fprintf(env.stderr, "tailplane nodes: unknown subcommand %q\n\n", args[0])
	}
	fmt.Fprintln(w, "Usage: tailplane nodes <subcommand> --server URL [--json] [args]\n\nSubcommands:")
	for _, name := range []string{"list", "show", "expire", "delete", "rename", "approve", "reject"} {
		fmt.Fprintf(w, "  %-8s %s\n", name, nodeSubcommands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'tailplane nodes <subcommand> --help' for its flags.")
	return code
}

func runNodesList(ctx context.Context, env *cliEnv, c *apiClient, args []string) int {
	user := c.fs.String("user", "", "only the nodes of this login")
	tag := c.fs.String("tag", "", "only the nodes carrying this tag")
	c.fs.Bool("online", false, "only online nodes (--online=false: only offline ones)")
	c.fs.Bool("expired", false, "only nodes whose key expired (--expired=false: only the others)")
	c.fs.Bool("pending", false, "only nodes waiting for device approval (--pending=false: only the others)")
	if ok, code := c.parse(env, args, 0); !ok {
		return code
	}
	q := url.Values{}
	if *user != "" {
		q.Set("user", *user)
	}
	if *tag != "" {
		q.Set("tag", *tag)
	}
	for _, name := range []string{"online", "expired", "pending"} {
		if c.fs.Changed(name) {
			q.Set(name, c.fs.Lookup(name).Value.String())
		}
	}
	var nodes []control.NodeInfo
	path := "/api/v1/nodes"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if err := c.get(ctx, env, path, &nodes); err != nil {
		return c.fail(env, err)
	}
	if c.asJSON {
		printJSON(env.stdout, nodes)
		return exitOK
	}
	writeNodesTable(env.stdout, nodes, time.Now())
	return exitOK
}

// writeNodesTable renders nodes as `tailscale status` does: one line each.
func writeNodesTable(w io.Writer, nodes []control.NodeInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tNAME\tOWNER\tOS\tLAST SEEN\tSTATE")
	for _, n := range nodes {
		addr := "-"
		if len(n.Addresses) > 0 {
			addr = n.Addresses[0].String()
		}
		seen := "never"
		switch {
		case n.Online:
			seen = "now"
		case !n.LastSeen.IsZero():
			seen = now.Sub(n.LastSeen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, addr, n.Name, owner(n), dash(n.OS), seen, nodeState(n))
	}
	tw.Flush()
}

// owner is the user, or the tags, owning n.
func owner(n control.NodeInfo) string {
	if n.User != "" {
		return n.User
	}
	return dash(strings.Join(n.Tags, ","))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// nodeState sums n up: online or offline, then what else holds it back.
func nodeState(n control.NodeInfo) string {
	s := []string{"offline"}
	if n.Online {
		s[0] = "online"
	}
	if n.PendingApproval {
		s = append(s, "pending approval")
	}
	if n.Expired {
		s = append(s, "expired")
	}
	if n.LoggedOut {
		s = append(s, "logged out")
	}
	if n.Ephemeral {
		s = append(s, "ephemeral")
	}
	return strings.Join(s, ", ")
}

// resolveNode turns an ID or a name (the MagicDNS label or FQDN) into a
// node ID; a name is looked up in the listing.
func (c *apiClient) resolveNode(ctx context.Context, env *cliEnv, arg string) (int64, error) {
	if id, err := strconv.ParseInt(arg, 10, 64); err == nil {
		return id, nil
	}
	var nodes []control.NodeInfo
	if err := c.get(ctx, env, "/api/v1/nodes", &nodes); err != nil {
		return 0, err
	}
	for _, n := range nodes {
		if n.Name == arg || n.FQDN == strings.TrimSuffix(arg, ".") {
			return int64(n.ID), nil
		}
	}
	return 0, &apiError{url: c.server, status: http.StatusNotFound, text: "not found",
		detail: fmt.Sprintf("no node is named %q (hint: tailplane nodes list)", arg)}
}

func runNodesShow(ctx context.Context, env *cliEnv, c *apiClient, args []string) int {
	if ok, code := c.parse(env, args, 1); !ok {
		return code
	}
	id, err := c.resolveNode(ctx, env, c.fs.Arg(0))
	if err != nil {
		return c.fail(env, err)
	}
	var n control.NodeInfo
	if err := c.get(ctx, env, fmt.Sprintf("/api/v1/nodes/%d", id), &n); err != nil {
		return c.fail(env, err)
	}
	if c.asJSON {
		printJSON(env.stdout, n)
		return exitOK
	}
	writeNode(env.stdout, n)
	return exitOK
}

// writeNode renders one node, a field a line.
func writeNode(w io.Writer, n control.NodeInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	when := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	line("id", fmt.Sprintf("%d (%s)", n.ID, n.StableID))
	line("name", n.FQDN)
	line("hostname", n.Hostname)
	line("owner", owner(n))
	var addrs []string
	for _, a := range n.Addresses {
		addrs = append(addrs, a.String())
	}
	line("addresses", dash(strings.Join(addrs, ", ")))
	line("os", dash(n.OS))
	line("client", dash(n.ClientVersion))
	line("state", nodeState(n))
	line("created", when(n.Created))
	line("last seen", when(n.LastSeen))
	line("key expiry", when(n.KeyExpiry))
	line("auth key", dash(n.AuthKey))
	line("machine key", n.MachineKey)
	line("node key", n.NodeKey)
	var adv []string
	for _, p := range n.AdvertisedRoutes {
		adv = append(adv, p.String())
	}
	line("advertised", dash(strings.Join(adv, ", ")))
	for _, a := range n.ApprovedRoutes {
		line("approved", a.Route.String()+" by "+a.Rule)
	}
	var prim []string
	for _, p := range n.PrimaryRoutes {
		prim = append(prim, p.String())
	}
	line("primary", dash(strings.Join(prim, ", ")))
	tw.Flush()
}

// nodeVerb is a subcommand that calls method on the node's path plus
// suffix and reports "verb node NAME (ID)".
func nodeVerb(verb, method, suffix string) func(context.Context, *cliEnv, *apiClient, []string) int {
	return func(ctx context.Context, env *cliEnv, c *apiClient, args []string) int {
		if ok, code := c.parse(env, args, 1); !ok {
			return code
		}
		return c.act(ctx, env, verb, method, suffix, c.fs.Arg(0), nil)
	}
}

func runNodesRename(ctx context.Context, env *cliEnv, c *apiClient, args []string) int {
	if ok, code := c.parse(env, args, 2); !ok {
		return code
	}
	return c.act(ctx, env, "rename", http.MethodPost, "/rename", c.fs.Arg(0), map[string]string{"name": c.fs.Arg(1)})
}

// act runs one node action and prints its outcome: the node the API
// answers (as JSON with --json), or one line.
func (c *apiClient) act(ctx context.Context, env *cliEnv, verb, method, suffix, arg string, body any) int {
	id, err := c.resolveNode(ctx, env, arg)
	if err != nil {
		return c.fail(env, err)
	}
	var n control.NodeInfo
	if err := c.call(ctx, env, method, fmt.Sprintf("/api/v1/nodes/%d%s", id, suffix), body, &n); err != nil {
		return c.fail(env, err)
	}
	if c.asJSON {
		printJSON(env.stdout, n)
		return exitOK
	}
	done := map[string]string{"expire": "expired", "delete": "deleted", "rename": "renamed", "approve": "approved", "reject": "rejected"}[verb]
	if verb == "delete" || verb == "reject" {
		fmt.Fprintf(env.stdout, "%s node %s (%d): removed, its name and addresses are free\n", done, n.FQDN, n.ID)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "%s node %s (%d): %s\n", done, n.FQDN, n.ID, nodeState(n))
	return exitOK
}

func runUsers(ctx context.Context, env *cliEnv, args []string) int {
	c := newAPIClient(env, "users", "list")
	if ok, code := c.parse(env, args, 1); !ok {
		return code
	}
	if c.fs.Arg(0) != "list" {
		fmt.Fprintf(env.stderr, "tailplane users: unknown subcommand %q (there is only list)\n", c.fs.Arg(0))
		return exitUsage
	}
	return printList(ctx, env, c, "/api/v1/users", "LOGIN\tNAME\tROLE\tDEVICES\tONLINE", func(u admin.User) string {
		return fmt.Sprintf("%s\t%s\t%s\t%d\t%d", u.Login, dash(u.Name), u.Role, u.Devices, u.Online)
	})
}

func runAudit(ctx context.Context, env *cliEnv, args []string) int {
	c := newAPIClient(env, "audit", "[--limit N]")
	limit := c.fs.Int("limit", 50, "show this many of the newest entries (0: all)")
	if ok, code := c.parse(env, args, 0); !ok {
		return code
	}
	path := fmt.Sprintf("/api/v1/audit?limit=%d", max(*limit, 0))
	return printList(ctx, env, c, path, "TIME\tWHO\tWHAT\tRESULT", func(e admin.AuditEntry) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s", e.At.UTC().Format(time.RFC3339), dash(e.Who), e.What, dash(e.Result))
	})
}

// printList GETs path, a list of T, and prints it as the API's JSON with
// --json, else as a table: header, then one row (tab-separated) an item.
func printList[T any](ctx context.Context, env *cliEnv, c *apiClient, path, header string, row func(T) string) int {
	var items []T
	if err := c.get(ctx, env, path, &items); err != nil {
		return c.fail(env, err)
	}
	if c.asJSON {
		printJSON(env.stdout, items)
		return exitOK
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	tw.Flush()
	return exitOK
}
