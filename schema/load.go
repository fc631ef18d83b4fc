package schema

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Load assembles the tailnet document from every *.hujson, *.json and *.cue
// file under root in fsys (recursively, skipping hidden files and
// directories and cue.mod), validates it and returns the typed Tailnet plus
// every problem found.
//
// The Tailnet is nil only when the document could not be assembled at all:
// no config files, a file that does not parse, or CUE files that do not
// evaluate. Otherwise it is returned even with semantic errors, so callers
// can go on and report policy problems too. Diagnostics are sorted by file,
// line and column, those without a position last; positions are relative
// to root.
func Load(ctx context.Context, fsys fs.FS, root string) (*Tailnet, Diagnostics) {
	if root == "" {
		root = "."
	}
	root = path.Clean(root)
	var files []srcFile
	var diags Diagnostics
	err := fs.WalkDir(fsys, root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			diags = append(diags, cannotRead(root, p, err))
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		name := de.Name()
		if p != root && (strings.HasPrefix(name, ".") || (de.IsDir() && name == "cue.mod")) {
			if de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if de.IsDir() || !isConfigFile(name) {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			diags = append(diags, cannotRead(root, p, err))
			return nil
		}
		files = append(files, srcFile{name: relName(root, p), data: data})
		return nil
	})
	if err != nil {
		return nil, append(diags, Diagnostic{Message: fmt.Sprintf("cannot load %s: %v", root, err)})
	}
	if len(diags) > 0 {
		// A file we could not read leaves the document incomplete.
		_, more := loadFiles(ctx, files)
		return nil, sortDiags(append(diags, more...))
	}
	if len(files) == 0 {
		return nil, Diagnostics{{Pos: Pos{File: root}, Message: "no *.hujson, *.json or *.cue files found",
			Hint: "point tailplane at the directory holding your tailnet config"}}
	}
	t, more := loadFiles(ctx, files)
	return t, sortDiags(append(diags, more...))
}

// LoadDir is Load on the directory dir of the local file system. As with
// Load, positions are relative to dir; a problem with dir itself is placed
// at ".".
func LoadDir(ctx context.Context, dir string) (*Tailnet, Diagnostics) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		msg := dir + " is not a directory"
		if err != nil {
			msg = err.Error()
		}
		return nil, Diagnostics{{Pos: Pos{File: "."}, Message: "cannot read the config directory: " + msg,
			Hint: "point tailplane at the directory holding your tailnet config"}}
	}
	return Load(ctx, os.DirFS(dir), ".")
}

// LoadBytes loads a document made of one in-memory file; name decides the
// format (".cue" is CUE, anything else HuJSON) and appears in positions.
func LoadBytes(ctx context.Context, name string, data []byte) (*Tailnet, Diagnostics) {
	t, diags := loadFiles(ctx, []srcFile{{name: name, data: data}})
	return t, sortDiags(diags)
}

// cannotRead is the diagnostic for a file or directory p under root that
// could not be read.
func cannotRead(root, p string, err error) Diagnostic {
	return Diagnostic{Pos: Pos{File: relName(root, p)}, Message: "cannot read: " + err.Error(),
		Hint: "make it readable, fix the symlink, or move it out of the config directory"}
}

func isConfigFile(name string) bool {
	switch path.Ext(name) {
	case ".hujson", ".json", ".cue":
		return true
	}
	return false
}

// relName makes p relative to the walk root.
func relName(root, p string) string {
	if root == "." || root == "" {
		return p
	}
	if r, ok := strings.CutPrefix(p, strings.TrimSuffix(root, "/")+"/"); ok {
		return r
	}
	return p
}

