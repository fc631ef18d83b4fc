package server

import (
	"context"
	"net"
	"os"
	"strconv"

	"github.com/tailplane/tailplane/control"
	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/replica"
)

// joinReplicas makes the server, on PostgreSQL, one of the replicas on
// its database: the coordination server fans its nodes' runtime out to
// them, and the pipeline applies revisions only while this replica is the
// applier. On SQLite it changes nothing.
func (s *Server) joinReplicas(cfg Config, ccfg *control.Config, pcfg *pipeline.Config) error {
	if s.st.ReplicaID() == "" {
		return nil
	}
	rcfg := replica.Config{
		Store: s.st, Address: replicaAddress(s.ln.Addr()), Heartbeat: cfg.ReplicaHeartbeat, LeaseTTL: cfg.ReplicaLease,
		Logf: cfg.Logf,
	}
	if s.mesh != nil && len(cfg.DERPMeshWith) == 0 { // relays given by --derp-mesh-with stay as given
		for _, reg := range s.derp.Map.Regions {
			rcfg.DERPNode, rcfg.SetDERPPeers = reg.Nodes[0], s.SetDERPMeshPeers
		}
	}
	r, err := replica.New(rcfg)
	if err != nil {
		return err
	}
	s.rep = r
	ccfg.Fanout = r.Publish
	pcfg.Replica = r
	return nil
}

// replicaAddress is how the status names a replica: the address it
// listens on (all replicas share the server URL), with the host's name
// for a wildcard address.
func replicaAddress(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	host, err := os.Hostname()
	if err != nil {
		return a.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// startReplica takes this replica's first lease and starts listening to
// the others, once the coordination server is up.
func (s *Server) startReplica(ctx context.Context, cfg Config) error {
	if s.rep == nil {
		return nil
	}
	if err := s.rep.Start(ctx, s.ctrl); err != nil {
		return err
	}
	cfg.Logf("replica %s of the servers on %s", s.rep.ID(), s.st.Path)
	return nil
}

// Replica is this server's membership among the replicas on its
// PostgreSQL database; nil on SQLite.
func (s *Server) Replica() *replica.Replica { return s.rep }
