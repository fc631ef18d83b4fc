package policy

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/tailcfg"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// smallPolicy exercises every kind of rule on a handful of nodes.
const smallPolicy = `{
	"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
	"tagOwners": {"tag:db": ["group:eng"], "tag:web": ["group:eng"], "tag:router": ["alice@example.com"]},
	"hosts": {"office": "192.168.1.0/24"},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
		{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432", "office:80,443"], "proto": "tcp"},
	],
	"grants": [
		{"src": ["bob@example.com"], "dst": ["autogroup:internet"], "ip": ["*"]},
		{"src": ["group:eng"], "dst": ["tag:web"], "app": {"example.com/cap/admin": [{"level": "rw"}]}},
	],
	"ssh": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]},
		{"action": "check", "src": ["group:eng"], "dst": ["tag:db"], "users": ["root", "postgres"]},
	],
	"nodeAttrs": [{"target": ["tag:web"], "attr": ["funnel"]}],
	"tests": [
		{"src": "bob@example.com", "accept": ["tag:db:5432"], "deny": ["tag:db:22", "tag:web:80"]},
	],
	"sshTests": [
		{"src": "alice@example.com", "dst": ["tag:db"], "check": ["root"], "deny": ["admin"]},
	],
}`

func smallNodes() []Node {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	return []Node{
		{ID: 1, Name: "alice-laptop", User: "alice@example.com", IPv4: a("100.64.0.1"), IPv6: a("fd7a:115c:a1e0::1")},
		{ID: 2, Name: "alice-phone", User: "alice@example.com", IPv4: a("100.64.0.2"), IPv6: a("fd7a:115c:a1e0::2")},
		{ID: 3, Name: "bob-laptop", User: "bob@example.com", IPv4: a("100.64.0.3"), IPv6: a("fd7a:115c:a1e0::3")},
		{ID: 10, Name: "db", Tags: []string{"tag:db"}, IPv4: a("100.64.0.10"), IPv6: a("fd7a:115c:a1e0::10")},
		{ID: 11, Name: "web", Tags: []string{"tag:web"}, IPv4: a("100.64.0.11"), IPv6: a("fd7a:115c:a1e0::11")},
		{ID: 20, Name: "router", Tags: []string{"tag:router"}, IPv4: a("100.64.0.20"), IPv6: a("fd7a:115c:a1e0::20"),
			RoutableIPs:    []netip.Prefix{p("192.168.1.0/24"), p("0.0.0.0/0"), p("::/0")},
			ApprovedRoutes: []netip.Prefix{p("192.168.1.0/24"), p("0.0.0.0/0"), p("::/0")}},
	}
}

// goldenView is a NodeView with peers by name, for readable goldens.
type goldenView struct {
	PacketFilter  []tailcfg.FilterRule
	Peers         map[string]Peer
	SSH           *tailcfg.SSHPolicy
	CapMap        tailcfg.NodeCapMap
	AllowedIPs    []netip.Prefix
	PrimaryRoutes []netip.Prefix
}

// TestEvaluateGolden evaluates smallPolicy and compares every node's view
// with testdata/evaluate.golden.json (go test ./policy -run Golden -update).
func TestEvaluateGolden(t *testing.T) {
	p, diags := Compile(load(t, smallPolicy))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	nodes := smallNodes()
	names := map[tailcfg.NodeID]string{}
	for _, n := range nodes {
		names[n.ID] = n.Name
	}
	res := p.Evaluate(nodes, Options{ControlURL: "https://ctl.example.com/"})
	got := map[string]goldenView{}
	for _, n := range nodes {
		v := res.Node(n.ID)
		gv := goldenView{PacketFilter: v.PacketFilter, Peers: map[string]Peer{}, SSH: v.SSH, CapMap: v.CapMap,
			AllowedIPs: v.AllowedIPs, PrimaryRoutes: v.PrimaryRoutes}
		for _, peer := range res.Peers(n.ID) {
			gv.Peers[names[peer.ID]] = peer
		}
		got[n.Name] = gv
	}
	data, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "evaluate.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(data)+"\n"); diff != "" {
		t.Errorf("views differ from %s (-want +got):\n%s", golden, diff)
	}
	if res.Node(999) != nil {
		t.Error("Node(unknown id) is not nil")
	}
}

