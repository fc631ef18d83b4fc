package gitsync

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tailplane/tailplane/internal/testkit"
)

// countingBody counts the request body bytes a handler reads.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestWebhookHandler posts to the handler over real HTTP and checks the
// answer, whether it triggered, and how much of the body it read: nothing
// at all unless a secret is set and a well-formed signature header and a
// size within the limit were sent.
func TestWebhookHandler(t *testing.T) {
	const secret, body = "hook-secret", `{"ref":"refs/heads/main"}`
	good := testkit.WebhookSignature(secret, body)
	huge := strings.Repeat(" ", 4<<20)
	atLimit := strings.Repeat(" ", maxWebhookBody)
	overLimit := atLimit + " "
	for _, tc := range []struct {
		name    string
		secret  string
		method  string
		sig     string
		event   string
		body    string
		chunked bool // no Content-Length: the size shows only while reading
		code    int
		trigger bool
		maxRead int // the most body bytes the handler may read
	}{
		{name: "valid", secret: secret, method: "POST", sig: good, event: "push", body: body, code: http.StatusAccepted, trigger: true, maxRead: len(body)},
		{name: "uppercase-hex", secret: secret, method: "POST", sig: "sha256=" + strings.ToUpper(good[7:]), event: "push", body: body, code: http.StatusAccepted, trigger: true, maxRead: len(body)},
		{name: "ping", secret: secret, method: "POST", sig: testkit.WebhookSignature(secret, "{}"), event: "ping", body: "{}", code: http.StatusOK, maxRead: 2},
		{name: "at-limit", secret: secret, method: "POST", sig: testkit.WebhookSignature(secret, atLimit), event: "push", body: atLimit, code: http.StatusAccepted, trigger: true, maxRead: maxWebhookBody},
		{name: "at-limit-chunked", secret: secret, method: "POST", sig: testkit.WebhookSignature(secret, atLimit), event: "push", body: atLimit, chunked: true, code: http.StatusAccepted, trigger: true, maxRead: maxWebhookBody},
		{name: "wrong-secret", secret: secret, method: "POST", sig: testkit.WebhookSignature("other", body), event: "push", body: body, code: http.StatusUnauthorized, maxRead: len(body)},
		{name: "tampered-body", secret: secret, method: "POST", sig: good, event: "push", body: body + " ", code: http.StatusUnauthorized, maxRead: len(body) + 1},
		{name: "no-secret", secret: "", method: "POST", sig: testkit.WebhookSignature("", huge), event: "push", body: huge, code: http.StatusForbidden},
		{name: "no-secret-chunked", secret: "", method: "POST", sig: testkit.WebhookSignature("", huge), event: "push", body: huge, chunked: true, code: http.StatusForbidden},
		{name: "missing-signature", secret: secret, method: "POST", event: "push", body: huge, code: http.StatusUnauthorized},
		{name: "missing-signature-chunked", secret: secret, method: "POST", event: "push", body: huge, chunked: true, code: http.StatusUnauthorized},
		{name: "sha1", secret: secret, method: "POST", sig: "sha1=" + good[7:47], event: "push", body: body, code: http.StatusUnauthorized},
		{name: "truncated", secret: secret, method: "POST", sig: good[:len(good)-2], event: "push", body: body, code: http.StatusUnauthorized},
		{name: "not-hex", secret: secret, method: "POST", sig: "sha256=" + strings.Repeat("zz", 32), event: "push", body: body, code: http.StatusUnauthorized},
		{name: "get", secret: secret, method: "GET", sig: good, event: "push", body: body, code: http.StatusMethodNotAllowed},
		{name: "over-limit", secret: secret, method: "POST", sig: testkit.WebhookSignature(secret, overLimit), event: "push", body: overLimit, code: http.StatusRequestEntityTooLarge},
		{name: "huge", secret: secret, method: "POST", sig: testkit.WebhookSignature(secret, huge), event: "push", body: huge, code: http.StatusRequestEntityTooLarge},
		{name: "huge-chunked", secret: secret, method: "POST", sig: testkit.WebhookSignature(secret, huge), event: "push", body: huge, chunked: true, code: http.StatusRequestEntityTooLarge, maxRead: maxWebhookBody + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var triggered atomic.Bool
			var read atomic.Int64
			h := WebhookHandler([]byte(tc.secret), func() { triggered.Store(true) })
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Body = countingBody{r.Body, &read}
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			var rd io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				rd = struct{ io.Reader }{rd} // hides the length from the client
			}
			req, err := http.NewRequest(tc.method, srv.URL+"/webhook", rd)
			if err != nil {
				t.Fatal(err)
			}
			if tc.sig != "" {
				req.Header.Set("X-Hub-Signature-256", tc.sig)
			}
			req.Header.Set("X-GitHub-Event", tc.event)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || triggered.Load() != tc.trigger {
				t.Errorf("got %d, triggered %v; want %d, %v (body %q)", resp.StatusCode, triggered.Load(), tc.code, tc.trigger, msg)
			}
			if n := read.Load(); n > int64(tc.maxRead) {
				t.Errorf("the handler read %d body bytes, want at most %d", n, tc.maxRead)
			}
			if tc.code == http.StatusRequestEntityTooLarge && !strings.Contains(string(msg), "1 MiB") {
				t.Errorf("a refused large body should name the limit; got %q", msg)
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
	req.Header.Set("X-Hub-Signature-256", testkit.WebhookSignature("s", "{}"))
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
	for _, s := range []string{"", "sha256=", testkit.WebhookSignature("k", "b"), "sha1=abc", "sha256=" + strings.Repeat("g", 64)} {
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
