package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/tailplane/tailplane/schema"
)

// Action is what a Change does to one object.
type Action string

const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
)

// Change is one object created, updated or deleted by a plan.
type Change struct {
	Action Action          `json:"action"`
	Kind   Kind            `json:"kind"`
	Name   string          `json:"name"`
	Before json.RawMessage `json:"before,omitempty"` // nil for a create
	After  json.RawMessage `json:"after,omitempty"`  // nil for a delete
	Fields []FieldChange   `json:"fields,omitempty"` // what differs, for an update
	Impact []Impact        `json:"impact,omitempty"` // effects on registered nodes; see AssessImpact
}

// FieldChange is one difference inside an updated object's value.
type FieldChange struct {
	// Path locates the field: "reusable", `routes["10.0.0.0/8"]`, "[2]" (a
	// list element), or "" when the whole value changed.
	Path string `json:"path"`
	// Before and After are JSON values; nil when the field or element is
	// absent on that side.
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	// Element is true when Path names a list element that was inserted
	// (Before nil) or removed (After nil), rather than a field changed in place.
	Element bool `json:"element,omitempty"`
}

// Plan is the difference between an applied and a desired state.
type Plan struct {
	// Changes in plan order: by kind (see Kind), then name.
	Changes []Change
}

// Diff computes the plan that turns applied into desired. Neither input
// needs to be sorted; objects repeated under one kind and name count once
// (the first wins). The result is deterministic.
func Diff(applied, desired []Object) *Plan {
	a, d := sortedUnique(applied), sortedUnique(desired)
	p := &Plan{Changes: []Change{}}
	i, j := 0, 0
	for i < len(a) || j < len(d) {
		var c int
		switch {
		case i == len(a):
			c = 1
		case j == len(d):
			c = -1
		default:
			c = less(a[i], d[j])
		}
		switch {
		case c < 0:
			p.Changes = append(p.Changes, Change{Action: ActionDelete, Kind: a[i].Kind, Name: a[i].Name, Before: a[i].Value})
			i++
		case c > 0:
			p.Changes = append(p.Changes, Change{Action: ActionCreate, Kind: d[j].Kind, Name: d[j].Name, After: d[j].Value})
			j++
		default:
			if !equalJSON(a[i].Value, d[j].Value) {
				p.Changes = append(p.Changes, Change{
					Action: ActionUpdate, Kind: d[j].Kind, Name: d[j].Name,
					Before: a[i].Value, After: d[j].Value,
					Fields: diffValues(a[i].Value, d[j].Value),
				})
			}
			i++
			j++
		}
	}
	return p
}

func sortedUnique(objs []Object) []Object {
	out := slices.Clone(objs)
	slices.SortStableFunc(out, less)
	return slices.CompactFunc(out, func(x, y Object) bool { return x.Kind == y.Kind && x.Name == y.Name })
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return p == nil || len(p.Changes) == 0 }

// Counts returns how many objects the plan adds, changes and destroys.
func (p *Plan) Counts() (add, change, destroy int) {
	if p == nil {
		return
	}
	for _, c := range p.Changes {
		switch c.Action {
		case ActionCreate:
			add++
		case ActionUpdate:
			change++
		case ActionDelete:
			destroy++
		}
	}
	return
}

// Summary is the plan's last line: "Plan: 1 to add, 0 to change, 2 to
// destroy." or "No changes.".
func (p *Plan) Summary() string {
	if p.Empty() {
		return "No changes."
	}
	a, c, d := p.Counts()
	return fmt.Sprintf("Plan: %d to add, %d to change, %d to destroy.", a, c, d)
}

// diffValues lists the differences between two JSON values. Objects are
// compared field by field. A list that is an object's whole value (policy
// lists, group members, routes), or that holds objects or lists, is compared
// element by element (longest common subsequence); other lists, and
// scalars, change as a whole. Values keep their field order as stored.
func diffValues(before, after json.RawMessage) []FieldChange {
	if !json.Valid(before) || !json.Valid(after) {
		return []FieldChange{{Before: before, After: after}}
	}
	var out []FieldChange
	diffRaw("", compact(before), compact(after), true, &out)
	return out
}

