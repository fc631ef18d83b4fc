package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tailscale/hujson"
)

// callV2 sends a request with the API key as gitops-pusher does (HTTP
// Basic user name, empty password), or with the given Authorization
// header when auth is set.
func callV2(t *testing.T, method, url, key, auth string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case auth != "":
		req.Header.Set("Authorization", auth)
	case key != "":
		req.SetBasicAuth(key, "")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// TestV2Auth: every v2 endpoint takes the key as a Basic user name with
// an empty password or as a bearer token, and answers failures in
// Tailscale's {"message"} shape.
func TestV2Auth(t *testing.T) {
	url, _ := startAPI(t)
	const acl = "/api/v2/tailnet/-/acl"
	for _, tc := range []struct {
		name, method, path, key, auth string
		want                          int
		message                       string // part of the error message; "" on success
	}{
		{name: "basic", method: "GET", path: acl, key: readKey, want: 200},
		{name: "bearer", method: "GET", path: acl, auth: "Bearer " + readKey, want: 200},
		{name: "basic-admin", method: "GET", path: acl, key: adminKey, want: 200},
		{name: "tailnet-by-name", method: "GET", path: "/api/v2/tailnet/Example/acl", key: readKey, want: 200},
		{name: "tailnet-by-domain", method: "GET", path: "/api/v2/tailnet/tail.example.internal/acl", key: readKey, want: 200},
		{name: "other-tailnet", method: "GET", path: "/api/v2/tailnet/example.com/acl", key: readKey, want: 404, message: `unknown tailnet "example.com"`},
		{name: "no-key", method: "GET", path: acl, want: 401, message: "missing API key"},
		{name: "basic-with-password", method: "GET", path: acl, auth: basic(readKey, "secret"), want: 401, message: "empty password"},
		{name: "basic-key-as-password", method: "GET", path: acl, auth: basic("", readKey), want: 401, message: "user name"},
		{name: "unknown-key", method: "GET", path: acl, key: "tpk-nope", want: 401, message: "unknown API key"},
		{name: "validate-no-key", method: "POST", path: acl + "/validate", want: 401, message: "missing API key"},
		{name: "write-no-key", method: "POST", path: acl, want: 401, message: "missing API key"},
		{name: "unsupported-endpoint", method: "GET", path: "/api/v2/tailnet/-/keys", key: readKey, want: 404, message: "not part of the API v2 subset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := callV2(t, tc.method, url+tc.path, tc.key, tc.auth, nil)
			if res.StatusCode != tc.want {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, res.StatusCode, body, tc.want)
			}
			if tc.message == "" {
				return
			}
			var e struct{ Message string }
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Message, tc.message) {
				t.Errorf("answer %s, want a message with %q (%v)", body, tc.message, err)
			}
		})
	}
}

