package control

import (
	"context"
	"sync"
)

// propagation tracks which map sessions still lack a netmap built from the
// latest config, so the GitOps loop can tell when a commit reached every
// connected node.
type propagation struct {
	mu      sync.Mutex // guards the fields below
	gen     uint64     // config generation; bumped by Install, starts at 1 after the first
	waiting map[*session]bool
	done    chan struct{} // closed when waiting empties (or a newer config supersedes)
}

// start begins a new generation that every session in live must receive.
// It runs on the owner goroutine, inside Install.
func (p *propagation) start(live []*session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil && len(p.waiting) > 0 {
		close(p.done) // superseded: its waiters now wait for nothing older
	}
	p.gen++
	p.waiting = make(map[*session]bool, len(live))
	for _, s := range live {
		p.waiting[s] = true
	}
	p.done = make(chan struct{})
	if len(p.waiting) == 0 {
		close(p.done)
	}
}

// current is the generation a netmap built now carries. Owner goroutine.
func (p *propagation) current() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// delivered records that s wrote a netmap of generation gen (0: not a
// full netmap, ignored).
func (p *propagation) delivered(s *session, gen uint64) {
	if gen == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == p.gen {
		p.forgetLocked(s)
	}
}

// forget drops s, which ended, from the sessions waited for.
func (p *propagation) forget(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetLocked(s)
}

func (p *propagation) forgetLocked(s *session) {
	if !p.waiting[s] {
		return
	}
	delete(p.waiting, s)
	if len(p.waiting) == 0 {
		close(p.done)
	}
}

// WaitPropagated returns once every node that had a live map session when
// Install last returned has been sent a netmap built from that config
// (or its session ended, or a newer config superseded it), or when ctx is
// done. Together with Install it measures how long a commit takes to
// reach the tailnet.
func (s *Server) WaitPropagated(ctx context.Context) error {
	s.prop.mu.Lock()
	done := s.prop.done
	s.prop.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
