package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tailplane/tailplane/login"
	"github.com/tailplane/tailplane/store"
)

// TestLoginsEndpoints: listing and approving logins over HTTP, by role,
// with bad bodies, unknown, undeclared and completed logins; every
// approve call that passed the role check and the body is in the audit
// log.
func TestLoginsEndpoints(t *testing.T) {
	_, loop := startAPI(t)
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := login.New(context.Background(), login.Config{BaseURL: "http://tailplane.test", Store: st,
		LookupUser: func(_ context.Context, l string) (string, bool) {
			_, ok := loop.Applied().Users[l]
			return l, ok
		}})
	if err != nil {
		t.Fatal(err)
	}
	on := httptest.NewServer(Handler(Config{Pipeline: loop.Pipeline, Served: loop.Applied, Store: st, Logins: m}))
	t.Cleanup(on.Close)
	off := httptest.NewServer(Handler(Config{Pipeline: loop.Pipeline, Served: loop.Applied}))
	t.Cleanup(off.Close)
	ctx := context.Background()
	p, err := m.Start(ctx, "mkey:laptop", login.StartOptions{Device: "laptop (linux)"})
	if err != nil {
		t.Fatal(err)
	}
	done, err := m.Start(ctx, "mkey:other", login.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Approve(context.Background(), done.ID, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	approve := "/api/v1/logins/" + p.ID + "/approve"
	for _, tc := range []struct {
		name, method, url, path, token, body string
		want                                 int
		in                                   string // in the answer
	}{
		{"list needs a key", "GET", on.URL, "/api/v1/logins", "", "", http.StatusUnauthorized, "missing API key"},
		{"read key lists", "GET", on.URL, "/api/v1/logins", readKey, "", http.StatusOK, `"device": "laptop (linux)"`},
		{"read key cannot approve", "POST", on.URL, approve, readKey, `{"user": "bob@example.com"}`, http.StatusForbidden, "role admin"},
		{"not JSON", "POST", on.URL, approve, adminKey, `bob`, http.StatusBadRequest, `{\"user\": \"LOGIN\"}`},
		{"unknown field", "POST", on.URL, approve, adminKey, `{"user": "bob@example.com", "as": "x"}`, http.StatusBadRequest, "LOGIN"},
		{"no user", "POST", on.URL, approve, adminKey, `{}`, http.StatusBadRequest, "LOGIN"},
		{"undeclared user", "POST", on.URL, approve, adminKey, `{"user": "carol@example.com"}`, http.StatusUnprocessableEntity, "not declared"},
		{"unknown login", "POST", on.URL, "/api/v1/logins/NOPE2345/approve", adminKey, `{"user": "bob@example.com"}`, http.StatusNotFound, "logins list"},
		{"completed login", "POST", on.URL, "/api/v1/logins/" + done.ID + "/approve", adminKey, `{"user": "bob@example.com"}`, http.StatusConflict, "completed already"},
		{"approve", "POST", on.URL, approve, adminKey, `{"user": "bob@example.com"}`, http.StatusOK, `"user": "bob@example.com"`},
		{"list after", "GET", on.URL, "/api/v1/logins", readKey, "", http.StatusOK, "[]"},
		{"login off", "GET", off.URL, "/api/v1/logins", readKey, "", http.StatusNotFound, "not running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, tc.method, tc.url+tc.path, tc.token, []byte(tc.body), nil)
			if code != tc.want || !strings.Contains(string(body), tc.in) {
				t.Errorf("%s %s = %d %s, want %d with %q", tc.method, tc.path, code, body, tc.want, tc.in)
			}
		})
	}
	if r, err := m.Wait(context.Background(), p.ID, p.Machine); err != nil || r.User != "bob@example.com" {
		t.Errorf("the approved login: %+v, %v", r, err)
	}
	log, err := st.AuditEntries(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var audited []string
	for _, e := range slices.Backward(log) {
		result := "ok"
		if e.Result != "ok" {
			result = "error"
		}
		audited = append(audited, e.Who+" "+e.What+": "+result)
	}
	wantAudit := []string{
		"apikey:rw approve login " + p.ID + " as carol@example.com: error",
		"apikey:rw approve login NOPE2345 as bob@example.com: error",
		"apikey:rw approve login " + done.ID + " as bob@example.com: error",
		"apikey:rw approve login " + p.ID + " as bob@example.com: ok",
	}
	if diff := cmp.Diff(wantAudit, audited); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
	var listed []Login
	_, body := call(t, "GET", on.URL+"/api/v1/logins", readKey, nil, nil)
	if err := json.Unmarshal(body, &listed); err != nil {
		t.Errorf("list answer %s: %v", body, err)
	}
}