// loadFiles parses, merges, validates and decodes files.
func loadFiles(ctx context.Context, files []srcFile) (*Tailnet, Diagnostics) {
	var diags Diagnostics
	var trees []*node
	var cueFiles, dataFiles []srcFile
	broken := false
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, append(diags, Diagnostic{Message: "loading cancelled: " + err.Error()})
		}
		if path.Ext(f.name) == ".cue" {
			cueFiles = append(cueFiles, f)
			continue
		}
		// Editors on Windows may start a file with a UTF-8 byte order mark;
		// it is not part of the text, and columns are counted after it.
		f.data = bytes.TrimPrefix(f.data, []byte("\xef\xbb\xbf"))
		if len(bytes.TrimSpace(f.data)) == 0 {
			continue // an empty file adds nothing
		}
		n, ds := parseHuJSON(f.name, f.data)
		diags = append(diags, ds...)
		if n == nil {
			broken = true
			continue
		}
		if n.kind != kObject {
			diags = append(diags, Diagnostic{Pos: n.pos, Message: fmt.Sprintf("a config file must hold an object, not %s", n.describe()),
				Hint: "wrap the file's content in { ... }"})
			broken = true
			continue
		}
		diags = append(diags, normalizeTop(n)...)
		trees = append(trees, n)
		dataFiles = append(dataFiles, f)
	}
	if len(cueFiles) > 0 {
		n, ds := parseCUE(cueFiles, dataFiles)
		diags = append(diags, ds...)
		if n == nil || len(ds) > 0 {
			broken = true
		}
		if n != nil {
			diags = append(diags, normalizeTop(n)...)
			trees = append(trees, n)
		}
	}
	if broken {
		return nil, diags
	}

	root := &node{kind: kObject}
	if len(trees) > 0 {
		root.pos = trees[0].pos
	}
	m := merger{}
	for _, tr := range trees {
		m.merge(root, tr, "")
	}
	diags = append(diags, m.diags...)

	src := NewSource()
	recordPositions(src, root, "")

	schemaDiags := validateDoc(root)
	for i := range schemaDiags {
		schemaDiags[i].Pos = src.Pos(schemaDiags[i].Path)
	}

	d := decoder{src: src, now: timeNow(), policyErrs: map[string]Diagnostic{}}
	t := d.decode(root)
	diags = append(diags, d.diags...)
	// The decoder's messages are the more precise; keep a schema error only
	// where the decoder said nothing about that value.
	for _, sd := range schemaDiags {
		if !covered(d.diags, sd.Path) {
			diags = append(diags, sd)
		}
	}
	// Policy decoding errors repeat what the schema said, if it said anything.
	for key, pd := range d.policyErrs {
		if !coveredBelow(schemaDiags, PathKey("", key)) {
			diags = append(diags, pd)
		}
	}
	return t, diags
}

// normalizeTop renames top-level keys that match a Tailscale policy key
// case-insensitively (Tailscale's own parser accepts them) to the canonical
// spelling, with a warning.
func normalizeTop(n *node) Diagnostics {
	var diags Diagnostics
	for _, f := range n.fields {
		if classifyTopKey(f.key) != keyUnknown {
			continue
		}
		if canon := tailscaleCaseKey(f.key); canon != "" {
			diags = append(diags, Diagnostic{Severity: SevWarning, Pos: f.val.pos, Path: PathKey("", canon),
				Message: fmt.Sprintf("key %q is spelled %q in Tailscale's documentation", f.key, canon),
				Hint:    fmt.Sprintf("rename it to %q; tailplane accepts it like Tailscale does", canon)})
			f.key = canon
		}
	}
	return diags
}

// recordPositions records the position of n and of every value below it.
func recordPositions(src *Source, n *node, p string) {
	if p != "" {
		src.Set(p, n.pos)
	}
	for _, f := range n.fields {
		recordPositions(src, f.val, PathKey(p, f.key))
	}
	for i, e := range n.elems {
		recordPositions(src, e, PathIndex(p, i))
	}
}

// covered reports whether ds has an error at p or at one of its parents.
func covered(ds Diagnostics, p string) bool {
	for _, d := range ds {
		if d.Severity == SevError && (d.Path == p || isBelow(p, d.Path)) {
			return true
		}
	}
	return false
}

// coveredBelow reports whether ds has a diagnostic at p or below it.
func coveredBelow(ds Diagnostics, p string) bool {
	for _, d := range ds {
		if d.Path == p || isBelow(d.Path, p) {
			return true
		}
	}
	return false
}

// isBelow reports whether path p lies strictly inside parent.
func isBelow(p, parent string) bool {
	if parent == "" {
		return p != ""
	}
	return len(p) > len(parent) && strings.HasPrefix(p, parent) && (p[len(parent)] == '.' || p[len(parent)] == '[')
}

// sortDiags sorts ds (see Diagnostics.Sort) and returns it.
func sortDiags(ds Diagnostics) Diagnostics {
	ds.Sort()
	return ds
}
