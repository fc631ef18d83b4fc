package main

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
)

// newFlags returns a flag set for a subcommand that prints its usage to env.stderr.
func newFlags(env *cliEnv, name, argsUsage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: tailplane %s %s\n\nFlags:\n%s", name, argsUsage, fs.FlagUsages())
	}
	return fs
}

// parseFlags parses args and says whether the command should go on. When it
// should not, code is the exit code to return: 0 for --help, 2 for bad flags.
func parseFlags(fs *pflag.FlagSet, args []string) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return false, exitOK
		}
		return false, exitUsage
	}
	return true, exitOK
}

// dirArg returns the single optional directory argument, "." when absent.
func dirArg(env *cliEnv, fs *pflag.FlagSet) (string, bool) {
	switch fs.NArg() {
	case 0:
		return ".", true
	case 1:
		return fs.Arg(0), true
	}
	fmt.Fprintf(env.stderr, "tailplane %s: expected at most one directory, got %d arguments\n", fs.Name(), fs.NArg())
	fs.Usage()
	return "", false
}
