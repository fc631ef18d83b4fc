package reconcile

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestKindTable: every kind in the table encodes and decodes, appears in
// sampleTailnet (so the round-trip tests cover it) and gives back, decoded
// on its own and encoded again, exactly the objects it was decoded from.
func TestKindTable(t *testing.T) {
	sample := Desired(sampleTailnet())
	seen := map[Kind]bool{}
	for _, k := range kinds {
		t.Run(string(k.kind), func(t *testing.T) {
			if seen[k.kind] {
				t.Fatalf("kind %s is in the table twice", k.kind)
			}
			seen[k.kind] = true
			if k.encode == nil || k.decode == nil {
				t.Fatalf("kind %s lacks a direction (encode %v, decode %v); build it with singleton, entries, list or policyKind",
					k.kind, k.encode != nil, k.decode != nil)
			}
			var objs []Object
			for _, o := range sample {
				if o.Kind == k.kind {
					objs = append(objs, o)
				}
			}
			if len(objs) == 0 {
				t.Fatalf("sampleTailnet has no %s object (hint: add one, so the round-trip tests cover the kind)", k.kind)
			}
			tn, err := tailnetFromObjects(objs)
			if err != nil {
				t.Fatal(err)
			}
			var again []Object
			for _, o := range Desired(tn) {
				if o.Kind == k.kind {
					again = append(again, o)
				}
			}
			if diff := cmp.Diff(objs, again); diff != "" {
				t.Errorf("%s objects decoded and encoded again (-sample +again):\n%s", k.kind, diff)
			}
		})
	}
}
