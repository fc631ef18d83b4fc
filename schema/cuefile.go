package schema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	"github.com/tailscale/hujson"
)

// schemaFile is the file name CUE positions carry for the embedded schema;
// positions inside it are never shown to users.
const schemaFile = "<tailplane schema>"

// cuePackage is the package name CUE files in a config repository use.
const cuePackage = "tailnet"

// srcFile is one input file.
type srcFile struct {
	name string // slash-separated path relative to the config root
	data []byte
}

// parseCUE builds all CUE files of the repository as one package instance
// and converts its concrete value into a node tree. The definitions of the
// embedded schema (#User, #AuthKey, ...) are part of the instance so files
// may use them; the schema's constraints on the top-level keys are not: the
// merged document is validated as a whole later, so CUE and HuJSON files get
// the same checks and messages.
//
// The HuJSON/JSON files in data (already parsed without error) join the
// instance too, so CUE files can refer to what they declare, e.g. compute a
// group from the users of users.hujson. If that evaluation fails, the CUE
// files are evaluated alone: conflicts with HuJSON files are then reported
// by the loader's merge, with its messages. parseCUE returns nil when the
// CUE files could not be evaluated.
func parseCUE(files, data []srcFile) (*node, Diagnostics) {
	asts, diags := parseCUEFiles(files)
	if len(asts) == 0 {
		return nil, diags
	}
	var dataASTs []*ast.File
	for _, f := range data {
		if af := hujsonAsCUE(f); af != nil {
			dataASTs = append(dataASTs, af)
		}
	}
	v, err := evalCUE(asts, dataASTs)
	if err != nil && len(dataASTs) > 0 {
		again, _ := parseCUEFiles(files) // evaluation may annotate the syntax trees
		if v2, err2 := evalCUE(again, nil); err2 == nil {
			v, err = v2, nil
		}
	}
	if err != nil {
		return nil, append(diags, cueDiags(err, "", nil)...)
	}
	// Convert only what the CUE files declare: the HuJSON files' own keys
	// are in the loader's trees already, and walking them costs time.
	w := cueWalker{topKeys: declaredTopKeys(asts)}
	n := w.value(v, "", Pos{})
	return n, append(diags, w.diags...)
}

// declaredTopKeys returns the top-level field names the CUE files declare,
// or nil (all of them) when a file may produce top-level fields in a way
// the syntax does not show, such as an embedding or a comprehension.
func declaredTopKeys(asts []*ast.File) map[string]bool {
	keys := map[string]bool{}
	for _, f := range asts {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.Package, *ast.ImportDecl, *ast.LetClause, *ast.CommentGroup, *ast.Attribute:
			case *ast.Field:
				name, _, err := ast.LabelName(d.Label)
				if err != nil {
					return nil
				}
				keys[name] = true
			default:
				return nil
			}
		}
	}
	return keys
}

// parseCUEFiles parses the CUE files of the repository, reporting syntax
// errors and files of another package.
func parseCUEFiles(files []srcFile) ([]*ast.File, Diagnostics) {
	var asts []*ast.File
	var diags Diagnostics
	for _, f := range files {
		af, err := parser.ParseFile(f.name, f.data)
		if err != nil {
			ds := cueDiags(err, "syntax error: ", nil)
			for i := range ds {
				ds[i].Pos = clampPos(ds[i].Pos, f.data)
			}
			diags = append(diags, ds...)
			continue
		}
		if d := astDepth(af); d > maxDepth {
			diags = append(diags, Diagnostic{Pos: Pos{File: f.name, Line: 1, Col: 1},
				Message: fmt.Sprintf("structs and lists are nested more than %d levels deep", maxDepth)})
			continue
		}
		switch pkg := af.PackageName(); pkg {
		case cuePackage:
		case "":
			af.Decls = append([]ast.Decl{&ast.Package{Name: ast.NewIdent(cuePackage)}}, af.Decls...)
		default:
			diags = append(diags, Diagnostic{Pos: Pos{File: f.name, Line: 1, Col: 1},
				Message: fmt.Sprintf("CUE file is in package %q; all CUE files of a config repository must be in package %q", pkg, cuePackage),
				Hint:    "start the file with `package " + cuePackage + "`"})
			continue
		}
		asts = append(asts, af)
	}
	return asts, diags
}

