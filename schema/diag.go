package schema

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a user's file. Line and Col are 1-based; a zero Pos
// means the position is unknown.
type Pos struct {
	File string // path relative to the config root, slash-separated
	Line int
	Col  int
}

// IsValid reports whether p names a place in a file.
func (p Pos) IsValid() bool { return p.File != "" }

func (p Pos) String() string {
	switch {
	case p.File == "":
		return "-"
	case p.Line == 0:
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Severity says whether a Diagnostic blocks applying a revision.
type Severity int

const (
	SevError   Severity = iota // the revision cannot be applied
	SevWarning                 // worth fixing; does not block
)

func (s Severity) String() string {
	if s == SevWarning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a config repository.
type Diagnostic struct {
	Severity Severity
	Pos      Pos    // where in the user's file; may be zero
	Path     string // field path such as "acls[3].dst[0]"; may be empty
	Message  string // what is wrong, in a sentence fragment
	Hint     string // how to fix it; may be empty
}

// String renders the diagnostic as "file:line:col: error: acls[3].dst[0]: message (hint: ...)".
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.Pos.String())
	b.WriteString(": ")
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	if d.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(d.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Diagnostics is a list of problems, in the order they were found.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SevError {
			return true
		}
	}
	return false
}

// Errors returns only the errors.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == SevError {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders ds by file, line and column; diagnostics without a position
// come last. Equal positions keep their order.
func (ds Diagnostics) Sort() {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		if a.Pos.IsValid() != b.Pos.IsValid() {
			if a.Pos.IsValid() {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
}

// Error makes Diagnostics usable as an error: one diagnostic per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Source maps field paths to the positions they were declared at.
// Paths use the syntax of Diagnostic.Path: `key.sub`, `list[3]`, and
// `map["key with dots"]` for map keys that are not plain identifiers.
type Source struct {
	pos map[string]Pos
}

// NewSource returns an empty Source; the loader fills it with Set.
func NewSource() *Source { return &Source{pos: make(map[string]Pos)} }

// Set records where path was declared. The first declaration wins.
func (s *Source) Set(path string, p Pos) {
	if _, ok := s.pos[path]; !ok {
		s.pos[path] = p
	}
}

// Pos returns where path was declared. If path itself is unknown, it walks
// up to the nearest known parent ("acls[3].dst[0]" → "acls[3].dst" → "acls[3]"),
// so a diagnostic always points somewhere useful. A nil Source knows nothing.
func (s *Source) Pos(path string) Pos {
	if s == nil {
		return Pos{}
	}
	for path != "" {
		if p, ok := s.pos[path]; ok {
			return p
		}
		path = parentPath(path)
	}
	return Pos{}
}

// parentPath strips the last element of a field path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		// Find the matching '[' while skipping over quoted keys.
		depth := 0
		inQuote := false
		for i := len(path) - 1; i >= 0; i-- {
			c := path[i]
			switch {
			case c == '"' && (i == 0 || path[i-1] != '\\'):
				inQuote = !inQuote
			case inQuote:
			case c == ']':
				depth++
			case c == '[':
				depth--
				if depth == 0 {
					return path[:i]
				}
			}
		}
		return ""
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// Diag builds an error Diagnostic for path, positioned through s.
func (s *Source) Diag(path, msg, hint string) Diagnostic {
	return Diagnostic{Severity: SevError, Pos: s.Pos(path), Path: path, Message: msg, Hint: hint}
}

// Warn builds a warning Diagnostic for path, positioned through s.
func (s *Source) Warn(path, msg, hint string) Diagnostic {
	return Diagnostic{Severity: SevWarning, Pos: s.Pos(path), Path: path, Message: msg, Hint: hint}
}
