package schema

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/tailscale/hujson"
)

// kind is the JSON type of a node.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

func (k kind) String() string {
	return [...]string{"null", "bool", "number", "string", "array", "object"}[k]
}

// node is one value of the merged document together with where it was
// declared. The loader parses every file into a node tree, merges the
// trees, validates the result and decodes it into a Tailnet.
type node struct {
	kind kind
	pos  Pos // where the value is declared: the member key for object members, else the value itself

	str    string // kString: the value; kNumber: its JSON text
	b      bool   // kBool
	elems  []*node
	fields []*field // kObject, in declaration order
}

// field is one member of an object node.
type field struct {
	key string
	val *node
}

// get returns the member named key, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != kObject {
		return nil
	}
	for _, f := range n.fields {
		if f.key == key {
			return f.val
		}
	}
	return nil
}

// equal reports whether a and b hold the same JSON value (positions aside).
func equal(a, b *node) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case kBool:
		return a.b == b.b
	case kString:
		return a.str == b.str
	case kNumber:
		if a.str == b.str {
			return true
		}
		x, err1 := strconv.ParseFloat(a.str, 64)
		y, err2 := strconv.ParseFloat(b.str, 64)
		return err1 == nil && err2 == nil && x == y
	case kArray:
		if len(a.elems) != len(b.elems) {
			return false
		}
		for i := range a.elems {
			if !equal(a.elems[i], b.elems[i]) {
				return false
			}
		}
		return true
	case kObject:
		if len(a.fields) != len(b.fields) {
			return false
		}
		for _, f := range a.fields {
			o := b.get(f.key)
			if o == nil || !equal(f.val, o) {
				return false
			}
		}
		return true
	}
	return true
}

// appendJSON appends n as standard JSON.
func (n *node) appendJSON(b []byte) []byte {
	switch n.kind {
	case kNull:
		return append(b, "null"...)
	case kBool:
		return strconv.AppendBool(b, n.b)
	case kNumber:
		return append(b, n.str...)
	case kString:
		return appendJSONString(b, n.str)
	case kArray:
		b = append(b, '[')
		for i, e := range n.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendJSON(b)
		}
		return append(b, ']')
	case kObject:
		b = append(b, '{')
		for i, f := range n.fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.key)
			b = append(b, ':')
			b = f.val.appendJSON(b)
		}
		return append(b, '}')
	}
	return b
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// describe renders a short form of n for messages.
func (n *node) describe() string {
	switch n.kind {
	case kString:
		return strconv.Quote(n.str)
	case kNumber:
		return n.str
	case kBool:
		return strconv.FormatBool(n.b)
	case kNull:
		return "null"
	case kArray:
		return fmt.Sprintf("a list of %d", len(n.elems))
	}
	return "an object"
}

// lineIndex converts byte offsets of one file into 1-based line and byte column.
type lineIndex struct {
	file  string
	start []int // offset of the first byte of each line
}

func newLineIndex(file string, data []byte) *lineIndex {
	li := &lineIndex{file: file, start: []int{0}}
	for i, c := range data {
		if c == '\n' {
			li.start = append(li.start, i+1)
		}
	}
	return li
}

func (li *lineIndex) pos(off int) Pos {
	lo, hi := 0, len(li.start)
	for hi-lo > 1 {
		m := (lo + hi) / 2
		if li.start[m] <= off {
			lo = m
		} else {
			hi = m
		}
	}
	return Pos{File: li.file, Line: lo + 1, Col: off - li.start[lo] + 1}
}

var hujsonErrRE = regexp.MustCompile(`^hujson: line (\d+), column (\d+): (.*)$`)

