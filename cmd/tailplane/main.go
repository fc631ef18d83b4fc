// Command tailplane is a Tailscale coordination server whose tailnet is declared in a Git repository.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/spf13/pflag"
)

// command is one subcommand of the CLI.
type command struct {
	name    string
	summary string
	// run executes the command with the arguments after its name and
	// returns the process exit code; it prints its own errors.
	run func(ctx context.Context, env *cliEnv, args []string) int
}

// cliEnv is what commands read and write instead of globals, so tests can run them in-process.
type cliEnv struct {
	stdout io.Writer
	// stderr receives serve's logs from several goroutines: it must be
	// safe for concurrent writes (as *os.File is).
	stderr io.Writer
	getenv func(string) string
	// flagSets, when set, is called with each flag set a command builds,
	// before it parses (tests compare them with the docs). Nil: not called.
	flagSets func(*pflag.FlagSet)
}

// Exit codes shared by all commands.
const (
	exitOK       = 0
	exitProblems = 1 // problems found, or the command failed
	exitUsage    = 2 // bad flags or arguments
)

// commands lists every subcommand; each command's file registers it in init.
var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runCLI(ctx, &cliEnv{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// runCLI dispatches args to a subcommand and returns the exit code.
func runCLI(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.stderr, "tailplane: unknown command %q\n\n", args[0])
		usage(env.stderr)
		return exitUsage
	}
	return c.run(ctx, env, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tailplane: a Tailscale coordination server whose tailnet is declared in Git.")
	fmt.Fprintln(w, "\nUsage: tailplane <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tailplane <command> --help' for a command's flags.")
}