// evalCUE evaluates the CUE files and data files with the schema's
// definitions as one package instance.
func evalCUE(asts, data []*ast.File) (cue.Value, error) {
	inst := build.NewContext().NewInstance("", nil)
	sf, err := parser.ParseFile(schemaFile, schemaText)
	if err != nil {
		panic("schema: embedded tailnet.cue does not parse: " + err.Error())
	}
	sf.Decls = slices.DeleteFunc(sf.Decls, func(d ast.Decl) bool {
		f, ok := d.(*ast.Field)
		if !ok {
			return false
		}
		id, ok := f.Label.(*ast.Ident)
		return !ok || !strings.HasPrefix(id.Name, "#")
	})
	if err := inst.AddSyntax(sf); err != nil {
		panic("schema: embedded tailnet.cue: " + err.Error())
	}
	for _, af := range slices.Concat(asts, data) {
		if err := inst.AddSyntax(af); err != nil {
			return cue.Value{}, err
		}
	}
	v := cuecontext.New().BuildInstance(inst)
	return v, v.Validate()
}

// hujsonAsCUE turns a HuJSON file into a CUE file of package tailnet whose
// top-level keys are declared as CUE fields, so that CUE files can refer to
// them (`users`, `tagOwners`, ...). Offsets are preserved, so positions in
// CUE errors point into the HuJSON file. It returns nil if CUE cannot parse
// the standardized JSON.
func hujsonAsCUE(f srcFile) *ast.File {
	v, err := hujson.Parse(f.data)
	if err != nil {
		return nil
	}
	v.Standardize() // comments and trailing commas become spaces
	af, err := parser.ParseFile(f.name, v.Pack())
	if err != nil || len(af.Decls) != 1 {
		return nil
	}
	emb, ok := af.Decls[0].(*ast.EmbedDecl)
	if !ok {
		return nil
	}
	obj, ok := emb.Expr.(*ast.StructLit)
	if !ok {
		return nil
	}
	decls := []ast.Decl{&ast.Package{Name: ast.NewIdent(cuePackage)}}
	for _, el := range obj.Elts {
		if fd, ok := el.(*ast.Field); ok {
			if lit, ok := fd.Label.(*ast.BasicLit); ok {
				key, err := strconv.Unquote(lit.Value)
				if err == nil && classifyTopKey(key) == keyUnknown {
					key = tailscaleCaseKey(key)
				}
				if err == nil && key != "" && classifyTopKey(key) != keyUnknown {
					id := ast.NewIdent(key)
					id.NamePos = lit.ValuePos
					fd.Label = id
				}
			}
		}
		decls = append(decls, el)
	}
	af.Decls = decls
	return af
}

// cueDiags converts a CUE error into diagnostics positioned in the user's
// files. root, when non-nil, translates CUE paths into field paths.
func cueDiags(err error, prefix string, root *node) Diagnostics {
	var out Diagnostics
	seen := make(map[string]bool)
	errs := errors.Errors(err)
	alts := disjunctionAlternatives(errs)
	for _, e := range errs {
		format, args := e.Msg()
		msg := prefix + fmt.Sprintf(format, args...)
		if strings.HasSuffix(format, "errors in empty disjunction:") {
			continue
		}
		if a, ok := alts[strings.Join(e.Path(), "\x00")]; ok {
			msg = fmt.Sprintf("%s is not allowed here (want %s)", a.got, strings.Join(a.want, " or "))
		} else if strings.Contains(format, "(mismatched types %s and %s)") && len(args) == 4 && root != nil {
			if n := lookupCUEPath(root, e.Path()); n != nil {
				want := fmt.Sprint(args[3])
				if isCUEKind(n.kind, want) {
					want = fmt.Sprint(args[2])
				}
				msg = fmt.Sprintf("expected %s, got %s", want, n.describe())
			}
		}
		path := ""
		if root != nil {
			path = nodePath(root, e.Path())
		} else {
			path = cuePath(e.Path())
		}
		var pos Pos
		var also []string
		for _, p := range append([]token.Pos{e.Position()}, e.InputPositions()...) {
			pp := userPos(p)
			switch {
			case !pp.IsValid() || pp == pos:
			case !pos.IsValid():
				pos = pp
			case !slices.Contains(also, pp.String()):
				also = append(also, pp.String())
			}
		}
		// With root set, the positions are in the encoded merged document
		// and mean nothing to the user; the caller positions by path.
		if len(also) > 0 && root == nil && alts[strings.Join(e.Path(), "\x00")] == nil {
			msg += " (also at " + strings.Join(also, ", ") + ")"
		}
		key := pos.String() + "\x00" + path + "\x00" + msg
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, Diagnostic{Pos: pos, Path: path, Message: msg})
	}
	return out
}

