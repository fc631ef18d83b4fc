package acmedns

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"
)

// Defaults for the zero values of PublisherConfig.
const (
	DefaultLifetime   = 10 * time.Minute
	DefaultMaxPerName = 4
	DefaultRateLimit  = 10
	DefaultTimeout    = 3 * time.Minute
	closeTimeout      = 30 * time.Second
)

// PublisherConfig configures a Publisher. Provider is required.
type PublisherConfig struct {
	// Provider sets and deletes the records: the embedded *Server or an
	// external provider (NewProvider).
	Provider Provider
	// Lifetime is how long a record stays published before the Publisher
	// deletes it (an ACME order takes seconds to a minute); zero means
	// DefaultLifetime.
	Lifetime time.Duration
	// MaxPerName is how many values one name holds at once (a name and its
	// wildcard need two); setting one more deletes the oldest. Zero means
	// DefaultMaxPerName.
	MaxPerName int
	// RateLimit is how many Sets (failed ones included) one name may have
	// per Lifetime; further ones are refused until the oldest is Lifetime
	// old. Zero means DefaultRateLimit.
	RateLimit int
	// Timeout bounds one call to the provider (Route53 waits for its
	// change to be in sync); zero means DefaultTimeout.
	Timeout time.Duration
	// Logf logs records that could not be deleted; nil means log.Printf.
	Logf func(format string, args ...any)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Publisher publishes ACME DNS-01 records through a Provider for a short
// time and removes them afterwards. The records are runtime state: they
// live in memory and in the provider, never in Git or the applied config.
// It is safe for concurrent use.
type Publisher struct {
	cfg PublisherConfig

	mu      sync.Mutex               // guards the fields below
	pending map[string][]*pendingTXT // canonical name -> values, oldest first
	sets    map[string][]time.Time   // canonical name -> when values were set, for RateLimit
	timers  map[*pendingTXT]*time.Timer
	closed  bool
}

type pendingTXT struct {
	name, value string
}

// NewPublisher returns a Publisher; Close deletes what is still published.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Provider == nil {
		return nil, errors.New("acmedns: PublisherConfig.Provider is nil; pass the embedded Server or an external provider")
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.MaxPerName <= 0 {
		cfg.MaxPerName = DefaultMaxPerName
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = DefaultRateLimit
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Publisher{cfg: cfg, pending: map[string][]*pendingTXT{}, sets: map[string][]time.Time{}, timers: map[*pendingTXT]*time.Timer{}}, nil
}

// RateLimitError is Set's error when name had RateLimit values set within
// the last Lifetime.
type RateLimitError struct {
	Name       string
	Limit      int
	Per        time.Duration
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("acmedns: %d challenge records were set for %s within %v, the most allowed; try again in %v",
		e.Limit, e.Name, e.Per, e.RetryAfter.Round(time.Second))
}

// Set publishes value at name (an _acme-challenge name) and deletes it
// after Lifetime. Setting a value that is published already renews it.
func (p *Publisher) Set(ctx context.Context, name, value string) error {
	c, err := challengeName(name)
	if err != nil {
		return err
	}
	if err := CheckTXTValue(value); err != nil {
		return err
	}
	evicted, err := p.admit(c, value)
	if err != nil {
		return err
	}
	for _, old := range evicted {
		p.deleteNow(old)
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	if err := p.cfg.Provider.SetTXT(sctx, c, value); err != nil {
		return err // a new value is not tracked yet; a renewed one keeps its old expiry
	}
	if !p.track(c, value) { // Close ran during SetTXT: take the record back
		p.deleteNow(&pendingTXT{c, value})
		return errors.New("acmedns: the server is shutting down")
	}
	return nil
}

// track records value at name as published and (re)starts its Lifetime;
// false means the Publisher is closed.
func (p *Publisher) track(name, value string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	rec := p.trackLocked(name, value)
	if t := p.timers[rec]; t != nil {
		t.Stop()
	}
	p.timers[rec] = time.AfterFunc(p.cfg.Lifetime, func() { p.expire(rec) })
	return true
}

// admit applies RateLimit and MaxPerName to a new value at name: it counts
// the set and returns the values to delete to make room.
func (p *Publisher) admit(name, value string) ([]*pendingTXT, error) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("acmedns: the server is shutting down")
	}
	sets := slices.DeleteFunc(p.sets[name], func(t time.Time) bool { return !now.Before(t.Add(p.cfg.Lifetime)) })
	if len(sets) >= p.cfg.RateLimit {
		p.sets[name] = sets
		return nil, &RateLimitError{Name: name, Limit: p.cfg.RateLimit, Per: p.cfg.Lifetime, RetryAfter: sets[0].Add(p.cfg.Lifetime).Sub(now)}
	}
	p.sets[name] = append(sets, now)
	var evicted []*pendingTXT
	vals := p.pending[name]
	for len(vals) >= p.cfg.MaxPerName && !slices.ContainsFunc(vals, func(r *pendingTXT) bool { return r.value == value }) {
		evicted = append(evicted, vals[0])
		p.untrackLocked(vals[0])
		vals = p.pending[name]
	}
	return evicted, nil
}

// trackLocked returns the record of value at name, adding it if new.
func (p *Publisher) trackLocked(name, value string) *pendingTXT {
	for _, r := range p.pending[name] {
		if r.value == value {
			return r
		}
	}
	r := &pendingTXT{name, value}
	p.pending[name] = append(p.pending[name], r)
	return r
}

// untrackLocked stops tracking r (it is deleted by the caller).
func (p *Publisher) untrackLocked(r *pendingTXT) {
	if t := p.timers[r]; t != nil {
		t.Stop()
		delete(p.timers, r)
	}
	vals := slices.DeleteFunc(p.pending[r.name], func(x *pendingTXT) bool { return x == r })
	if len(vals) == 0 {
		delete(p.pending, r.name)
	} else {
		p.pending[r.name] = vals
	}
}

// expire deletes r once its Lifetime is over, unless it was renewed,
// replaced or Close took it.
func (p *Publisher) expire(r *pendingTXT) {
	p.mu.Lock()
	if p.closed || !slices.Contains(p.pending[r.name], r) {
		p.mu.Unlock()
		return
	}
	p.untrackLocked(r)
	p.mu.Unlock()
	p.deleteNow(r)
}

// deleteNow removes r from the provider within Timeout.
func (p *Publisher) deleteNow(r *pendingTXT) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	p.delete(ctx, r)
}

// delete removes r from the provider, logging (never returning) failure:
// nobody waits for it.
func (p *Publisher) delete(ctx context.Context, r *pendingTXT) {
	if err := p.cfg.Provider.DeleteTXT(ctx, r.name, r.value); err != nil {
		p.cfg.Logf("acmedns: deleting the challenge record at %s: %v (remove it by hand if it stays)", r.name, err)
	}
}

// Pending returns the number of records published now.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, vals := range p.pending {
		n += len(vals)
	}
	return n
}

// Close deletes every record still published (giving the provider 30 s
// for all of them) and refuses further Sets. It is safe to call more than
// once.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var all []*pendingTXT
	for _, vals := range p.pending {
		all = append(all, vals...)
	}
	for _, r := range all {
		p.untrackLocked(r)
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	for _, r := range all {
		p.delete(ctx, r)
	}
	return nil
}
