package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tailplane/tailplane/replica"
)

// writeReplicas renders the replicas part of `tailplane status`: one line
// per replica, with its address, the nodes streaming to it, its lease and
// its part in applying revisions.
func writeReplicas(w io.Writer, rs *replica.Status, ago func(time.Time) string) {
	if rs == nil {
		return
	}
	fmt.Fprintf(w, "replicas:  %d on the database; this one is %s\n", len(rs.Replicas), rs.Self)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	for _, r := range rs.Replicas {
		lease := "lease ends " + ago(r.LeaseUntil)
		if !r.Live {
			lease = "LAPSED " + ago(r.LeaseUntil) + ": its nodes are offline"
		}
		role := ""
		if r.Applier {
			role = "applies revisions"
		}
		if r.ID == rs.AppliedBy && rs.AppliedRevision != 0 {
			if role != "" {
				role += "; "
			}
			role += fmt.Sprintf("applied #%d", rs.AppliedRevision)
		}
		nodes := fmt.Sprintf("%d nodes", r.Nodes)
		if r.Nodes == 1 {
			nodes = "1 node"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.ID, r.Address, nodes, lease, role)
	}
	tw.Flush()
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}
