package schema

import (
	_ "embed"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

//go:embed tailnet.cue
var schemaText []byte

// SchemaCUE returns the CUE schema of the tailnet document, as embedded in
// the binary. `tailplane schema` prints it.
func SchemaCUE() string { return string(schemaText) }

// compileSchema compiles the embedded schema into ctx. Each load uses a
// fresh cue.Context and compiles the schema anew (well under a millisecond):
// a long-lived context would keep every document ever validated alive, as
// CUE contexts never release what was compiled into them.
func compileSchema(ctx *cue.Context) cue.Value {
	v := ctx.CompileBytes(schemaText, cue.Filename(schemaFile))
	if err := v.Err(); err != nil {
		panic("schema: embedded tailnet.cue does not compile: " + err.Error())
	}
	return v
}

// validateDoc checks the merged document against the CUE schema. Problems
// are reported at field paths; the caller positions them through Source.
func validateDoc(root *node) Diagnostics {
	data := withoutPolicyNulls(root).appendJSON(nil)
	ctx := cuecontext.New()
	schema := compileSchema(ctx)
	v := ctx.CompileBytes(data, cue.Filename("document.json"))
	if err := v.Err(); err != nil {
		// Cannot happen for JSON we encoded ourselves; report it anyway.
		return Diagnostics{{Message: "internal error: merged document does not compile: " + err.Error()}}
	}
	u := schema.Unify(v)
	err := u.Validate(cue.Concrete(true))
	if err == nil {
		return nil
	}
	ds := cueDiags(err, "", root)
	for i := range ds {
		ds[i].Pos = Pos{} // positions in document.json mean nothing to the user
	}
	return ds
}

// withoutPolicyNulls returns the document with every null object member
// inside Tailscale's policy keys left out: Tailscale decodes such a null as
// "absent", so the schema need not spell out "| null" everywhere. The
// decoder sees the original document and does the same.
func withoutPolicyNulls(root *node) *node {
	if root.kind != kObject {
		return root
	}
	out := &node{kind: kObject, pos: root.pos}
	for _, f := range root.fields {
		switch classifyTopKey(f.key) {
		case keyPolicy, keyUnsupported:
			if f.val.kind == kNull {
				continue
			}
			out.fields = append(out.fields, &field{key: f.key, val: dropNulls(f.val)})
		default:
			out.fields = append(out.fields, f)
		}
	}
	return out
}

func dropNulls(n *node) *node {
	switch n.kind {
	case kObject:
		c := &node{kind: kObject, pos: n.pos}
		for _, f := range n.fields {
			if f.val.kind != kNull {
				c.fields = append(c.fields, &field{key: f.key, val: dropNulls(f.val)})
			}
		}
		return c
	case kArray:
		c := &node{kind: kArray, pos: n.pos, elems: make([]*node, len(n.elems))}
		for i, e := range n.elems {
			c.elems[i] = dropNulls(e)
		}
		return c
	}
	return n
}