// parseHuJSON parses one HuJSON (or JSON) file into a node tree. It returns
// nil and a diagnostic when the file is not valid HuJSON. Duplicate keys in
// one object are reported, and the first one is kept.
func parseHuJSON(file string, data []byte) (*node, Diagnostics) {
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, size := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			off += size
		}
		return nil, Diagnostics{{Pos: newLineIndex(file, data).pos(off), Message: "file is not valid UTF-8", Hint: "save the file as UTF-8"}}
	}
	v, err := hujson.Parse(data)
	if err != nil {
		d := Diagnostic{Pos: Pos{File: file}, Message: "syntax error: " + err.Error(),
			Hint: "HuJSON is JSON plus // and /* */ comments and trailing commas"}
		if m := hujsonErrRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			d.Pos.Line, d.Pos.Col = line, col
			d.Message = "syntax error: " + m[3]
		}
		return nil, Diagnostics{d}
	}
	p := &huParser{li: newLineIndex(file, data)}
	n := p.value(&v, "", 0)
	if p.tooDeep {
		return nil, p.diags
	}
	return n, p.diags
}

// maxDepth bounds the nesting of objects and lists in a document. Real
// configs nest a few levels; the bound keeps paths (and the work spent on
// them) small for hostile input.
const maxDepth = 64

type huParser struct {
	li      *lineIndex
	diags   Diagnostics
	tooDeep bool
}

func (p *huParser) value(v *hujson.Value, path string, depth int) *node {
	n := &node{pos: p.li.pos(v.StartOffset)}
	if depth > maxDepth {
		if !p.tooDeep {
			p.tooDeep = true
			p.diags = append(p.diags, Diagnostic{Pos: n.pos, Path: path,
				Message: fmt.Sprintf("objects and lists are nested more than %d levels deep", maxDepth)})
		}
		return n
	}
	switch t := v.Value.(type) {
	case *hujson.Object:
		n.kind = kObject
		seen := make(map[string]*node, len(t.Members))
		for i := range t.Members {
			m := &t.Members[i]
			lit, _ := m.Name.Value.(hujson.Literal)
			var key string
			if err := json.Unmarshal(lit, &key); err != nil {
				p.diags = append(p.diags, Diagnostic{Pos: p.li.pos(m.Name.StartOffset), Path: path,
					Message: fmt.Sprintf("invalid object key %s: %v", lit, err)})
				continue
			}
			kp := PathKey(path, key)
			val := p.value(&m.Value, kp, depth+1)
			val.pos = p.li.pos(m.Name.StartOffset)
			if prev, dup := seen[key]; dup {
				p.diags = append(p.diags, Diagnostic{Pos: val.pos, Path: kp,
					Message: fmt.Sprintf("duplicate key %q (first set at %s)", key, prev.pos),
					Hint:    "remove one of them; the first one is used"})
				continue
			}
			seen[key] = val
			n.fields = append(n.fields, &field{key: key, val: val})
		}
	case *hujson.Array:
		n.kind = kArray
		n.elems = make([]*node, len(t.Elements))
		for i := range t.Elements {
			n.elems[i] = p.value(&t.Elements[i], PathIndex(path, i), depth+1)
		}
	case hujson.Literal:
		switch t.Kind() {
		case 'n':
			n.kind = kNull
		case 't', 'f':
			n.kind = kBool
			n.b = t.Bool()
		case '0':
			n.kind = kNumber
			n.str = string(t)
		case '"':
			n.kind = kString
			if err := json.Unmarshal(t, &n.str); err != nil {
				p.diags = append(p.diags, Diagnostic{Pos: n.pos, Path: path, Message: fmt.Sprintf("invalid string %s: %v", t, err)})
			}
		}
	}
	return n
}

// merger merges the node trees of several files into one document.
type merger struct {
	diags Diagnostics
}

// merge merges src into dst (both at path). Objects merge key by key,
// recursively; any other pair of values must be equal.
func (m *merger) merge(dst, src *node, path string) {
	if dst.kind == kObject && src.kind == kObject {
		for _, f := range src.fields {
			if d := dst.get(f.key); d != nil {
				m.merge(d, f.val, PathKey(path, f.key))
				continue
			}
			dst.fields = append(dst.fields, f)
		}
		return
	}
	if equal(dst, src) {
		return
	}
	what := "value"
	if path == "" {
		what = "document"
	}
	m.diags = append(m.diags, Diagnostic{Pos: src.pos, Path: path,
		Message: fmt.Sprintf("conflicting %s: %s here, but %s at %s", what, src.describe(), dst.describe(), dst.pos),
		Hint:    "a key set in several files must have the same value everywhere (objects merge key by key; lists and scalars must be identical); keep one of them"})
}
