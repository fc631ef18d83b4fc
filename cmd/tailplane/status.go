package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/reconcile"
)

func init() {
	register(&command{
		name:    "status",
		summary: "show what a running server serves: applied and attempted revision, errors, sync, nodes",
		run:     runStatus,
	})
}

// envAPIKey is where the CLI reads its API key (one declared under apiKeys;
// role read is enough for status and plan) from, unless --api-key-file is
// given. Never a flag value: it would show in ps.
const envAPIKey = "TAILPLANE_API_KEY"

// apiClientFlags are the flags of commands that talk to the admin API.
type apiClientFlags struct {
	server     string
	apiKeyFile string
}

func (c *apiClientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "URL of the tailplane server (its --server-url)")
	fs.StringVar(&c.apiKeyFile, "api-key-file", "", "file holding an API key declared under apiKeys, role read or admin (default: $"+envAPIKey+")")
}

// get fetches path from the admin API into v.
func (c *apiClientFlags) get(ctx context.Context, env *cliEnv, path string, v any) error {
	return c.call(ctx, env, http.MethodGet, path, nil, v)
}

func runStatus(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "status", "--server URL [--json] [--revisions N]")
	var c apiClientFlags
	c.register(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON (the answer of GET /api/v1/status)")
	nrevs := fs.Int("revisions", 5, "also list this many recently applied revisions (0: none; not with --json)")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if c.server == "" || fs.NArg() != 0 {
		fmt.Fprintln(env.stderr, "tailplane status: --server URL is required and no arguments are taken")
		fs.Usage()
		return exitUsage
	}
	var st admin.Status
	if err := c.get(ctx, env, "/api/v1/status", &st); err != nil {
		fmt.Fprintf(env.stderr, "tailplane status: %v\n", err)
		return exitProblems
	}
	var revs []reconcile.Revision
	if *nrevs > 0 && st.Serving && !*asJSON { // the JSON is the status alone
		if err := c.get(ctx, env, fmt.Sprintf("/api/v1/revisions?limit=%d", *nrevs), &revs); err != nil {
			fmt.Fprintf(env.stderr, "tailplane status: %v\n", err)
			return exitProblems
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			fmt.Fprintf(env.stderr, "tailplane status: %v\n", err)
			return exitProblems
		}
	} else {
		writeStatus(env.stdout, c.server, &st, revs, time.Now())
	}
	if !st.Serving || (st.Attempted != nil && !st.Attempted.OK) || st.Source.Error != "" {
		return exitProblems
	}
	return exitOK
}

// writeStatus renders st for people.
func writeStatus(w io.Writer, server string, st *admin.Status, revs []reconcile.Revision, now time.Time) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t).Round(time.Second)
		if d < 0 {
			return "in " + (-d).String()
		}
		return d.String() + " ago"
	}
	fmt.Fprintf(w, "server:    %s\n", server)
	if st.Applied != nil {
		fmt.Fprintf(w, "serving:   %s, applied %s (%s)\n", describeRevision(*st.Applied), ago(st.Applied.AppliedAt), st.Applied.Summary)
	} else {
		fmt.Fprintln(w, "serving:   nothing yet (no revision was ever applied)")
	}
	if a := st.Attempted; a != nil {
		if a.OK {
			fmt.Fprintf(w, "attempted: %s: ok, %s\n", describeRevision(a.Revision), ago(a.Finished))
		} else {
			fmt.Fprintf(w, "attempted: %s: FAILED at %s (%s), %s\n", describeRevision(a.Revision), a.Step, a.Class, ago(a.Finished))
			for _, p := range a.Problems {
				fmt.Fprintf(w, "  %s\n", p)
			}
		}
	}
	if r := st.Applying; r != nil {
		fmt.Fprintf(w, "applying:  %s\n", describeRevision(*r))
	}
	if !st.NextRetry.IsZero() {
		fmt.Fprintf(w, "retry:     %s (after %d failures)\n", ago(st.NextRetry), st.Failures)
	}
	src := st.Source
	where := src.URL
	if src.Branch != "" {
		where += " branch " + src.Branch
	}
	if src.Path != "" && src.Path != "." {
		where += " path " + src.Path
	}
	fmt.Fprintf(w, "source:    %s\n", where)
	next := ago(src.NextPoll)
	if src.NextPoll.IsZero() {
		next = "on change" // a watched directory
	}
	fmt.Fprintf(w, "           last sync %s, next poll %s\n", ago(src.LastSync), next)
	if src.Error != "" {
		fmt.Fprintf(w, "           error (%s, %d in a row): %s\n", src.ErrorClass, src.Failures, src.Error)
	}
	fmt.Fprintf(w, "nodes:     %d online / %d total\n", st.Nodes.Online, st.Nodes.Total)
	if len(revs) > 0 {
		fmt.Fprintln(w, "history:")
		for _, r := range revs {
			fmt.Fprintf(w, "  #%-4d %s  %s  %s\n", r.ID, r.AppliedAt.UTC().Format(time.RFC3339), describeRevision(r), r.Summary)
		}
	}
}

// describeRevision is "abc123def456 "subject" by Name <email>".
func describeRevision(r reconcile.Revision) string {
	s := r.Commit
	if len(s) > 12 && !strings.HasPrefix(s, "dir:") {
		s = s[:12]
	}
	if subj, _, _ := strings.Cut(strings.TrimSpace(r.Message), "\n"); subj != "" {
		s += fmt.Sprintf(" %q", subj)
	}
	if r.Author != "" {
		s += " by " + r.Author
	}
	return s
}
