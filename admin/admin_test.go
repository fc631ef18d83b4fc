package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"tailscale.com/types/key"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/internal/testkit"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

const (
	readKey  = "tpk-read-0123456789abcdef"
	adminKey = "tpk-admin-0123456789abcdef"
	hookKey  = "webhook-secret"
)

// served is a running sync pipeline and the coordination server it
// installs into, as the admin API sees them.
type served struct {
	*pipeline.Pipeline
	ctrl *control.Server
}

// Applied returns the tailnet the server serves.
func (s served) Applied() *schema.Tailnet { return s.ctrl.Tailnet() }

// Close stops the pipeline, then the server; it is safe to call more
// than once.
func (s served) Close() {
	s.Pipeline.Close()
	s.ctrl.Close()
}

// startPipeline runs a pipeline over src, installing into a coordination
// server on st, until Close or the end of the test.
func startPipeline(t *testing.T, ctx context.Context, st *store.Store, src gitsync.Source, logf func(string, ...any)) served {
	t.Helper()
	ctrl, err := control.New(ctx, control.Config{Store: st, NoiseKey: key.NewMachine(), Tailnet: &schema.Tailnet{}, Logf: logf})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pipeline.New(ctx, pipeline.Config{Store: st, Source: src, Server: ctrl, Logf: logf})
	if err != nil {
		ctrl.Close()
		t.Fatal(err)
	}
	s := served{pl, ctrl}
	t.Cleanup(s.Close)
	return s
}

