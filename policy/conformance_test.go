package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"tailscale.com/tailcfg"

	"github.com/tailplane/tailplane/schema"
)

// confCase is one recorded case of Tailscale's control plane (see the
// README next to the cases).
type confCase struct {
	ID       string          `json:"id"`
	Category string          `json:"category"`
	Policy   json.RawMessage `json:"policy"`
	Accepted bool            `json:"accepted"`
	Error    *string         `json:"error"`
	Owner    string          `json:"owner"`
	Users    []struct {
		Login string `json:"login"`
		Name  string `json:"name"`
	} `json:"users"`
	Nodes  map[string]confNode   `json:"nodes"`
	Expect map[string]confExpect `json:"expect"`
}

type confNode struct {
	User           *string        `json:"user"`
	Tags           []string       `json:"tags"`
	IPv4           netip.Addr     `json:"ipv4"`
	IPv6           netip.Addr     `json:"ipv6"`
	RoutableIPs    []netip.Prefix `json:"routableIPs"`
	ApprovedRoutes []netip.Prefix `json:"approvedRoutes"`
	Created        time.Time      `json:"created"`
}

type confExpect struct {
	PacketFilter      []tailcfg.FilterRule `json:"packetFilter"`
	Peers             map[string]confPeer  `json:"peers"`
	SSH               []*tailcfg.SSHRule   `json:"ssh"`
	CapMap            []string             `json:"capMap"`
	SelfAllowedIPs    []netip.Prefix       `json:"selfAllowedIPs"`
	SelfPrimaryRoutes []netip.Prefix       `json:"selfPrimaryRoutes"`
}

type confPeer struct {
	AllowedIPs    []netip.Prefix `json:"allowedIPs"`
	PrimaryRoutes []netip.Prefix `json:"primaryRoutes"`
}

// confRejected is what tailplane writes for a policy it rejects.
type confRejected struct {
	Accepted bool   `json:"accepted"`
	Error    string `json:"error"`
}

// conformanceDir finds the cases: $TAILPLANE_CONFORMANCE_DIR, or
// ../shared/conformance/tailscale next to the repository root.
func conformanceDir(t *testing.T) string {
	if d := os.Getenv("TAILPLANE_CONFORMANCE_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "conformance", "tailscale")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("conformance: no go.mod above the working directory; set TAILPLANE_CONFORMANCE_DIR")
		}
		dir = parent
	}
}

// loadPolicy turns a case's policy (a JSON string holding HuJSON, or an
// object) into a Tailnet through the real loader, schema.LoadBytes. The
// case's users join the tailnet: the owner as owner, the others as admins
// (the captured tailnet's users all carry the hosted is-admin capability).
func loadPolicy(c *confCase) (*schema.Tailnet, error) {
	raw := []byte(c.Policy)
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		raw = []byte(s)
	}
	t, diags := schema.LoadBytes(context.Background(), "policy.hujson", raw)
	if diags.HasErrors() {
		return nil, diags.Errors()
	}
	if t.Users == nil {
		t.Users = map[string]schema.User{}
	}
	for _, u := range c.Users {
		role := schema.RoleAdmin
		if u.Login == c.Owner {
			role = schema.RoleOwner
		}
		t.Users[u.Login] = schema.User{Login: u.Login, Name: u.Name, Role: role}
	}
	return t, nil
}

// caseNodes builds the inventory. Node IDs follow the names' sort order;
// registration order, which elects primary routers, comes from the
// nodes' created times (Node.Created), not from the IDs.
func caseNodes(c *confCase) ([]Node, map[tailcfg.NodeID]string) {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range c.Nodes {
			if !yield(n) {
				return
			}
		}
	})
	var nodes []Node
	byID := map[tailcfg.NodeID]string{}
	for i, name := range names {
		cn := c.Nodes[name]
		n := Node{ID: tailcfg.NodeID(i + 1), Name: name, Tags: cn.Tags, IPv4: cn.IPv4, IPv6: cn.IPv6,
			RoutableIPs: cn.RoutableIPs, ApprovedRoutes: cn.ApprovedRoutes, Created: cn.Created}
		if cn.User != nil && len(cn.Tags) == 0 {
			n.User = *cn.User
		}
		nodes = append(nodes, n)
		byID[n.ID] = name
	}
	return nodes, byID
}

