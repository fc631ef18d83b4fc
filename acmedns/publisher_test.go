package acmedns

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/tailplane/tailplane/internal/testkit"
)

func newPublisher(t *testing.T, cfg PublisherConfig) *Publisher {
	t.Helper()
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPublisherEvictsAndCloses(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s := startServer(t, clock)
	p := newPublisher(t, PublisherConfig{Provider: s, MaxPerName: 2, Lifetime: time.Hour, Now: clock.Now, Logf: t.Logf})
	steps := []struct {
		value string
		want  []string
	}{
		{"one", []string{"one"}},
		{"two", []string{"one", "two"}},
		{"two", []string{"one", "two"}}, // renewed, not added
		{"three", []string{"three", "two"}},
	}
	for i, st := range steps {
		if err := p.Set(t.Context(), chal, st.value); err != nil {
			t.Fatalf("step %d: Set(%q): %v", i, st.value, err)
		}
		if diff := cmp.Diff(st.want, testkit.LookupTXT(t, s.Addr(), chal)); diff != "" {
			t.Errorf("step %d: published values (-want +got):\n%s", i, diff)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := testkit.LookupTXT(t, s.Addr(), chal); len(got) != 0 {
		t.Errorf("after Close the server still publishes %q; want every record deleted", got)
	}
	if err := p.Set(t.Context(), chal, "late"); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("Set after Close = %v; want a shutting-down error", err)
	}
}

func TestPublisherDeletesAfterLifetime(t *testing.T) {
	s := startServer(t, &fakeClock{t: time.Now()})
	p := newPublisher(t, PublisherConfig{Provider: s, Lifetime: 300 * time.Millisecond, Logf: t.Logf})
	if err := p.Set(t.Context(), chal, "token"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"token"}, testkit.LookupTXT(t, s.Addr(), chal)); diff != "" {
		t.Errorf("published values (-want +got):\n%s", diff)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.Pending() > 0 || len(testkit.LookupTXT(t, s.Addr(), chal)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("record still published 30 s after its 300 ms lifetime")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPublisherRateLimit(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s := startServer(t, clock)
	p := newPublisher(t, PublisherConfig{Provider: s, RateLimit: 3, Lifetime: time.Hour, Now: clock.Now, Logf: t.Logf})
	for i := range 3 {
		if err := p.Set(t.Context(), chal, fmt.Sprintf("v%d", i)); err != nil {
			t.Fatalf("Set %d: %v", i, err)
		}
		clock.Advance(time.Minute)
	}
	err := p.Set(t.Context(), chal, "v3")
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("fourth Set within the hour = %v; want a *RateLimitError", err)
	}
	if diff := cmp.Diff(&RateLimitError{Name: chal, Limit: 3, Per: time.Hour, RetryAfter: 57 * time.Minute}, rl); diff != "" {
		t.Errorf("RateLimitError (-want +got):\n%s", diff)
	}
	other := "_acme-challenge.node2.ts.example.test."
	if err := p.Set(t.Context(), other, "v"); err != nil {
		t.Errorf("another name is limited separately, but Set = %v", err)
	}
	clock.Advance(57 * time.Minute)
	if err := p.Set(t.Context(), chal, "v3"); err != nil {
		t.Errorf("Set once the oldest is an hour old = %v; want nil", err)
	}
}

func TestPublisherRefuses(t *testing.T) {
	s := startServer(t, &fakeClock{t: time.Now()})
	p := newPublisher(t, PublisherConfig{Provider: s, Logf: t.Logf})
	tests := []struct {
		name, rr, value, wantErr string
	}{
		{"not a challenge name", "node1.ts.example.test", "v", "does not start with _acme-challenge"},
		{"provider refuses", "_acme-challenge.node1.other.test", "v", "outside the zone"},
		{"bad value", chal, "a b", "printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Set(t.Context(), tt.rr, tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Set(%q, %q) = %v; want error containing %q", tt.rr, tt.value, err, tt.wantErr)
			}
			if n := p.Pending(); n != 0 {
				t.Errorf("%d records pending after a refused Set; want 0", n)
			}
		})
	}
}

func TestServerSetZone(t *testing.T) {
	s := startServer(t, &fakeClock{t: time.Now()})
	if err := s.SetTXT(t.Context(), chal, "old-zone"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetZone("Other.Example.test."); err != nil {
		t.Fatal(err)
	}
	if got := s.Zone(); got != "other.example.test." {
		t.Errorf("Zone() = %q; want other.example.test.", got)
	}
	if got := query(t, "udp", s.Addr(), chal, dns.TypeTXT).Rcode; got != "REFUSED" {
		t.Errorf("the old zone's record answers %s; want REFUSED", got)
	}
	moved := "_acme-challenge.node1.other.example.test."
	if err := s.SetTXT(t.Context(), moved, "new-zone"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"new-zone"}, testkit.LookupTXT(t, s.Addr(), moved)); diff != "" {
		t.Errorf("new zone's record (-want +got):\n%s", diff)
	}
	if err := s.SetZone("bad..zone"); err == nil {
		t.Error("SetZone(bad..zone) = nil; want an error")
	}
}
