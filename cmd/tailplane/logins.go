package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/tailplane/tailplane/admin"
)

func init() {
	register(&command{
		name:    "logins",
		summary: "list the open interactive logins, or approve one as a declared user (no identity provider)",
		run:     runLogins,
	})
}

const loginsUsage = "(list [--json] | approve ID --user LOGIN) --server URL"

func runLogins(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "logins", loginsUsage)
	var c apiClientFlags
	c.register(fs)
	asJSON := fs.Bool("json", false, "list: print the logins as JSON (the answer of GET /api/v1/logins)")
	user := fs.String("user", "", "approve: the login (declared under users) the device registers as")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	sub := fs.Arg(0)
	switch {
	case c.server == "":
		fmt.Fprintln(env.stderr, "tailplane logins: --server URL is required")
	case sub == "list" && fs.NArg() == 1 && *user == "":
		return listLogins(ctx, env, &c, *asJSON)
	case sub == "approve" && fs.NArg() == 2 && *user != "" && !*asJSON:
		return approveLogin(ctx, env, &c, fs.Arg(1), *user)
	case sub == "approve":
		fmt.Fprintln(env.stderr, "tailplane logins approve: give one login ID (from `tailplane logins list` or the device's login page) and --user LOGIN")
	default:
		fmt.Fprintln(env.stderr, "tailplane logins: say list or approve ID --user LOGIN")
	}
	fs.Usage()
	return exitUsage
}

func listLogins(ctx context.Context, env *cliEnv, c *apiClientFlags, asJSON bool) int {
	var logins []admin.Login
	if err := c.get(ctx, env, "/api/v1/logins", &logins); err != nil {
		fmt.Fprintf(env.stderr, "tailplane logins list: %v\n", err)
		return exitCodeOf(err)
	}
	if asJSON {
		if err := printJSON(env.stdout, logins); err != nil {
			fmt.Fprintf(env.stderr, "tailplane logins list: %v\n", err)
			return exitProblems
		}
		return exitOK
	}
	writeLogins(env.stdout, logins, time.Now())
	return exitOK
}

// writeLogins renders logins as a table for people.
func writeLogins(w io.Writer, logins []admin.Login, now time.Time) {
	if len(logins) == 0 {
		fmt.Fprintln(w, "no open logins")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDEVICE\tMACHINE\tSTARTED\tEXPIRES")
	for _, l := range logins {
		machine := l.Machine
		if len(machine) > 16 {
			machine = machine[:16] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\tin %s\n", l.ID, l.Device, machine,
			now.Sub(l.Started).Round(time.Second), l.Expires.Sub(now).Round(time.Second))
	}
	tw.Flush()
}

func approveLogin(ctx context.Context, env *cliEnv, c *apiClientFlags, id, user string) int {
	var resp admin.ApproveResponse
	path := "/api/v1/logins/" + url.PathEscape(id) + "/approve"
	if err := c.call(ctx, env, "POST", path, admin.ApproveRequest{User: user}, &resp); err != nil {
		fmt.Fprintf(env.stderr, "tailplane logins approve: %v\n", err)
		return exitCodeOf(err)
	}
	fmt.Fprintf(env.stdout, "approved login %s as %s: the device registers now\n", resp.ID, resp.User)
	return exitOK
}
