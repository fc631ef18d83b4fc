package gitsync

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhookHandler(t *testing.T) {
	const secret, body = "hook-secret", `{"ref":"refs/heads/main"}`
	good := sign(secret, body)
	for _, tc := range []struct {
		name    string
		secret  string
		method  string
		sig     string
		event   string
		body    string
		code    int
		trigger bool
	}{
		{"valid", secret, "POST", good, "push", body, http.StatusAccepted, true},
		{"uppercase-hex", secret, "POST", "sha256=" + strings.ToUpper(good[7:]), "push", body, http.StatusAccepted, true},
		{"ping", secret, "POST", sign(secret, "{}"), "ping", "{}", http.StatusOK, false},
		{"missing", secret, "POST", "", "push", body, http.StatusUnauthorized, false},
		{"wrong-secret", secret, "POST", sign("other", body), "push", body, http.StatusUnauthorized, false},
		{"tampered-body", secret, "POST", good, "push", body + " ", http.StatusUnauthorized, false},
		{"sha1", secret, "POST", "sha1=" + good[7:47], "push", body, http.StatusUnauthorized, false},
		{"truncated", secret, "POST", good[:len(good)-2], "push", body, http.StatusUnauthorized, false},
		{"not-hex", secret, "POST", "sha256=" + strings.Repeat("zz", 32), "push", body, http.StatusUnauthorized, false},
		{"empty-secret", "", "POST", sign("", body), "push", body, http.StatusUnauthorized, false},
		{"get", secret, "GET", good, "push", body, http.StatusMethodNotAllowed, false},
		{"too-large", secret, "POST", good, "push", strings.Repeat(" ", maxWebhookBody+1), http.StatusRequestEntityTooLarge, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			triggered := false
			h := WebhookHandler([]byte(tc.secret), func() { triggered = true })
			req := httptest.NewRequest(tc.method, "/webhook", bytes.NewBufferString(tc.body))
			if tc.sig != "" {
				req.Header.Set("X-Hub-Signature-256", tc.sig)
			}
			req.Header.Set("X-GitHub-Event", tc.event)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || triggered != tc.trigger {
				t.Errorf("got %d, triggered %v; want %d, %v (body %q)", rec.Code, triggered, tc.code, tc.trigger, rec.Body)
			}
		})
	}
}

// TestWebhookTriggersRepo wires the handler to a real Repo over HTTP.
func TestWebhookTriggersRepo(t *testing.T) {
	u := newUpstream(t)
	u.commit("first", v1, commitOpts{})
	r, err := NewRepo(testContext(t), Config{URL: u.fileURL(), Poll: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	next(t, r)
	srv := httptest.NewServer(WebhookHandler([]byte("s"), r.Trigger))
	defer srv.Close()
	c2 := u.commit("second", v2, commitOpts{})
	req, _ := http.NewRequest("POST", srv.URL, strings.NewReader("{}"))
	req.Header.Set("X-Hub-Signature-256", sign("s", "{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook answered %s", resp.Status)
	}
	if rev := next(t, r); rev.ID != c2 {
		t.Fatalf("revision after webhook %s, want %s", rev.ID, c2)
	}
}

func FuzzParseSignature(f *testing.F) {
	for _, s := range []string{"", "sha256=", sign("k", "b"), "sha1=abc", "sha256=" + strings.Repeat("g", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		sig, err := parseSignature(header)
		if err != nil {
			if sig != nil {
				t.Fatalf("parseSignature(%q) returned %x with error %v", header, sig, err)
			}
			return
		}
		if len(sig) != sha256.Size {
			t.Fatalf("parseSignature(%q) = %d bytes", header, len(sig))
		}
		// A parsed signature round-trips (modulo hex case).
		if want := "sha256=" + hex.EncodeToString(sig); !strings.EqualFold(want, header) {
			t.Fatalf("parseSignature(%q) = %x, does not round-trip", header, sig)
		}
	})
}
