package reconcile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// JSONFormatVersion is the "formatVersion" of WriteJSON's output. It grows
// only when a field changes meaning or disappears; new fields may appear
// within a version.
const JSONFormatVersion = 1

// planJSON is the document WriteJSON writes; docs/plan.md describes it.
type planJSON struct {
	FormatVersion int         `json:"formatVersion"`
	Changes       []Change    `json:"changes"`
	Summary       summaryJSON `json:"summary"`
}

type summaryJSON struct {
	Add     int    `json:"add"`
	Change  int    `json:"change"`
	Destroy int    `json:"destroy"`
	Text    string `json:"text"` // Plan.Summary()
}

// WriteJSON writes the plan as an indented JSON document with secrets
// masked (see maskSecret). The shape is documented in docs/plan.md.
func (p *Plan) WriteJSON(w io.Writer) error {
	doc := planJSON{FormatVersion: JSONFormatVersion, Changes: []Change{}}
	if p != nil {
		for _, c := range p.Changes {
			doc.Changes = append(doc.Changes, masked(c))
		}
	}
	doc.Summary.Add, doc.Summary.Change, doc.Summary.Destroy = p.Counts()
	doc.Summary.Text = p.Summary()
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("reconcile: encoding plan: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// WriteText writes the plan for people, one line per object:
//
//   - user alice@example.com: name "Alice", role "admin"
//     ~ authKey ci: reusable false → true
//
//   - dnsRecord nas.example.internal A 192.168.1.10
//     ! 2 nodes will be logged out: bob-laptop, bob-phone
//
//     Plan: 1 to add, 1 to change, 1 to destroy.
//
// or just "No changes.". Secrets are masked.
func (p *Plan) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if !p.Empty() {
		for _, c := range p.Changes {
			writeChange(bw, masked(c))
		}
		bw.WriteString("\n")
	}
	bw.WriteString(p.Summary())
	bw.WriteString("\n")
	return bw.Flush()
}

func writeChange(w *bufio.Writer, c Change) {
	head := c.Kind.String() + " " + c.Name
	switch c.Action {
	case ActionCreate:
		fmt.Fprintf(w, "+ %s", head)
		if lines, inline := describe(c.After); inline != "" {
			fmt.Fprintf(w, ": %s\n", inline)
		} else {
			w.WriteString("\n")
			for _, l := range lines {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	case ActionDelete:
		fmt.Fprintf(w, "- %s\n", head)
	case ActionUpdate:
		if len(c.Fields) == 1 && !c.Fields[0].Element {
			fmt.Fprintf(w, "~ %s: %s\n", head, fieldLine(c.Fields[0], " "))
			break
		}
		fmt.Fprintf(w, "~ %s\n", head)
		for _, f := range c.Fields {
			fmt.Fprintf(w, "    %s\n", fieldLine(f, ": "))
		}
	}
	for _, im := range c.Impact {
		fmt.Fprintf(w, "    ! %s\n", impactLine(im))
	}
}

// String returns the kind's name as plans show it.
func (k Kind) String() string { return string(k) }

// fieldLine renders one field change; sep goes between path and values.
func fieldLine(f FieldChange, sep string) string {
	if f.Element {
		if f.After == nil {
			return "- " + f.Path + " " + string(f.Before)
		}
		return "+ " + f.Path + " " + string(f.After)
	}
	vals := showValue(f.Before) + " → " + showValue(f.After)
	if f.Path == "" {
		return vals
	}
	return f.Path + sep + vals
}

func showValue(v json.RawMessage) string {
	if v == nil {
		return "(unset)"
	}
	return string(v)
}

func impactLine(im Impact) string {
	if len(im.Nodes) == 0 {
		return im.Message
	}
	names := im.Nodes
	more := ""
	if len(names) > maxImpactNames {
		more = fmt.Sprintf(" and %d more", len(names)-maxImpactNames)
		names = names[:maxImpactNames]
	}
	return im.Message + ": " + strings.Join(names, ", ") + more
}

// describe summarizes a created object's value: inline for objects
// (non-zero fields as `key value`, in field order) and simple values, or as
// one line per element for lists of objects.
func describe(v json.RawMessage) (lines []string, inline string) {
	if fields, ok := orderedFields(v); ok {
		var parts []string
		for _, f := range fields {
			if !isZeroJSON(f.value) {
				parts = append(parts, f.key+" "+string(f.value))
			}
		}
		if len(parts) == 0 {
			return nil, "(all fields empty)"
		}
		return nil, strings.Join(parts, ", ")
	}
	var elems []json.RawMessage
	if json.Unmarshal(v, &elems) == nil && len(elems) > 0 && bytes.HasPrefix(bytes.TrimSpace(elems[0]), []byte("{")) {
		for i, e := range elems {
			lines = append(lines, fmt.Sprintf("+ [%d] %s", i, compact(e)))
		}
		return lines, ""
	}
	return nil, string(compact(v))
}

type jsonField struct {
	key   string
	value json.RawMessage
}

// orderedFields splits a JSON object into its fields, keeping their order.
func orderedFields(v json.RawMessage) ([]jsonField, bool) {
	dec := json.NewDecoder(bytes.NewReader(v))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var out []jsonField
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := t.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, false
		}
		out = append(out, jsonField{key, compact(val)})
	}
	return out, true
}

func isZeroJSON(v json.RawMessage) bool {
	switch string(v) {
	case `""`, `0`, `false`, `[]`, `{}`, `null`:
		return true
	}
	return false
}

func compact(v json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return v
	}
	return b.Bytes()
}