// startAPI applies examples/basic plus two API keys from a watched
// directory and serves the admin API over real HTTP.
func startAPI(t *testing.T) (url string, loop served) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfgDir := t.TempDir()
	testkit.CopyFiles(t, "../examples/basic", cfgDir)
	keys := `{"apiKeys": {
		"ro": {"role": "read", "secretHash": "` + testkit.SecretHash(readKey) + `"},
		"rw": {"role": "admin", "secretHash": "` + testkit.SecretHash(adminKey) + `"},
	}}`
	if err := os.WriteFile(filepath.Join(cfgDir, "api.hujson"), []byte(keys), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := gitsync.NewDir(ctx, cfgDir, gitsync.DirConfig{Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	loop = startPipeline(t, ctx, st, src, t.Logf)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if st, err := loop.Wait(wctx, func(st pipeline.Status) bool { return st.Serving }); err != nil {
		t.Fatalf("the config was not applied: %+v", st.Attempted)
	}
	hs := httptest.NewServer(Handler(Config{
		Pipeline: loop.Pipeline, Served: loop.Applied, Store: st, WebhookSecret: []byte(hookKey),
		Nodes: func(context.Context) (int, int, error) { return 1, 3, nil },
	}))
	t.Cleanup(hs.Close)
	return hs.URL, loop
}

func call(t *testing.T, method, url, token string, body []byte, hdr map[string]string) (int, []byte) {
	t.Helper()
	a := testkit.Request(t, method, url, token, body, hdr)
	return a.Status, a.Body
}

func TestAuth(t *testing.T) {
	url, _ := startAPI(t)
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
		header                    string // the Authorization header instead of "Bearer "+token
	}{
		{name: "lowercase-scheme", method: "GET", path: "/api/v1/status", header: "bearer " + readKey, want: http.StatusOK},
		{name: "basic-scheme", method: "GET", path: "/api/v1/status", header: "Basic " + readKey, want: http.StatusUnauthorized},
		{name: "scheme-only", method: "GET", path: "/api/v1/status", header: "Bearer", want: http.StatusUnauthorized},
		{"no-key", "GET", "/api/v1/status", "", http.StatusUnauthorized, ""},
		{"wrong-key", "GET", "/api/v1/status", "tpk-nope", http.StatusUnauthorized, ""},
		{"hash-as-key", "GET", "/api/v1/status", testkit.SecretHash(readKey), http.StatusUnauthorized, ""},
		{"read-status", "GET", "/api/v1/status", readKey, http.StatusOK, ""},
		{"read-revisions", "GET", "/api/v1/revisions", readKey, http.StatusOK, ""},
		{"read-refused", "GET", "/api/v1/revisions/refused", readKey, http.StatusOK, ""},
		{"no-key-refused", "GET", "/api/v1/revisions/refused", "", http.StatusUnauthorized, ""},
		{"read-applied", "GET", "/api/v1/applied", readKey, http.StatusOK, ""},
		{"read-metrics", "GET", "/metrics", readKey, http.StatusOK, ""},
		{"read-cannot-sync", "POST", "/api/v1/sync", readKey, http.StatusForbidden, ""},
		{"admin-sync", "POST", "/api/v1/sync", adminKey, http.StatusAccepted, ""},
		{"admin-reads", "GET", "/api/v1/status", adminKey, http.StatusOK, ""},
		{"metrics-need-key", "GET", "/metrics", "", http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr map[string]string
			if tc.header != "" {
				hdr = map[string]string{"Authorization": tc.header}
			}
			if code, body := call(t, tc.method, url+tc.path, tc.token, nil, hdr); code != tc.want {
				t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
		})
	}
}

func TestStatusAndHistory(t *testing.T) {
	url, loop := startAPI(t)
	code, body := call(t, "GET", url+"/api/v1/status", readKey, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("status: %d %s", code, body)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	want := loop.Status().Applied.Commit
	if !st.Serving || st.Applied == nil || st.Applied.Commit != want || !strings.HasPrefix(want, "dir:sha256:") {
		t.Errorf("status applied %+v, want %s", st.Applied, want)
	}
	if st.Attempted == nil || !st.Attempted.OK || st.Nodes != (NodeCounts{Online: 1, Total: 3}) || st.Source.URL == "" {
		t.Errorf("status = %s", body)
	}

	code, body = call(t, "GET", url+"/api/v1/revisions?limit=5", readKey, nil, nil)
	var revs []reconcile.Revision
	if err := json.Unmarshal(body, &revs); code != 200 || err != nil || len(revs) != 1 || revs[0].Commit != want {
		t.Fatalf("revisions: %d %s", code, body)
	}
	code, body = call(t, "GET", url+"/api/v1/revisions/"+strconv.FormatInt(revs[0].ID, 10)+"/plan", readKey, nil, nil)
	if code != 200 || !json.Valid(body) || !strings.Contains(string(body), "alice@example.com") {
		t.Errorf("plan of revision %d: %d %s", revs[0].ID, code, body)
	}
	if code, _ := call(t, "GET", url+"/api/v1/revisions/999/plan", readKey, nil, nil); code != http.StatusNotFound {
		t.Errorf("plan of a missing revision: %d, want 404", code)
	}
	if code, body := call(t, "GET", url+"/api/v1/revisions/refused", readKey, nil, nil); code != 200 || string(body) != "[]\n" && string(body) != "[]" {
		t.Errorf("refused revisions of a server that refused none: %d %q, want []", code, body)
	}

	code, body = call(t, "GET", url+"/api/v1/applied", readKey, nil, nil)
	var ap Applied
	if err := json.Unmarshal(body, &ap); code != 200 || err != nil {
		t.Fatalf("applied: %d %s", code, body)
	}
	if p := reconcile.Diff(ap.Objects, reconcile.MaskSecrets(reconcile.Desired(loop.Applied()))); !p.Empty() {
		var b strings.Builder
		p.WriteText(&b)
		t.Errorf("applied objects differ from the applied tailnet: %s", b.String())
	}

	_, body = call(t, "GET", url+"/metrics", readKey, nil, nil)
	for _, line := range []string{"tailplane_sync_applied_total 1", "tailplane_serving 1", `tailplane_nodes{state="online"} 1`, "tailplane_propagation_seconds "} {
		if !strings.Contains(string(body), line+"\n") && !strings.Contains(string(body), line) {
			t.Errorf("metrics lack %q:\n%s", line, body)
		}
	}
}

// TestAppliedMasksSecrets: GET /api/v1/applied shows a read key secret
// hashes masked as plans show them, and an admin key the whole hashes.
func TestAppliedMasksSecrets(t *testing.T) {
	url, loop := startAPI(t)
	want := reconcile.Desired(loop.Applied())
	var secrets []string // the full hashes of every applied auth and API key
	for _, o := range want {
		if o.Kind == reconcile.KindAuthKey || o.Kind == reconcile.KindAPIKey {
			var v struct{ SecretHash string }
			if err := json.Unmarshal(o.Value, &v); err != nil || v.SecretHash == "" {
				t.Fatalf("%s %s: no secretHash in %s (%v)", o.Kind, o.Name, o.Value, err)
			}
			secrets = append(secrets, v.SecretHash)
		}
	}
	if len(secrets) < 3 {
		t.Fatalf("the test config declares %d secrets, want auth keys and both API keys", len(secrets))
	}
	for _, tc := range []struct {
		name, key string
		masked    bool
	}{
		{"read", readKey, true},
		{"admin", adminKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, "GET", url+"/api/v1/applied", tc.key, nil, nil)
			var ap Applied
			if err := json.Unmarshal(body, &ap); code != http.StatusOK || err != nil {
				t.Fatalf("applied: %d %s (%v)", code, body, err)
			}
			if ap.SecretsMasked != tc.masked {
				t.Errorf("secretsMasked = %v, want %v", ap.SecretsMasked, tc.masked)
			}
			for _, h := range secrets {
				if got := strings.Contains(string(body), h); got == tc.masked {
					t.Errorf("the answer holds the full hash %s: %v, want %v", h, got, !tc.masked)
				}
			}
			objs := want
			if tc.masked {
				objs = reconcile.MaskSecrets(want)
			}
			if p := reconcile.Diff(ap.Objects, objs); !p.Empty() {
				var b strings.Builder
				p.WriteText(&b)
				t.Errorf("applied objects differ from the applied tailnet: %s", b.String())
			}
		})
	}
}

