package main

import (
	"context"
	"fmt"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/reconcile"
)

func init() {
	register(&command{
		name:    "plan",
		summary: "show what applying a config repository would change",
		run:     runPlan,
	})
}

// Exit codes of plan --detailed-exitcode (Terraform's convention).
const (
	exitPlanNoChanges = 0
	exitPlanChanges   = 2
)

func runPlan(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "plan", "[DIR] (--state-dir DIR | --server URL) [--detailed-exitcode] [--json]")
	stateDir := fs.String("state-dir", "", "the server's state directory (a directory that does not exist plans from empty)")
	var server apiClientFlags
	server.register(fs)
	detailed := fs.Bool("detailed-exitcode", false, "exit 0 when there are no changes, 2 when there are, 1 on error")
	asJSON := fs.Bool("json", false, "print the plan as JSON (see docs/plan.md)")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	dir, ok := dirArg(env, fs)
	if !ok {
		return exitUsage
	}
	if (*stateDir == "") == (server.server == "") {
		fmt.Fprintln(env.stderr, "tailplane plan: --state-dir is required (the server's --state-dir, or a new directory to plan from empty), or --server URL to plan against a running server")
		fs.Usage()
		return exitUsage
	}

	// A plan of a config that would not be applied is no plan: show why.
	rep, t := lintDir(ctx, dir)
	if rep.Diagnostics.HasErrors() {
		rep.writeText(env.stderr)
		fmt.Fprintln(env.stderr, "tailplane plan: the config has errors; nothing would be applied")
		return exitProblems
	}
	var applied []reconcile.Object
	var nodes []reconcile.Node
	var err error
	desired := reconcile.Desired(t)
	if server.server != "" {
		var a admin.Applied
		err = server.get(ctx, env, "/api/v1/applied", &a)
		applied, nodes = a.Objects, a.Nodes
		if a.SecretsMasked {
			// A read key sees secret hashes masked: compare like with like.
			desired = reconcile.MaskSecrets(desired)
		}
	} else {
		applied, nodes, err = reconcile.ReadApplied(ctx, *stateDir)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "tailplane plan: %v\n", err)
		return exitProblems
	}
	p := reconcile.Diff(applied, desired)
	p.AssessImpact(nodes)
	if *asJSON {
		err = p.WriteJSON(env.stdout)
	} else {
		err = p.WriteText(env.stdout)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "tailplane plan: %v\n", err)
		return exitProblems
	}
	if *detailed && !p.Empty() {
		return exitPlanChanges
	}
	return exitPlanNoChanges
}
