package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailplane/tailplane/admin"
	"github.com/tailplane/tailplane/internal/testkit"
)

const testAdminKey = "tpk-cli-admin-0123456789"

// Without an identity provider, `tailscale up` waits while an admin finds
// its login with `tailplane logins list` and approves it with `tailplane
// logins approve`; the device is then on the tailnet as that user.
func TestLoginsApproveTailscaled(t *testing.T) {
	bins := testkit.TailscaledBinaries(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	configRepo(t, dir)
	adminKeys := `{"apiKeys": {"ops": {"role": "admin", "secretHash": "` + testkit.SecretHash(testAdminKey) + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "admin.hujson"), []byte(adminKeys), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startServe(t, "--config", dir, "--state-dir", t.TempDir(), "--listen", addr)
	url := "http://" + addr
	getKey(t, http.DefaultClient, url)
	reader := map[string]string{envAPIKey: testAPIKey}
	operator := map[string]string{envAPIKey: testAdminKey}

	laptop := testkit.StartTailscaled(t, ctx, bins, filepath.Join(t.TempDir(), "laptop"))
	up := testkit.StartTailscaleUp(t, ctx, laptop, url, "--hostname=laptop")
	res, err := http.Get(up.AuthURL(ctx, 1))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()

	code, out, errs := runToolEnv(t, reader, "logins", "list", "--server", url)
	if code != exitOK || !strings.Contains(out, "laptop (linux)") || !strings.HasPrefix(out, "ID ") {
		t.Fatalf("logins list: exit %d\n%s%s\nwant a table with the laptop", code, out, errs)
	}
	code, out, errs = runToolEnv(t, reader, "logins", "list", "--server", url, "--json")
	var logins []admin.Login
	if err := json.Unmarshal([]byte(out), &logins); code != exitOK || err != nil || len(logins) != 1 {
		t.Fatalf("logins list --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	id := logins[0].ID
	if !strings.Contains(string(page), "tailplane logins approve "+id) {
		t.Errorf("the login page does not show the command with login ID %s:\n%s", id, page)
	}

	refusals := []struct {
		name     string
		env      map[string]string
		id, user string
		code     int
		want     string
	}{
		{"read key", reader, id, "bob@example.com", exitAPIDenied, "needs role admin"},
		{"undeclared user", operator, id, "carol@example.com", exitProblems, "not declared under users"},
		{"unknown login", operator, "AAAAAAAA", "bob@example.com", exitAPINotFound, "logins list"},
	}
	for _, r := range refusals {
		code, out, errs := runToolEnv(t, r.env, "logins", "approve", r.id, "--user", r.user, "--server", url)
		if code != r.code || !strings.Contains(errs, r.want) {
			t.Errorf("%s: logins approve: exit %d\n%s%s\nwant exit %d saying %q", r.name, code, out, errs, r.code, r.want)
		}
	}
	code, out, errs = runToolEnv(t, operator, "logins", "approve", strings.ToLower(id), "--user", "bob@example.com", "--server", url)
	if code != exitOK || !strings.Contains(out, "approved login") {
		t.Fatalf("logins approve: exit %d\n%s%s", code, out, errs)
	}
	if out, err := up.Wait(ctx); err != nil {
		t.Fatalf("tailscale up after the approval: %v\n%s", err, out)
	}
	st, err := testkit.TailscaleStatus(ctx, laptop)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.User[st.Self.UserID].LoginName; got != "bob@example.com" {
		t.Errorf("the approved node's user is %q, want bob@example.com", got)
	}
	if code, out, _ := runToolEnv(t, reader, "logins", "list", "--server", url); code != exitOK || !strings.Contains(out, "no open logins") {
		t.Errorf("logins list after the approval: exit %d\n%s", code, out)
	}
}

func TestLoginsUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no server", []string{"logins", "list"}, "--server URL is required"},
		{"no subcommand", []string{"logins", "--server", "http://x"}, "say list or approve"},
		{"approve without user", []string{"logins", "approve", "ABCD", "--server", "http://x"}, "--user LOGIN"},
		{"approve without ID", []string{"logins", "approve", "--user", "a@b", "--server", "http://x"}, "one login ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runToolEnv(t, nil, tt.args...)
			if code != exitUsage || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d saying %q", code, errs, exitUsage, tt.want)
			}
		})
	}
}
