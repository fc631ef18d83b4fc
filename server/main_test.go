package server

import (
	"os"
	"testing"

	"github.com/tailplane/tailplane/internal/testkit"
)

// TestMain stops the PostgreSQL cluster the replica tests share
// (testkit.SharedPostgres) once every test ran.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.StopSharedPostgres()
	os.Exit(code)
}
