package policy

import (
	"context"
	"testing"

	"github.com/tailplane/tailplane/schema"
)

// FuzzCompile feeds policy documents through the loader, the compiler,
// evaluation of every node and the policy tests: none may panic, and a
// policy that compiles must evaluate.
func FuzzCompile(f *testing.F) {
	f.Add([]byte(smallPolicy))
	f.Add([]byte(`{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`))
	f.Add([]byte(`{"grants": [{"src": ["autogroup:member"], "dst": ["10.0.0.0/8"], "ip": ["tcp:22", "icmp:*"], "via": ["tag:x"]}], "tagOwners": {"tag:x": []}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tn, diags := schema.LoadBytes(context.Background(), "fuzz.hujson", data)
		if diags.HasErrors() || tn == nil {
			return
		}
		p, diags := Compile(tn)
		if diags.HasErrors() {
			return
		}
		nodes := smallNodes()
		res := p.Evaluate(nodes, Options{})
		for _, n := range nodes {
			if res.Node(n.ID) == nil {
				t.Fatalf("no view for node %d", n.ID)
			}
		}
		p.RunTests(nodes)
		for _, n := range nodes {
			p.ApproveRoutes(n)
		}
	})
}

// FuzzPorts checks the port, protocol and destination parsers never panic
// and that parsed port ranges are well-formed.
func FuzzPorts(f *testing.F) {
	for _, s := range []string{"*", "22", "80-443", "22,80,443", "tcp:443", "icmp:*", "0", "65536", "tag:web:80", "[fd7a::1]:22", "6:22"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if prs, err := parsePorts(s); err == nil {
			for _, pr := range prs {
				if pr.First > pr.Last {
					t.Fatalf("parsePorts(%q) = range %d-%d", s, pr.First, pr.Last)
				}
			}
		}
		parseGrantIP(s)
		parseProto(s)
		splitAliasPorts(s)
		parseAddrs(s)
	})
}
