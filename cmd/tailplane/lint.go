package main

import (
	"context"
	"fmt"

	"github.com/tailplane/tailplane/policy"
	"github.com/tailplane/tailplane/schema"
)

func init() {
	register(&command{
		name:    "lint",
		summary: "check a config repository: syntax, schema, policy and its tests",
		run:     runLint,
	})
}

func runLint(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "lint", "[DIR] [--format text|json|github]")
	format := fs.String("format", "text", "output format: text, json, or github (workflow annotations)")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	dir, ok := dirArg(env, fs)
	if !ok {
		return exitUsage
	}
	switch *format {
	case "text", "json", "github":
	default:
		fmt.Fprintf(env.stderr, "tailplane lint: unknown --format %q (want text, json or github)\n", *format)
		return exitUsage
	}
	rep, _ := lintDir(ctx, dir)
	switch *format {
	case "json":
		if err := rep.writeJSON(env.stdout); err != nil {
			fmt.Fprintf(env.stderr, "tailplane lint: %v\n", err)
			return exitProblems
		}
	case "github":
		rep.writeGitHub(env.stdout)
	default:
		rep.writeText(env.stdout)
	}
	if rep.Diagnostics.HasErrors() {
		return exitProblems
	}
	return exitOK
}

// lintDir loads, validates and compiles the config in dir and runs its
// policy tests, collecting every problem on the way. t is the loaded
// tailnet, nil when the files could not be decoded at all.
func lintDir(ctx context.Context, dir string) (rep *lintReport, t *schema.Tailnet) {
	rep = &lintReport{Dir: dir, TestsRun: -1}
	t, diags := schema.LoadDir(ctx, dir)
	rep.Diagnostics = diags
	if t != nil {
		pdiags, tests := checkPolicy(t)
		rep.Diagnostics = append(rep.Diagnostics, pdiags...)
		rep.TestsRun = tests
	}
	rep.Diagnostics.Sort()
	return rep, t
}

// checkPolicy compiles t's policy and runs its tests (policy.Validate).
// The policy package positions its diagnostics through t.Source. tests is
// the number of assertions evaluated, or -1 when the policy did not
// compile.
func checkPolicy(t *schema.Tailnet) (diags schema.Diagnostics, tests int) {
	p, diags := policy.Validate(t, nil)
	if p == nil {
		return diags, -1
	}
	return diags, p.TestAssertions()
}
