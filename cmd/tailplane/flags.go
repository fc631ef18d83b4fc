package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// newFlags returns a flag set for a subcommand that prints its usage to
// env.stderr, and hands it to env.flagSets when that is set.
func newFlags(env *cliEnv, name, argsUsage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: %s\n", strings.TrimSpace("tailplane "+name+" "+argsUsage))
		if fs.HasFlags() {
			fmt.Fprintf(env.stderr, "\nFlags:\n%s", fs.FlagUsages())
		}
	}
	if env.flagSets != nil {
		env.flagSets(fs)
	}
	return fs
}

// parseFlags parses args and says whether the command should go on. When it
// should not, code is the exit code to return: 0 for --help (pflag printed
// the usage), 2 for bad flags, after printing the error and the usage to
// the flag set's output (pflag prints neither with ContinueOnError).
func parseFlags(fs *pflag.FlagSet, args []string) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return false, exitOK
		}
		fmt.Fprintf(fs.Output(), "tailplane %s: %v\n\n", fs.Name(), err)
		fs.Usage()
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
