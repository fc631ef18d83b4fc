package control

import (
	"context"
	"sync/atomic"
)

// Stats are the coordination server's counts, for /metrics.
type Stats struct {
	// Registrations counts registration requests since the server started.
	Registrations RegistrationCounts
	// MapSessions is the number of streaming map sessions open now.
	MapSessions int
	// MapSessionsStarted counts the streaming map sessions begun since the
	// server started.
	MapSessionsStarted int64
	// Users counts the logged-in nodes each user owns, by login; a user
	// without nodes is absent.
	Users map[string]NodeCount
	// Tags counts the logged-in tagged nodes by tag; a node with two tags
	// counts under both, a tag without nodes is absent.
	Tags map[string]NodeCount
}

// RegistrationCounts counts registration requests by outcome.
type RegistrationCounts struct {
	New     int64 // registered a new node with an auth key
	Login   int64 // logged a known node in again with an auth key (after a logout, an expiry or a new node key)
	Refused int64 // answered with an error
}

// NodeCount counts logged-in nodes and those with a map session.
type NodeCount struct {
	Online, Total int
}

// counters are the Server's event counts since it started; see Stats.
// They are atomic: registrations are counted by the Noise handlers, the
// rest by the owner goroutine.
type counters struct {
	newNodes, logins, refused, sessions atomic.Int64
}

// Stats returns the server's counts. The node counts are taken on the
// owner goroutine, so they are one consistent snapshot.
func (s *Server) Stats(ctx context.Context) (Stats, error) {
	st := Stats{
		Registrations: RegistrationCounts{
			New: s.counts.newNodes.Load(), Login: s.counts.logins.Load(), Refused: s.counts.refused.Load(),
		},
		MapSessionsStarted: s.counts.sessions.Load(),
		Users:              map[string]NodeCount{},
		Tags:               map[string]NodeCount{},
	}
	err := s.do(ctx, func(w *world) error {
		for _, n := range w.nodes {
			if n.loggedOut {
				continue
			}
			online := w.live[n.id] == n
			count := func(m map[string]NodeCount, owner string) {
				c := m[owner]
				c.Total++
				if online {
					c.Online++
				}
				m[owner] = c
			}
			if !n.tagged() {
				count(st.Users, n.userLogin)
			}
			for _, tag := range n.tags {
				count(st.Tags, tag)
			}
		}
		for _, list := range w.streams {
			for _, sess := range list {
				if !sess.isClosed() {
					st.MapSessions++
				}
			}
		}
		return nil
	})
	return st, err
}
