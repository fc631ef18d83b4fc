package console

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitPos(t *testing.T) {
	for _, tc := range []struct{ pos, file, line string }{
		{"policy.hujson:11:3", "policy.hujson", "11"},
		{"dir/a.cue:7", "dir/a.cue", "7"},
		{"users.hujson", "users.hujson", ""},
		{"c:/odd:name.hujson:2:5", "c:/odd:name.hujson", "2"},
		{"x:y", "x:y", ""},
		{"x:-1:2", "x:-1", "2"},
	} {
		file, line := splitPos(tc.pos)
		if diff := cmp.Diff([]string{tc.file, tc.line}, []string{file, line}); diff != "" {
			t.Errorf("splitPos(%q) (-want +got):\n%s", tc.pos, diff)
		}
	}
}

// FuzzSplitPos checks that any position splits into a prefix of it and
// a line that is a number or empty.
func FuzzSplitPos(f *testing.F) {
	f.Fuzz(func(t *testing.T, pos string) {
		file, line := splitPos(pos)
		if !strings.HasPrefix(pos, file) {
			t.Errorf("splitPos(%q): file %q is not a prefix", pos, file)
		}
		if line != "" && !isNumber(line) {
			t.Errorf("splitPos(%q): line %q is not a number", pos, line)
		}
		if line == "" && file != pos && !strings.HasPrefix(pos[len(file):], ":") {
			t.Errorf("splitPos(%q) = %q, %q", pos, file, line)
		}
	})
}
