package control

import (
	"fmt"
	"testing"

	"github.com/tailplane/tailplane/schema"
	"tailscale.com/tailcfg"
)

// segmentedPlan is the shape of the load generator's segmented tailnet
// (cmd/tailplane-loadtest): the first services nodes are tag:svc, the
// rest fill groups of groupSize (tag:g0, tag:g1, ...). A group reaches
// itself on every port and the services on 443; revision rev adds a rule
// per group to port 40000+rev, which changes every packet filter and no
// peer set.
type segmentedPlan struct{ nodes, groupSize, services int }

func (p segmentedPlan) tag(i int) string {
	if i < p.services {
		return "tag:svc"
	}
	return fmt.Sprintf("tag:g%d", (i-p.services)/p.groupSize)
}

func (p segmentedPlan) groups() int { return (p.nodes - p.services + p.groupSize - 1) / p.groupSize }

// tailnet is revision rev of the plan's config.
func (p segmentedPlan) tailnet(rev int) *schema.Tailnet {
	tn := testTailnet()
	marker := fmt.Sprint(40000 + rev)
	tn.Policy.TagOwners = map[string][]string{"tag:svc": {"alice@example.com"}}
	var members []string
	for g := range p.groups() {
		tag := fmt.Sprintf("tag:g%d", g)
		members = append(members, tag)
		tn.Policy.TagOwners[tag] = []string{"alice@example.com"}
		tn.Policy.ACLs = append(tn.Policy.ACLs,
			schema.ACL{Action: "accept", Src: []string{tag}, Dst: []string{tag + ":*"}},
			schema.ACL{Action: "accept", Src: []string{tag}, Dst: []string{tag + ":" + marker}})
	}
	tn.Policy.ACLs = append(tn.Policy.ACLs,
		schema.ACL{Action: "accept", Src: members, Dst: []string{"tag:svc:443"}},
		schema.ACL{Action: "accept", Src: members, Dst: []string{"tag:svc:" + marker}})
	return tn
}

// segmentedWorld builds a world of the plan's nodes at revision 1, all
// with live sessions that hold their first full netmap, without a
// database or network.
func segmentedWorld(b testing.TB, p segmentedPlan) *world {
	b.Helper()
	w := benchWorldOf(b, p.nodes, p.tailnet(1), func(i int) []string { return []string{p.tag(i)} })
	for _, nd := range w.live {
		w.refreshView(nd) // online now
	}
	for id, nd := range w.live {
		nd.sess.resetForFull(nil, nil)
		if w.srv.snapshotMap(nd.sess, id) == nil {
			b.Fatalf("node %d: no netmap", id)
		}
	}
	return w
}

// BenchmarkCommit measures a commit of the load generator's segmented
// tailnet at 10,000 nodes, every node connected: "install" is the owner
// goroutine's share (the config installed, every view refreshed, every
// session told); "frames" adds what every session then builds, encodes
// and compresses for its client (run one after another here; the server
// runs them on the sessions' goroutines). Each iteration alternates
// between two revisions, so every packet filter changes and no peer set
// does.
func BenchmarkCommit(b *testing.B) {
	p := segmentedPlan{nodes: 10_000, groupSize: 200, services: 3}
	for _, frames := range []bool{false, true} {
		name := "nodes=10000/install"
		if frames {
			name = "nodes=10000/frames"
		}
		b.Run(name, func(b *testing.B) {
			w := segmentedWorld(b, p)
			revs := make([]*Prepared, 2)
			for i := range revs {
				c, err := w.srv.Prepare(p.tailnet(i + 2))
				if err != nil {
					b.Fatal(err)
				}
				revs[i] = c
			}
			b.ResetTimer()
			var bytes int64
			for i := range b.N {
				w.install(b.Context(), revs[i%2])
				if !frames {
					b.StopTimer()
				}
				for id, nd := range w.live {
					fr, err := w.srv.benchFrame(nd.sess, id)
					if err != nil {
						b.Fatal(err)
					}
					bytes += int64(len(fr))
				}
				b.StartTimer()
			}
			if frames {
				b.ReportMetric(float64(bytes)/float64(b.N), "B-sent/op")
			}
		})
	}
}

// benchFrame is what sess's goroutine writes for its next wake-up (see
// Server.stream), encoded and compressed as for a zstd client.
func (s *Server) benchFrame(sess *session, id tailcfg.NodeID) ([]byte, error) {
	d := sess.take()
	if !d.full && d.resync.pending {
		s.resolveResync(sess, id, &d)
	}
	if d.full {
		sess.resetForFull(nil, nil)
		resp := s.snapshotMap(sess, id)
		if resp == nil {
			return nil, fmt.Errorf("node %d: no netmap", id)
		}
		return s.encodeFrame(resp, true)
	}
	if d.empty() {
		return nil, nil
	}
	resp := s.deltaMap(d)
	sess.noteSent(&d)
	return s.encodeFrame(resp, true)
}
