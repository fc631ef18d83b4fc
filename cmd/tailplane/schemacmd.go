package main

import (
	"context"
	"fmt"

	"github.com/tailplane/tailplane/schema"
)

func init() {
	register(&command{
		name:    "schema",
		summary: "print the CUE schema of a config repository",
		run: func(ctx context.Context, env *cliEnv, args []string) int {
			fs := newFlags(env, "schema", "")
			if ok, code := parseFlags(fs, args); !ok {
				return code
			}
			if fs.NArg() != 0 {
				fs.Usage()
				return exitUsage
			}
			fmt.Fprint(env.stdout, schema.SchemaCUE())
			return exitOK
		},
	})
}