func TestRunTests(t *testing.T) {
	tests := []struct {
		name  string
		extra string // tests and sshTests keys
		want  []string
	}{
		{"all pass", `"tests": [{"src": "bob@example.com", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]}]`, nil},
		{"accept fails", `"tests": [{"src": "tag:web", "accept": ["tag:db:5432"]}, {"src": "group:eng", "accept": ["tag:web:443"], "deny": ["tag:db:5432"]}]`,
			[]string{
				"tests[1].accept[0]: group:eng -> tag:web:443: expected accept, got deny",
				"tests[1].deny[0]: group:eng -> tag:db:5432: expected deny, got accept",
			}},
		{"proto", `"tests": [{"src": "tag:web", "proto": "udp", "accept": ["tag:db:5432"]}]`,
			[]string{"tests[0].accept[0]: tag:web -> tag:db:5432: expected accept, got deny"}},
		{"self", `"tests": [{"src": "alice@example.com", "accept": ["autogroup:self:22"]}, {"src": "bob@example.com", "deny": ["alice@example.com:22"]}]`, nil},
		{"range destination", `"tests": [{"src": "tag:web", "accept": ["office:443"]}]`,
			[]string{"tests[0].accept[0]: tag:web -> office:443: destination must be a single address, not a range"}},
		{"ssh", `"sshTests": [{"src": "bob@example.com", "dst": ["tag:db", "alice@example.com"], "check": ["root"], "deny": ["ubuntu"]}]`,
			[]string{
				`sshTests[0].check[0]: bob@example.com -> alice@example.com (ssh user "root"): expected check, got deny`,
			}},
	}
	base := strings.TrimSuffix(strings.TrimSpace(smallPolicy), "}")
	base = base[:strings.Index(base, `"tests"`)]
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			p, diags := Compile(load(t, base+tt.extra+"}"))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var got []string
			for _, d := range p.RunTests(smallNodes()) {
				got = append(got, d.Path+": "+d.Message)
			}
			slicesSort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("RunTests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTestInventory(t *testing.T) {
	tn := load(t, `{
		"groups": {"group:eng": ["dave@example.com", "alice@example.com"]},
		"tagOwners": {"tag:db": ["group:eng"], "tag:web": ["tag:db"]},
		"hosts": {"first": "100.64.0.1"},
	}`)
	real := []Node{{ID: 7, Name: "alice-laptop", User: "alice@example.com", IPv4: netip.MustParseAddr("100.64.0.2"), IPv6: netip.MustParseAddr("fd7a:115c:a1e0::2")}}
	got := TestInventory(tn, real)
	type row struct {
		ID         tailcfg.NodeID
		User       string
		Tags       []string
		IPv4, IPv6 string
	}
	var rows []row
	for _, n := range got {
		rows = append(rows, row{n.ID, n.User, n.Tags, n.IPv4.String(), n.IPv6.String()})
	}
	// alice has a real node; bob, carol (declared users) and dave (a group
	// member) get stand-ins, then each tag; 100.64.0.1 is a host, 100.64.0.2
	// a real node, so addresses start at 100.64.0.3.
	want := []row{
		{7, "alice@example.com", nil, "100.64.0.2", "fd7a:115c:a1e0::2"},
		{8, "bob@example.com", nil, "100.64.0.3", "fd7a:115c:a1e0::1"},
		{9, "carol@example.org", nil, "100.64.0.4", "fd7a:115c:a1e0::3"},
		{10, "dave@example.com", nil, "100.64.0.5", "fd7a:115c:a1e0::4"},
		{11, "", []string{"tag:db"}, "100.64.0.6", "fd7a:115c:a1e0::5"},
		{12, "", []string{"tag:web"}, "100.64.0.7", "fd7a:115c:a1e0::6"},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("TestInventory (-want +got):\n%s", diff)
	}
}

// TestConcurrentViews asks for views from several goroutines; run with
// -race to check the caches' locking.
func TestConcurrentViews(t *testing.T) {
	p, diags := Compile(load(t, smallPolicy))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	nodes := smallNodes()
	res := p.Evaluate(nodes, Options{})
	var wg sync.WaitGroup
	views := make([][]string, 4)
	for g := range views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range nodes {
				views[g] = append(views[g], viewJSON(res, n.ID))
			}
		}()
	}
	wg.Wait()
	for g := 1; g < len(views); g++ {
		if diff := cmp.Diff(views[0], views[g]); diff != "" {
			t.Errorf("goroutine %d saw different views (-first +this):\n%s", g, diff)
		}
	}
}

