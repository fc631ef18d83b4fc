package admin

import (
	"fmt"
	"net/http"
	"strings"
)

// metrics answers GET /metrics in the Prometheus text exposition format.
func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	ls := a.cfg.Pipeline.Status()
	var b strings.Builder
	metric := func(name, typ, help string, value any) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, value)
	}
	metric("tailplane_propagation_seconds", "gauge",
		"Time from the push webhook (or the revision reaching tailplane) to every connected node holding the last applied revision's netmap.",
		ls.Metrics.Propagation.Seconds())
	metric("tailplane_sync_attempts_total", "counter", "Revisions the sync loop tried to apply, retries included.", ls.Metrics.Attempts)
	metric("tailplane_sync_failures_total", "counter", "Sync attempts that failed (the last applied revision kept serving).", ls.Metrics.Failures)
	metric("tailplane_sync_applied_total", "counter", "Sync attempts that applied and published a revision.", ls.Metrics.Applied)
	metric("tailplane_sync_consecutive_failures", "gauge", "Consecutive retry-later failures of the sync loop.", ls.Failures)
	metric("tailplane_source_consecutive_failures", "gauge", "Consecutive failed checks of the Git remote or directory.", ls.Source.Failures)
	serving := 0
	if ls.Serving {
		serving = 1
	}
	metric("tailplane_serving", "gauge", "1 when an applied revision is being served.", serving)
	if ls.Applied != nil {
		metric("tailplane_applied_timestamp_seconds", "gauge", "When the served revision was applied (Unix time).", ls.Applied.AppliedAt.Unix())
	}
	if ls.Source.LastSuccess.Unix() > 0 {
		metric("tailplane_source_last_success_timestamp_seconds", "gauge", "When the source was last checked successfully (Unix time).", ls.Source.LastSuccess.Unix())
	}
	if a.cfg.Nodes != nil {
		if on, total, err := a.cfg.Nodes(r.Context()); err == nil {
			fmt.Fprintf(&b, "# HELP tailplane_nodes Registered nodes by state.\n# TYPE tailplane_nodes gauge\n")
			fmt.Fprintf(&b, "tailplane_nodes{state=\"online\"} %d\ntailplane_nodes{state=\"offline\"} %d\n", on, total-on)
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprint(w, b.String())
}