type alternatives struct {
	got  string
	want []string
}

// disjunctionAlternatives finds, by path, the errors CUE reports for a value
// that matches no alternative of a disjunction such as "owner" | "admin":
// one "conflicting values A and V" per alternative A. They are folded into
// one message listing the alternatives.
func disjunctionAlternatives(errs []errors.Error) map[string]*alternatives {
	out := map[string]*alternatives{}
	bad := map[string]bool{}
	disj := map[string]bool{}
	for _, e := range errs {
		if format, _ := e.Msg(); strings.HasSuffix(format, "errors in empty disjunction:") {
			disj[strings.Join(e.Path(), "\x00")] = true
		}
	}
	for _, e := range errs {
		format, args := e.Msg()
		key := strings.Join(e.Path(), "\x00")
		if !disj[key] || strings.HasSuffix(format, "errors in empty disjunction:") {
			continue
		}
		if format != "conflicting values %v and %v" && format != "conflicting values %s and %s" || len(args) != 2 {
			bad[key] = true
			continue
		}
		want, got := fmt.Sprint(args[0]), fmt.Sprint(args[1])
		a := out[key]
		if a == nil {
			a = &alternatives{got: got}
			out[key] = a
		}
		if a.got != got {
			bad[key] = true
		}
		if !slices.Contains(a.want, want) {
			a.want = append(a.want, want)
		}
	}
	for k, a := range out {
		if bad[k] {
			delete(out, k)
		} else {
			slices.Sort(a.want)
		}
	}
	return out
}

// astDepth returns how deeply structs and lists nest in f.
func astDepth(f *ast.File) int {
	depth, max := 0, 0
	ast.Walk(f, func(n ast.Node) bool {
		switch n.(type) {
		case *ast.StructLit, *ast.ListLit:
			depth++
			if depth > max {
				max = depth
			}
		}
		return true
	}, func(n ast.Node) {
		switch n.(type) {
		case *ast.StructLit, *ast.ListLit:
			depth--
		}
	})
	return max
}

// clampPos moves a position past the end of its line (CUE reports the end
// of file there) back to the end of that line.
func clampPos(p Pos, data []byte) Pos {
	lines := strings.Split(string(data), "\n")
	if p.Line < 1 || p.Line > len(lines) {
		return p
	}
	if n := len(lines[p.Line-1]) + 1; p.Col > n {
		p.Col = n
	}
	return p
}

// userPos converts a CUE position to a Pos, or the zero Pos if it is not in
// a user's file.
func userPos(p token.Pos) Pos {
	if !p.IsValid() || p.Filename() == "" || p.Filename() == schemaFile {
		return Pos{}
	}
	return Pos{File: p.Filename(), Line: p.Line(), Col: p.Column()}
}

// cueLabel turns one element of a CUE error path into a plain key.
func cueLabel(s string) string {
	if strings.HasPrefix(s, `"`) {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
	}
	return s
}

// cuePath converts a CUE error path to a field path without knowing the
// document: numeric elements are taken as list indexes.
func cuePath(sel []string) string {
	path := ""
	for _, s := range sel {
		if i, err := strconv.Atoi(s); err == nil && i >= 0 {
			path = PathIndex(path, i)
			continue
		}
		path = PathKey(path, cueLabel(s))
	}
	return path
}