// TestLegacyUsersPorts: "users" and "ports" are the old spellings of src
// and dst and compile to the same filter.
func TestLegacyUsersPorts(t *testing.T) {
	views := func(doc string) string {
		p, diags := Compile(load(t, doc))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		res := p.Evaluate(smallNodes(), Options{})
		var out []string
		for _, n := range smallNodes() {
			out = append(out, viewJSON(res, n.ID))
		}
		return strings.Join(out, "\n")
	}
	const groups = `"groups": {"group:eng": ["alice@example.com", "bob@example.com"]}, "tagOwners": {"tag:db": ["group:eng"]},`
	legacy := views(`{` + groups + `"acls": [{"action": "accept", "users": ["group:eng"], "ports": ["tag:db:5432", "100.64.0.11:80"]}]}`)
	current := views(`{` + groups + `"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432", "100.64.0.11:80"]}]}`)
	if diff := cmp.Diff(current, legacy); diff != "" {
		t.Errorf("users/ports differ from src/dst (-src/dst +users/ports):\n%s", diff)
	}
	if !strings.Contains(legacy, `"First":5432`) {
		t.Errorf("no rule for port 5432 in %s", legacy)
	}
}

func TestSSHRecorder(t *testing.T) {
	doc := func(enforce bool, recorderTag string) string {
		return fmt.Sprintf(`{"tagOwners": {"tag:db": [], "tag:rec": [], "tag:none": []},
			"ssh": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"], "recorder": [%q], "enforceRecorder": %v}]}`, recorderTag, enforce)
	}
	a := netip.MustParseAddr
	nodes := []Node{
		{ID: 1, User: "alice@example.com", IPv4: a("100.64.0.1")},
		{ID: 2, Tags: []string{"tag:db"}, IPv4: a("100.64.0.2")},
		{ID: 3, Tags: []string{"tag:rec"}, IPv4: a("100.64.0.3"), IPv6: a("fd7a:115c:a1e0::3")},
	}
	tests := []struct {
		name string
		doc  string
		want tailcfg.SSHAction
	}{
		{"recorded", doc(false, "tag:rec"), tailcfg.SSHAction{Accept: true, AllowAgentForwarding: true, AllowLocalPortForwarding: true, AllowRemotePortForwarding: true,
			Recorders: []netip.AddrPort{netip.MustParseAddrPort("100.64.0.3:80"), netip.MustParseAddrPort("[fd7a:115c:a1e0::3]:80")}}},
		{"no recorder node, enforced", doc(true, "tag:none"), tailcfg.SSHAction{Reject: true, Message: "session recording is required but no recorder node exists"}},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			p, diags := Compile(load(t, tt.doc))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			pol := p.Evaluate(nodes, Options{}).Node(2).SSH
			if pol == nil || len(pol.Rules) != 1 {
				t.Fatalf("SSH policy = %+v, want one rule", pol)
			}
			if diff := cmp.Diff(tt.want, *pol.Rules[0].Action, cmp.Comparer(func(x, y netip.AddrPort) bool { return x == y })); diff != "" {
				t.Errorf("action (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHAFailover: of several routers for a subnet registered at the same
// time (zero Node.Created), the lowest ID is primary unless it is offline;
// TestElection covers registration order and stickiness.
func TestHAFailover(t *testing.T) {
	p, diags := Compile(load(t, `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	r := netip.MustParsePrefix("10.1.0.0/16")
	router := func(id tailcfg.NodeID, offline bool) Node {
		return Node{ID: id, Tags: []string{"tag:r"}, IPv4: netip.AddrFrom4([4]byte{100, 64, 0, byte(id)}),
			RoutableIPs: []netip.Prefix{r}, ApprovedRoutes: []netip.Prefix{r}, Offline: offline}
	}
	client := Node{ID: 9, User: "alice@example.com", IPv4: netip.MustParseAddr("100.64.0.9")}
	primaryOf := func(nodes []Node) []tailcfg.NodeID {
		var ids []tailcfg.NodeID
		for _, peer := range p.Evaluate(nodes, Options{}).Peers(9) {
			if len(peer.PrimaryRoutes) > 0 {
				ids = append(ids, peer.ID)
			}
		}
		return ids
	}
	if got := primaryOf([]Node{router(2, false), router(1, false), client}); !slices.Equal(got, []tailcfg.NodeID{1}) {
		t.Errorf("both online: primary %v, want [1]", got)
	}
	if got := primaryOf([]Node{router(1, true), router(2, false), client}); !slices.Equal(got, []tailcfg.NodeID{2}) {
		t.Errorf("1 offline: primary %v, want [2]", got)
	}
	if got := primaryOf([]Node{router(1, true), router(2, true), client}); !slices.Equal(got, []tailcfg.NodeID{1}) {
		t.Errorf("both offline: primary %v, want [1]", got)
	}
}

// TestRunTestsPartial: accept needs every source to reach the
// destination, deny needs none to.
func TestRunTestsPartial(t *testing.T) {
	p, diags := Compile(load(t, `{
		"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
		"tagOwners": {"tag:db": []},
		"acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["tag:db:22"]},
			{"action": "accept", "src": ["group:eng"], "dst": ["autogroup:self:22"]}],
		"tests": [{"src": "group:eng", "accept": ["tag:db:22", "autogroup:self:22"], "deny": ["tag:db:22"]}],
	}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got []string
	for _, d := range p.RunTests(smallNodes()) {
		got = append(got, d.Path+": "+d.Message)
	}
	want := []string{
		"tests[0].accept[0]: group:eng -> tag:db:22: expected accept, got deny",
		"tests[0].deny[0]: group:eng -> tag:db:22: expected deny, got accept",
	}
	slicesSort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RunTests (-want +got):\n%s", diff)
	}
}

// TestRunTestsFamilies: a rule for an IPv4 range lets a user's node reach
// the destination over IPv4, so accept holds and deny fails.
func TestRunTestsFamilies(t *testing.T) {
	p, diags := Compile(load(t, `{
		"tagOwners": {"tag:db": []},
		"acls": [{"action": "accept", "src": ["100.64.0.0/24"], "dst": ["tag:db:5432"]}],
		"tests": [{"src": "bob@example.com", "accept": ["tag:db:5432"]}, {"src": "bob@example.com", "deny": ["tag:db:5432"]}],
	}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var got []string
	for _, d := range p.RunTests(smallNodes()) {
		got = append(got, d.Path+": "+d.Message)
	}
	want := []string{"tests[1].deny[0]: bob@example.com -> tag:db:5432: expected deny, got accept"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RunTests (-want +got):\n%s", diff)
	}
}

func TestSSHCheckPeriod(t *testing.T) {
	p, diags := Compile(load(t, `{
		"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
		"tagOwners": {"tag:db": [], "tag:web": []},
		"ssh": [
			{"action": "check", "checkPeriod": "1h", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]},
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db"], "users": ["root", "postgres"]},
			{"action": "check", "checkPeriod": "always", "src": ["bob@example.com"], "dst": ["tag:web"], "users": ["root"]},
			{"action": "check", "src": ["alice@example.com"], "dst": ["tag:web"], "users": ["root"]},
		],
	}`))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	res := p.Evaluate(smallNodes(), Options{})
	tests := []struct {
		src, dst tailcfg.NodeID
		user     string
		period   time.Duration
		check    bool
	}{
		{1, 10, "root", time.Hour, true},             // alice -> db: the check rule comes first
		{1, 10, "postgres", 0, false},                // only the accept rule maps postgres
		{3, 10, "root", 0, false},                    // bob -> db: accept
		{3, 11, "root", 0, true},                     // bob -> web: always
		{1, 11, "root", DefaultSSHCheckPeriod, true}, // alice -> web: default period
		{10, 11, "root", 0, false},                   // no rule
	}
	for _, tt := range tests {
		period, check := res.SSHCheckPeriod(tt.src, tt.dst, tt.user)
		if period != tt.period || check != tt.check {
			t.Errorf("SSHCheckPeriod(%d, %d, %q) = %v, %v; want %v, %v", tt.src, tt.dst, tt.user, period, check, tt.period, tt.check)
		}
	}
}
