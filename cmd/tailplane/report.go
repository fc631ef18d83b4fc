package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/tailplane/tailplane/schema"
)

// lintReport is what lint found, ready to print in any format.
type lintReport struct {
	Dir         string             // the config root as the user named it
	Diagnostics schema.Diagnostics // all problems, sorted
	// TestsRun is the number of policy test assertions evaluated; -1 when
	// the policy did not compile far enough to evaluate them.
	TestsRun int
}

func (r *lintReport) counts() (errs, warns int) {
	for _, d := range r.Diagnostics {
		if d.Severity == schema.SevError {
			errs++
		} else {
			warns++
		}
	}
	return errs, warns
}

// displayPos rewrites a diagnostic's file, relative to the config root, as a
// path relative to where the user ran the command.
func (r *lintReport) displayPos(p schema.Pos) schema.Pos {
	if p.File != "" && r.Dir != "" && r.Dir != "." {
		p.File = filepath.ToSlash(filepath.Join(r.Dir, filepath.FromSlash(p.File)))
	}
	return p
}

func (r *lintReport) writeText(w io.Writer) {
	for _, d := range r.Diagnostics {
		d.Pos = r.displayPos(d.Pos)
		fmt.Fprintln(w, d.String())
	}
	errs, warns := r.counts()
	var tests string
	switch {
	case r.TestsRun < 0:
		tests = "policy tests not evaluated"
	default:
		tests = fmt.Sprintf("%d policy test assertions evaluated", r.TestsRun)
	}
	fmt.Fprintf(w, "%s: %d errors, %d warnings; %s\n", r.Dir, errs, warns, tests)
}

// jsonDiagnostic is the stable JSON shape of one diagnostic.
type jsonDiagnostic struct {
	Severity string `json:"severity"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Col      int    `json:"col,omitempty"`
	Path     string `json:"path,omitempty"`
	Message  string `json:"message"`
	Hint     string `json:"hint,omitempty"`
}

func (r *lintReport) writeJSON(w io.Writer) error {
	errs, warns := r.counts()
	out := struct {
		Dir         string           `json:"dir"`
		Errors      int              `json:"errors"`
		Warnings    int              `json:"warnings"`
		TestsRun    int              `json:"testsRun"` // -1: not evaluated
		Diagnostics []jsonDiagnostic `json:"diagnostics"`
	}{Dir: r.Dir, Errors: errs, Warnings: warns, TestsRun: r.TestsRun, Diagnostics: []jsonDiagnostic{}}
	for _, d := range r.Diagnostics {
		p := r.displayPos(d.Pos)
		out.Diagnostics = append(out.Diagnostics, jsonDiagnostic{
			Severity: d.Severity.String(), File: p.File, Line: p.Line, Col: p.Col,
			Path: d.Path, Message: d.Message, Hint: d.Hint,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// writeGitHub prints GitHub Actions workflow commands, which GitHub shows as
// annotations on the pull request's diff.
func (r *lintReport) writeGitHub(w io.Writer) {
	for _, d := range r.Diagnostics {
		p := r.displayPos(d.Pos)
		level := "error"
		if d.Severity == schema.SevWarning {
			level = "warning"
		}
		msg := d.Message
		if d.Path != "" {
			msg = d.Path + ": " + msg
		}
		if d.Hint != "" {
			msg += " (hint: " + d.Hint + ")"
		}
		var props []string
		if p.File != "" {
			props = append(props, "file="+ghProperty(p.File))
			if p.Line > 0 {
				props = append(props, fmt.Sprintf("line=%d", p.Line), fmt.Sprintf("col=%d", p.Col))
			}
		}
		if len(props) > 0 {
			fmt.Fprintf(w, "::%s %s::%s\n", level, strings.Join(props, ","), ghData(msg))
		} else {
			fmt.Fprintf(w, "::%s::%s\n", level, ghData(msg))
		}
	}
	errs, warns := r.counts()
	fmt.Fprintf(w, "%s: %d errors, %d warnings\n", r.Dir, errs, warns)
}

// ghData escapes a workflow command's message.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes a workflow command's property value.
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