func basic(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

// TestV2GetACL: the served policy comes back as formatted HuJSON whose
// SHA-256 is the quoted ETag, as gitops-pusher sums its local file.
func TestV2GetACL(t *testing.T) {
	url, loop := startAPI(t)
	res, body := callV2(t, "GET", url+"/api/v2/tailnet/-/acl", readKey, "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET acl: %d %s", res.StatusCode, body)
	}
	sum := sha256.Sum256(body)
	if got, want := res.Header.Get("ETag"), `"`+hex.EncodeToString(sum[:])+`"`; got != want {
		t.Errorf("ETag %s, want %s (the sum of the body)", got, want)
	}
	if formatted, err := hujson.Format(body); err != nil || !bytes.Equal(formatted, body) {
		t.Errorf("the body is not formatted HuJSON (%v):\n%s", err, body)
	}
	var got struct {
		TagOwners map[string][]string `json:"tagOwners"`
		ACLs      []json.RawMessage   `json:"acls"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := loop.Applied().Policy
	if diff := cmp.Diff(want.TagOwners, got.TagOwners); diff != "" || len(got.ACLs) != len(want.ACLs) {
		t.Errorf("served policy differs (-served +got):\n%s\n%d acls, want %d", diff, len(got.ACLs), len(want.ACLs))
	}

	res, details := callV2(t, "GET", url+"/api/v2/tailnet/-/acl?details=1", readKey, "", nil)
	var d struct {
		ACL []byte `json:"acl"`
	}
	if err := json.Unmarshal(details, &d); err != nil || !bytes.Equal(d.ACL, body) || res.Header.Get("ETag") != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Errorf("details=1: %s (%v), want the same policy and ETag", details, err)
	}
}

// TestV2PolicyWritesRefused: a write to the policy is refused for every
// key, saying that the policy is managed in Git, and changes nothing.
func TestV2PolicyWritesRefused(t *testing.T) {
	url, loop := startAPI(t)
	before := loop.Applied()
	for _, key := range []string{readKey, adminKey} {
		res, body := callV2(t, "POST", url+"/api/v2/tailnet/-/acl", key, "", []byte(`{"acls": []}`))
		var e struct{ Message string }
		if err := json.Unmarshal(body, &e); res.StatusCode != http.StatusForbidden || err != nil || !strings.Contains(e.Message, "the policy is managed in Git") {
			t.Errorf("POST acl with %s: %d %s, want 403 saying the policy is managed in Git", key, res.StatusCode, body)
		}
	}
	if loop.Applied() != before {
		t.Errorf("the served tailnet changed")
	}
}

// TestV2Validate: the validate endpoint runs lint's checks, tests
// included, on the posted policy completed by the served config's own
// keys, and answers {} or Tailscale's message and data.
func TestV2Validate(t *testing.T) {
	url, _ := startAPI(t)
	good, err := os.ReadFile("../examples/basic/policy.hujson")
	if err != nil {
		t.Fatal(err)
	}
	failingTest := bytes.Replace(good, []byte(`"tests": [`),
		[]byte(`"tests": [`+"\n"+`{"src": "bob@example.com", "deny": ["tag:server:22"]},`), 1)
	for _, tc := range []struct {
		name   string
		policy string
		want   aclTestError
	}{
		{name: "good", policy: string(good)},
		{name: "comments-blanked", policy: string(must(hujson.Standardize(good)))},
		{
			name:   "failing-test",
			policy: string(failingTest),
			want: aclTestError{
				Message: `line 15, column 37: tests[0].deny[0]: bob@example.com -> tag:server:22: expected deny, got accept (hint: fix the rules or the test)`,
				Data: []aclTestFailure{{User: "bob@example.com", Errors: []string{
					`policy.hujson:15:37: error: tests[0].deny[0]: bob@example.com -> tag:server:22: expected deny, got accept (hint: fix the rules or the test)`,
				}}},
			},
		},
		{
			name:   "syntax",
			policy: "{\n  \"acls\": [\n}\n",
			want: aclTestError{
				Message: `line 3, column 1: syntax error: invalid character '}' at start of value (hint: HuJSON is JSON plus // and /* */ comments and trailing commas)`,
			},
		},
		{
			name:   "unknown-tag",
			policy: `{"tagOwners": {"tag:server": []}, "acls": [{"action": "accept", "src": ["tag:db"], "dst": ["*:*"]}]}`,
			want: aclTestError{
				Message: `line 1, column 73: acls[0].src[0]: src=tag not found: "tag:db"`,
			},
		},
		{
			name:   "served-auth-key-loses-its-tag",
			policy: `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`,
			want: aclTestError{
				Message: `authKeys.servers.tags[0]: tag "tag:server" has no tagOwners entry, but the served config's auth key "servers" uses it (hint: add "tag:server": ["autogroup:admin"] to tagOwners, or remove the tag from the config first)`,
			},
		},
		{
			name:   "own-key-declared",
			policy: `{"tailnet": {"domain": "Not A Domain"}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}], "tagOwners": {"tag:server": []}}`,
			want: aclTestError{
				Message: `line 1, column 14: tailnet.domain: `,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := callV2(t, "POST", url+"/api/v2/tailnet/-/acl/validate", readKey, "", []byte(tc.policy))
			if res.StatusCode != 200 {
				t.Fatalf("validate: %d %s, want 200", res.StatusCode, body)
			}
			var got aclTestError
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("answer %s: %v", body, err)
			}
			if tc.want.Data == nil {
				got.Data = nil // compare the message only
			}
			if strings.HasSuffix(tc.want.Message, ": ") && strings.HasPrefix(got.Message, tc.want.Message) {
				got.Message = tc.want.Message // the loader's wording after the path is its own
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s\nbody: %s", diff, body)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