// masked returns c with secret hashes shortened by maskSecret, in its
// values and field changes. Only authKey and apiKey values hold secrets.
func masked(c Change) Change {
	if c.Kind != KindAuthKey && c.Kind != KindAPIKey {
		return c
	}
	c.Before, c.After = maskValue(c.Before), maskValue(c.After)
	fields := make([]FieldChange, len(c.Fields))
	for i, f := range c.Fields {
		if f.Path == "secretHash" {
			f.Before, f.After = maskRaw(f.Before), maskRaw(f.After)
		}
		fields[i] = f
	}
	if c.Fields != nil {
		c.Fields = fields
	}
	return c
}

// MaskSecrets returns a copy of objs with the secret hashes of authKey and
// apiKey objects shortened as plans show them (see maskSecret); other
// objects are shared, not copied. Diffing two masked lists compares
// secrets by their shown prefix only, so a rotation shows as a change
// unless the old and new hash share their first 8 hex digits.
func MaskSecrets(objs []Object) []Object {
	if objs == nil {
		return nil
	}
	out := make([]Object, len(objs))
	for i, o := range objs {
		if o.Kind == KindAuthKey || o.Kind == KindAPIKey {
			o.Value = maskValue(o.Value)
		}
		out[i] = o
	}
	return out
}

// maskValue masks the secretHash field of an object value, keeping the
// other fields and their order.
func maskValue(v json.RawMessage) json.RawMessage {
	fields, ok := orderedFields(v)
	if !ok {
		return v
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.key)
		b.Write(k)
		b.WriteByte(':')
		if f.key == "secretHash" {
			b.Write(maskRaw(f.value))
		} else {
			b.Write(f.value)
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

func maskRaw(v json.RawMessage) json.RawMessage {
	var s string
	if v == nil || json.Unmarshal(v, &s) != nil {
		return v
	}
	out, _ := json.Marshal(maskSecret(s))
	return out
}

// maskSecret shortens a secret hash for display: "sha256:538b36c9…" (the
// algorithm and the first 8 hex digits, enough to tell keys apart and to
// see a rotation), "" for none, and "(sensitive)" for anything else.
func maskSecret(s string) string {
	if s == "" {
		return ""
	}
	if hex, ok := strings.CutPrefix(s, "sha256:"); ok && len(hex) > 8 {
		return "sha256:" + hex[:8] + "…"
	}
	return "(sensitive)"
}
