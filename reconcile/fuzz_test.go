package reconcile

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDiffValues checks that any two JSON values diff without panicking
// and, for values in canonical form (as stored: no duplicate keys, one
// spelling per string), that the diff is empty exactly when the values are
// equal and that every reported side is valid JSON.
func FuzzDiffValues(f *testing.F) {
	f.Add(`{"a":1,"b":[1,2]}`, `{"a":2,"b":[2,3],"c":{}}`)
	f.Add(`[{"x":1},{"x":2}]`, `[{"x":0},{"x":2},{"x":3}]`)
	f.Add(`"s"`, `["s"]`)
	f.Fuzz(func(t *testing.T, a, b string) {
		if !json.Valid([]byte(a)) || !json.Valid([]byte(b)) {
			return
		}
		diffValues(json.RawMessage(a), json.RawMessage(b)) // must not panic
		a, b = canonicalJSON(t, a), canonicalJSON(t, b)
		fields := diffValues(json.RawMessage(a), json.RawMessage(b))
		equal := a == b
		if equal != (len(fields) == 0) {
			t.Fatalf("diff of %s and %s: %d fields, values equal=%v", a, b, len(fields), equal)
		}
		for _, fc := range fields {
			for _, v := range []json.RawMessage{fc.Before, fc.After} {
				if v != nil && !json.Valid(v) {
					t.Fatalf("field %q has invalid JSON %q", fc.Path, v)
				}
			}
			if fc.Before == nil && fc.After == nil {
				t.Fatalf("field %q has neither side", fc.Path)
			}
		}
	})
}

// FuzzLoadObject feeds arbitrary stored rows to LoadApplied's decoder: it
// must fail cleanly or give a Tailnet whose objects decode to themselves.
func FuzzLoadObject(f *testing.F) {
	for _, o := range Desired(sampleTailnet()) {
		f.Add(string(o.Kind), o.Name, string(o.Value))
	}
	f.Add("user", "x", `{"name":1}`)
	f.Add("authKey", "k", `{"expires":"yesterday"}`)
	f.Fuzz(func(t *testing.T, kind, name, value string) {
		tn, err := tailnetFromObjects([]Object{{Kind: Kind(kind), Name: name, Value: json.RawMessage(value)}})
		if err != nil {
			return
		}
		objs := Desired(tn)
		again, err := tailnetFromObjects(objs)
		if err != nil {
			t.Fatalf("objects of a decoded tailnet do not decode: %v\n%v", err, objs)
		}
		if diff := cmp.Diff(objs, Desired(again)); diff != "" {
			t.Fatalf("decode/encode is not stable (-first +second):\n%s", diff)
		}
	})
}

// FuzzParseDuration checks that stored durations parse without panicking
// and that what formatDuration writes parses back.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "180d", "1h30m0s", "-5d", "99999999999999999d", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err != nil {
			return
		}
		back, err := parseDuration(formatDuration(d))
		if err != nil || back != d {
			t.Fatalf("parseDuration(%q) = %v, but %q parses to %v, %v", s, d, formatDuration(d), back, err)
		}
	})
}

// canonicalJSON re-encodes a valid JSON value the way Desired stores values:
// numbers as written, sorted keys (the last duplicate wins), escapes normalized.
func canonicalJSON(t *testing.T, s string) string {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("valid JSON %q does not decode: %v", s, err)
	}
	b, err := marshal(v)
	if err != nil {
		t.Fatalf("re-encoding %q: %v", s, err)
	}
	return string(b)
}