// jsonType is the first byte of a compact JSON value: '{', '[', '"', 't',
// 'f', 'n' or a digit or '-'.
func jsonType(v json.RawMessage) byte {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

func diffRaw(path string, a, b json.RawMessage, top bool, out *[]FieldChange) {
	if bytes.Equal(a, b) {
		return
	}
	switch {
	case jsonType(a) == '{' && jsonType(b) == '{':
		fa, _ := orderedFields(a)
		fb, _ := orderedFields(b)
		inA := make(map[string]json.RawMessage, len(fa))
		for _, f := range fa {
			inA[f.key] = f.value
		}
		inB := make(map[string]bool, len(fb))
		// Fields in b's order, each compared with a; then fields only in a.
		for _, f := range fb {
			inB[f.key] = true
			p := schema.PathKey(path, f.key)
			if x, ok := inA[f.key]; ok {
				diffRaw(p, x, f.value, false, out)
			} else {
				*out = append(*out, FieldChange{Path: p, After: f.value})
			}
		}
		for _, f := range fa {
			if !inB[f.key] {
				*out = append(*out, FieldChange{Path: schema.PathKey(path, f.key), Before: f.value})
			}
		}
		return
	case jsonType(a) == '[' && jsonType(b) == '[':
		var ea, eb []json.RawMessage
		if json.Unmarshal(a, &ea) != nil || json.Unmarshal(b, &eb) != nil {
			break
		}
		if top || hasComposite(ea) || hasComposite(eb) {
			diffList(path, ea, eb, out)
			return
		}
	}
	*out = append(*out, FieldChange{Path: path, Before: a, After: b})
}

func hasComposite(xs []json.RawMessage) bool {
	for _, x := range xs {
		if t := jsonType(x); t == '{' || t == '[' {
			return true
		}
	}
	return false
}

// maxLCSCells bounds the work of one list diff; longer lists fall back to
// showing the whole list removed and re-added.
const maxLCSCells = 4_000_000

// diffList records removed and inserted elements of a list, in list order.
// Removed elements carry their index in a, inserted ones their index in b.
func diffList(path string, a, b []json.RawMessage, out *[]FieldChange) {
	ea := make([]string, len(a))
	eb := make([]string, len(b))
	for i, x := range a {
		ea[i] = string(x)
	}
	for i, y := range b {
		eb[i] = string(y)
	}
	// Trim the common prefix and suffix, then run LCS on the middle.
	pre := 0
	for pre < len(ea) && pre < len(eb) && ea[pre] == eb[pre] {
		pre++
	}
	suf := 0
	for suf < len(ea)-pre && suf < len(eb)-pre && ea[len(ea)-1-suf] == eb[len(eb)-1-suf] {
		suf++
	}
	ma, mb := ea[pre:len(ea)-suf], eb[pre:len(eb)-suf]
	n, m := len(ma), len(mb)
	rem := func(i int) {
		*out = append(*out, FieldChange{Path: schema.PathIndex(path, pre+i), Before: json.RawMessage(ma[i]), Element: true})
	}
	ins := func(j int) {
		*out = append(*out, FieldChange{Path: schema.PathIndex(path, pre+j), After: json.RawMessage(mb[j]), Element: true})
	}
	if (n+1)*(m+1) > maxLCSCells {
		for i := range n {
			rem(i)
		}
		for j := range m {
			ins(j)
		}
		return
	}
	// lcs[i][j] is the LCS length of ma[i:] and mb[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if ma[i] == mb[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && ma[i] == mb[j]:
			i++
			j++
		case j == m || (i < n && lcs[i+1][j] >= lcs[i][j+1]):
			rem(i)
			i++
		default:
			ins(j)
			j++
		}
	}
}