func TestWebhook(t *testing.T) {
	url, _ := startAPI(t)
	payload := []byte(`{"ref":"refs/heads/main"}`)
	good := testkit.WebhookSignature(hookKey, string(payload))
	for _, tc := range []struct {
		name string
		sig  string
		want int
	}{
		{"signed", good, http.StatusAccepted},
		{"unsigned", "", http.StatusUnauthorized},
		{"bad-signature", "sha256=" + strings.Repeat("0", 64), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"X-GitHub-Event": "push"}
			if tc.sig != "" {
				hdr["X-Hub-Signature-256"] = tc.sig
			}
			if code, body := call(t, "POST", url+"/api/v1/webhook", "", payload, hdr); code != tc.want {
				t.Errorf("webhook: %d %s, want %d", code, body, tc.want)
			}
		})
	}
}

// TestMetricsHooks: the hooks other parts call show on /metrics over
// HTTP: audit actions counted by action and result, pending approvals
// read at each scrape, and propagation observations in the histogram;
// the names kept from before client_golang keep their types.
func TestMetricsHooks(t *testing.T) {
	_, loop := startAPI(t)
	m := NewMetrics()
	pending := 0
	hs := httptest.NewServer(Handler(Config{
		Pipeline: loop.Pipeline, Served: loop.Applied, Metrics: m,
		PendingApprovals: func(context.Context) (int, error) { return pending, nil },
	}))
	t.Cleanup(hs.Close)
	ctx := context.Background()
	m.AuditAction("node.expire", "ok")
	m.AuditAction("node.expire", "ok")
	m.AuditAction("node.delete", "error")
	m.ObservePropagation(300 * time.Millisecond)
	pending = 3
	fams, err := Scrape(ctx, hs.URL, readKey)
	if err != nil {
		t.Fatal(err)
	}
	got := Values(fams, "tailplane_audit_actions_total", "tailplane_nodes_pending_approval", "tailplane_propagation_duration_seconds")
	want := map[string]float64{
		"tailplane_audit_actions_total{action=node.delete,result=error}": 1,
		"tailplane_audit_actions_total{action=node.expire,result=ok}":    2,
		"tailplane_nodes_pending_approval":                               3,
		"tailplane_propagation_duration_seconds_count":                   1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	for name, typ := range map[string]dto.MetricType{
		"tailplane_propagation_seconds":                   dto.MetricType_GAUGE,
		"tailplane_sync_attempts_total":                   dto.MetricType_COUNTER,
		"tailplane_sync_failures_total":                   dto.MetricType_COUNTER,
		"tailplane_sync_applied_total":                    dto.MetricType_COUNTER,
		"tailplane_sync_consecutive_failures":             dto.MetricType_GAUGE,
		"tailplane_source_consecutive_failures":           dto.MetricType_GAUGE,
		"tailplane_serving":                               dto.MetricType_GAUGE,
		"tailplane_applied_timestamp_seconds":             dto.MetricType_GAUGE,
		"tailplane_source_last_success_timestamp_seconds": dto.MetricType_GAUGE,
		"tailplane_propagation_duration_seconds":          dto.MetricType_HISTOGRAM,
		"go_goroutines":                                   dto.MetricType_GAUGE,
		"process_cpu_seconds_total":                       dto.MetricType_COUNTER,
	} {
		if f := fams[name]; f == nil || f.GetType() != typ {
			t.Errorf("%s: %v, want a %v", name, f, typ)
		}
	}
}
