package policy

import (
	"testing"
	"time"
)

// TestSSHCheckPeriodBounds: Tailscale's syntax reference says a
// checkPeriod is "at least one minute and at most 168 hours (one week)",
// or "always"; its control plane refuses longer periods and negative ones
// but accepts shorter ones (30s, 0s), so tailplane does the same. A zero
// period checks every connection, like "always".
func TestSSHCheckPeriodBounds(t *testing.T) {
	tests := []struct {
		period string
		ok     bool
		want   time.Duration // what SSHCheckPeriod returns when ok
	}{
		{"168h", true, 168 * time.Hour},
		{"10080m", true, 168 * time.Hour},
		{"168h0m1s", false, 0},
		{"169h", false, 0},
		{"8760h", false, 0},
		{"1m", true, time.Minute},
		{"30s", true, 30 * time.Second},
		{"0s", true, 0},
		{"always", true, 0},
		{"-1m", false, 0},
		{"1d", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.period, func(t *testing.T) {
			p, diags := Compile(load(t, `{"tagOwners": {"tag:db": []},
				"ssh": [{"action": "check", "checkPeriod": "`+tt.period+`", "src": ["alice@example.com"], "dst": ["tag:db"], "users": ["root"]}]}`))
			if got := !diags.HasErrors(); got != tt.ok {
				t.Fatalf("checkPeriod %q accepted = %v, want %v (diagnostics: %v)", tt.period, got, tt.ok, diags)
			}
			if !tt.ok {
				for _, d := range diags.Errors() {
					if d.Path != "ssh[0].checkPeriod" {
						t.Errorf("error at %s, want ssh[0].checkPeriod: %v", d.Path, d)
					}
				}
				return
			}
			period, check := p.Evaluate(smallNodes(), Options{}).SSHCheckPeriod(1, 10, "root")
			if !check || period != tt.want {
				t.Errorf("SSHCheckPeriod = %v, %v; want %v, true", period, check, tt.want)
			}
		})
	}
}
