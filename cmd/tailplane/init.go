package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing/fstest"
	"text/template"

	"github.com/tailplane/tailplane/schema"
)

//go:embed starter/*.hujson
var starterFS embed.FS

func init() {
	register(&command{
		name:    "init",
		summary: "write a commented starter config repository",
		run:     runInit,
	})
}

// starterParams fill the starter templates.
type starterParams struct {
	Name      string
	Domain    string
	Owner     string
	OwnerName string
}

func runInit(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "init", "DIR [--owner LOGIN] [--domain DOMAIN] [--name NAME] [--force]")
	p := starterParams{}
	fs.StringVar(&p.Owner, "owner", "you@example.com", "login of the tailnet's owner")
	fs.StringVar(&p.Domain, "domain", "tail.example.internal", "MagicDNS suffix")
	fs.StringVar(&p.Name, "name", "My tailnet", "display name of the tailnet")
	force := fs.Bool("force", false, "overwrite files that already exist")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(env.stderr, "tailplane init: give the directory to create")
		fs.Usage()
		return exitUsage
	}
	if !strings.Contains(p.Owner, "@") {
		fmt.Fprintf(env.stderr, "tailplane init: --owner %q is not a login such as alice@example.com\n", p.Owner)
		return exitUsage
	}
	p.OwnerName, _, _ = strings.Cut(p.Owner, "@")
	p = p.jsonEscaped()
	dir := fs.Arg(0)
	written, err := writeStarter(ctx, dir, p, *force)
	if err != nil {
		fmt.Fprintf(env.stderr, "tailplane init: %v\n", err)
		return exitProblems
	}
	for _, f := range written {
		fmt.Fprintf(env.stdout, "wrote %s\n", f)
	}
	fmt.Fprintf(env.stdout, "\nNext: edit the files, then run `tailplane lint %s`.\n", dir)
	return exitOK
}

// jsonEscaped returns p with every field escaped for use inside a JSON string.
func (p starterParams) jsonEscaped() starterParams {
	esc := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b[1 : len(b)-1])
	}
	return starterParams{Name: esc(p.Name), Domain: esc(p.Domain), Owner: esc(p.Owner), OwnerName: esc(p.OwnerName)}
}

// writeStarter renders the starter templates into dir and returns the files
// written. It writes nothing if any target exists and force is false, or
// if the rendered repository would not lint clean (e.g. a bad --domain).
func writeStarter(ctx context.Context, dir string, p starterParams, force bool) ([]string, error) {
	entries, err := fs.ReadDir(starterFS, "starter")
	if err != nil {
		return nil, err
	}
	rendered := map[string][]byte{}
	mem := fstest.MapFS{}
	var names []string
	for _, e := range entries {
		text, err := fs.ReadFile(starterFS, "starter/"+e.Name())
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(e.Name()).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, p); err != nil {
			return nil, err
		}
		target := filepath.Join(dir, e.Name())
		if _, err := os.Stat(target); err == nil && !force {
			return nil, fmt.Errorf("%s already exists (use --force to overwrite)", target)
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		rendered[target] = buf.Bytes()
		names = append(names, target)
		mem[e.Name()] = &fstest.MapFile{Data: buf.Bytes()}
	}
	if _, diags := schema.Load(ctx, mem, "."); diags.HasErrors() {
		return nil, fmt.Errorf("the starter would not be valid with these flags:\n%s", diags.Errors().Error())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, target := range names {
		if err := os.WriteFile(target, rendered[target], 0o644); err != nil {
			return nil, err
		}
	}
	return names, nil
}