// runCase computes what tailplane would send every node of c, or the
// rejection.
func runCase(c *confCase) (map[string]confExpect, error) {
	t, err := loadPolicy(c)
	if err != nil {
		return nil, err
	}
	p, diags := Compile(t)
	if diags.HasErrors() {
		return nil, diags.Errors()
	}
	nodes, names := caseNodes(c)
	for i := range nodes {
		// As reconcile does: recorded approvals plus what autoApprovers approve.
		for _, r := range p.ApproveRoutes(nodes[i]) {
			if !slices.Contains(nodes[i].ApprovedRoutes, r) {
				nodes[i].ApprovedRoutes = append(slices.Clone(nodes[i].ApprovedRoutes), r)
			}
		}
	}
	if ds := p.RunTests(TestInventory(t, nodes)); ds.HasErrors() {
		return nil, ds
	}
	res := p.Evaluate(nodes, Options{ControlURL: "https://unused"})
	out := map[string]confExpect{}
	for _, n := range nodes {
		v := res.Node(n.ID)
		e := confExpect{
			PacketFilter:      v.PacketFilter,
			Peers:             map[string]confPeer{},
			SelfAllowedIPs:    v.AllowedIPs,
			SelfPrimaryRoutes: v.PrimaryRoutes,
			CapMap:            []string{},
			SSH:               []*tailcfg.SSHRule{},
		}
		for _, peer := range res.Peers(n.ID) {
			e.Peers[names[peer.ID]] = confPeer{AllowedIPs: peer.AllowedIPs, PrimaryRoutes: nonNil(peer.PrimaryRoutes)}
		}
		e.PacketFilter = nonNil(e.PacketFilter)
		e.SelfAllowedIPs = nonNil(e.SelfAllowedIPs)
		e.SelfPrimaryRoutes = nonNil(e.SelfPrimaryRoutes)
		if v.SSH != nil {
			e.SSH = v.SSH.Rules
		}
		for k := range v.CapMap {
			e.CapMap = append(e.CapMap, string(k))
		}
		sort.Strings(e.CapMap)
		out[n.Name] = e
	}
	return out, nil
}

func TestConformance(t *testing.T) {
	dir := conformanceDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("conformance: no cases under %s (err %v); set TAILPLANE_CONFORMANCE_DIR", dir, err)
	}
	outDir := os.Getenv("TAILPLANE_CONFORMANCE_OUT")
	type tally struct{ match, total int }
	cats := map[string]*tally{}
	var all tally
	skipped := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c confCase
		// A case that does not decode counts as a mismatch, under its
		// directory's category, rather than stopping the run.
		decodeErr := json.Unmarshal(data, &c)
		if c.Category == "" {
			c.Category = filepath.Base(filepath.Dir(f))
		}
		if c.ID == "" {
			c.ID = strings.TrimSuffix(filepath.Base(f), ".json")
		}
		ran := false
		t.Run(c.ID, func(t *testing.T) {
			ran = true
			diffs := runAndCompare(t, &c, decodeErr, outDir)
			if cats[c.Category] == nil {
				cats[c.Category] = &tally{}
			}
			cats[c.Category].total++
			all.total++
			if len(diffs) == 0 {
				cats[c.Category].match++
				all.match++
			} else if testing.Verbose() {
				if len(diffs) > 12 {
					diffs = append(diffs[:12], fmt.Sprintf("... and %d more", len(diffs)-12))
				}
				t.Log("\n" + strings.Join(diffs, "\n"))
			}
		})
		if !ran {
			skipped++
		}
	}
	fmt.Printf("conformance: %d/%d cases match\n", all.match, all.total)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range cats {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Printf("conformance[%s]: %d/%d cases match\n", name, cats[name].match, cats[name].total)
	}
	floor, source := conformanceFloor(t)
	switch {
	case skipped > 0:
		t.Logf("conformance: %d cases filtered out by -run; floor not checked", skipped)
	case floor >= 0 && all.match < floor:
		t.Errorf("conformance: %d cases match, below the floor of %d (%s)", all.match, floor, source)
	}
}

// conformanceFloor returns the minimum number of matching cases: from
// $TAILPLANE_CONFORMANCE_FLOOR, else testdata/conformance-floor.txt for the
// default suite. Another suite ($TAILPLANE_CONFORMANCE_DIR) without an
// explicit floor returns -1: no floor.
func conformanceFloor(t *testing.T) (int, string) {
	text, source := os.Getenv("TAILPLANE_CONFORMANCE_FLOOR"), "$TAILPLANE_CONFORMANCE_FLOOR"
	if text == "" {
		if os.Getenv("TAILPLANE_CONFORMANCE_DIR") != "" {
			return -1, ""
		}
		source = filepath.Join("testdata", "conformance-floor.txt")
		data, err := os.ReadFile(source)
		if err != nil {
			t.Fatalf("reading the conformance floor: %v", err)
		}
		text = string(data)
	}
	floor, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil {
		t.Fatalf("conformance floor in %s: %v", source, err)
	}
	return floor, source
}

// runAndCompare runs one case and returns its differences from what
// Tailscale computed (none when it matches).
func runAndCompare(t *testing.T, c *confCase, decodeErr error, outDir string) []string {
	if decodeErr != nil {
		return []string{fmt.Sprintf("case does not decode: %v", decodeErr)}
	}
	got, runErr := runCase(c)
	if outDir != "" {
		writeOut(t, outDir, c, got, runErr)
	}
	switch {
	case c.Accepted && runErr != nil:
		return []string{fmt.Sprintf("accepted by Tailscale, rejected by tailplane: %v", runErr)}
	case !c.Accepted && runErr == nil:
		return []string{fmt.Sprintf("rejected by Tailscale (%s), accepted by tailplane", deref(c.Error))}
	case c.Accepted:
		return compareCase(c, got)
	}
	return nil
}

// nonNil makes empty lists marshal as [] like the cases' expectations.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func writeOut(t *testing.T, dir string, c *confCase, got map[string]confExpect, runErr error) {
	var v any = got
	if runErr != nil {
		v = confRejected{Accepted: false, Error: runErr.Error()}
	}
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, c.Category)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, c.ID+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}
