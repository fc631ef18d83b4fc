package testkit

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCopyFiles(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for name, body := range map[string]string{"a.hujson": "{}", "b.cue": "x: 1"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	CopyFiles(t, src, dst)
	got := map[string]string{}
	ents, _ := os.ReadDir(dst)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dst, e.Name()))
		got[e.Name()] = string(b)
	}
	if diff := cmp.Diff(map[string]string{"a.hujson": "{}", "b.cue": "x: 1"}, got); diff != "" {
		t.Errorf("copied files (-want +got):\n%s", diff)
	}
}