// nodePath converts a CUE error path to a field path, using the document
// to tell list indexes from object keys.
func nodePath(n *node, sel []string) string {
	path := ""
	for _, s := range sel {
		if n != nil && n.kind == kArray {
			if i, err := strconv.Atoi(s); err == nil && i >= 0 {
				path = PathIndex(path, i)
				if i < len(n.elems) {
					n = n.elems[i]
				} else {
					n = nil
				}
				continue
			}
		}
		key := cueLabel(s)
		path = PathKey(path, key)
		n = n.get(key)
	}
	return path
}

// lookupCUEPath returns the node at a CUE error path, or nil.
func lookupCUEPath(n *node, sel []string) *node {
	for _, s := range sel {
		if n == nil {
			return nil
		}
		if n.kind == kArray {
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(n.elems) {
				return nil
			}
			n = n.elems[i]
			continue
		}
		n = n.get(cueLabel(s))
	}
	return n
}

// isCUEKind reports whether name is how CUE error messages call kind k.
func isCUEKind(k kind, name string) bool {
	switch k {
	case kObject:
		return name == "struct"
	case kArray:
		return name == "list"
	case kNumber:
		return name == "int" || name == "float" || name == "number"
	}
	return name == k.String()
}

// cueWalker converts a concrete cue.Value into a node tree.
type cueWalker struct {
	topKeys map[string]bool // if non-nil, the only top-level fields to convert
	diags   Diagnostics
}

func (w *cueWalker) value(v cue.Value, path string, parent Pos) *node {
	n := &node{pos: cueValuePos(v, parent)}
	if d, ok := v.Default(); ok {
		v = d
	}
	switch v.Kind() {
	case cue.StructKind:
		n.kind = kObject
		it, err := v.Fields()
		if err != nil {
			w.errorf(n.pos, path, "%v", err)
			return n
		}
		for it.Next() {
			if it.FieldType()&cue.RequiredConstraint != 0 {
				continue // a schema constraint, not a value
			}
			key := it.Selector().Unquoted()
			if path == "" && w.topKeys != nil && !w.topKeys[key] {
				continue
			}
			n.fields = append(n.fields, &field{key: key, val: w.value(it.Value(), PathKey(path, key), n.pos)})
		}
	case cue.ListKind:
		n.kind = kArray
		it, err := v.List()
		if err != nil {
			w.errorf(n.pos, path, "%v", err)
			return n
		}
		for i := 0; it.Next(); i++ {
			n.elems = append(n.elems, w.value(it.Value(), PathIndex(path, i), n.pos))
		}
	case cue.StringKind:
		n.kind = kString
		n.str, _ = v.String()
	case cue.BoolKind:
		n.kind = kBool
		n.b, _ = v.Bool()
	case cue.IntKind, cue.FloatKind, cue.NumberKind:
		n.kind = kNumber
		b, err := v.MarshalJSON()
		if err != nil {
			w.errorf(n.pos, path, "%v", err)
		}
		n.str = string(b)
	case cue.NullKind:
		n.kind = kNull
	case cue.BytesKind:
		n.kind = kNull
		w.errorf(n.pos, path, "bytes values are not supported")
		w.diags[len(w.diags)-1].Hint = "use a string"
	default:
		n.kind = kNull
		if err := v.Err(); err != nil {
			msg := err.Error()
			if es := errors.Errors(err); len(es) > 0 {
				format, args := es[0].Msg()
				msg = fmt.Sprintf(format, args...)
			}
			w.errorf(n.pos, path, "cannot evaluate: %s", msg)
			return n
		}
		w.errorf(n.pos, path, "value is not concrete (%v)", v.IncompleteKind())
		w.diags[len(w.diags)-1].Hint = "give a concrete value, e.g. a string or number instead of a type or constraint"
	}
	return n
}

func (w *cueWalker) errorf(pos Pos, path, format string, args ...any) {
	w.diags = append(w.diags, Diagnostic{Pos: pos, Path: path, Message: fmt.Sprintf(format, args...)})
}

// cueValuePos finds where v was declared in a user's file: the first of
// its conjuncts that lies in a user's file, else parent.
func cueValuePos(v cue.Value, parent Pos) Pos {
	_, parts := v.Expr()
	for _, p := range parts {
		if pp := userPos(p.Pos()); pp.IsValid() {
			return pp
		}
	}
	if pp := userPos(v.Pos()); pp.IsValid() {
		return pp
	}
	return parent
}
