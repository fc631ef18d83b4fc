package localsvc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgresBin: initdb is found on PATH or in the newest version's
// directory; without either the error says how to install PostgreSQL.
func TestPostgresBin(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	lib := t.TempDir()
	if _, err := postgresBinIn(lib); err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("no PostgreSQL: error %v, want the install hint", err)
	}
	for _, v := range []string{"9", "15", "13"} {
		bin := filepath.Join(lib, v, "bin")
		os.MkdirAll(bin, 0o755)
		os.WriteFile(filepath.Join(bin, "initdb"), nil, 0o755)
	}
	if got, err := postgresBinIn(lib); err != nil || got != filepath.Join(lib, "15", "bin") {
		t.Errorf("postgresBinIn = %q, %v; want version 15's", got, err)
	}
}
