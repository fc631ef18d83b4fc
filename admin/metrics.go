package admin

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/tailplane/tailplane/control"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the metrics that are counted as things happen (the
// propagation histogram and audit actions) and the Go runtime and process
// collectors. Everything else on /metrics is read from the pipeline and
// the coordination server at each scrape. Make one per server with
// NewMetrics and hand it to Config.Metrics; its methods are safe for
// concurrent use and do nothing on a nil *Metrics.
type Metrics struct {
	reg         *prometheus.Registry
	propagation prometheus.Histogram
	audit       *prometheus.CounterVec
}

// propagationBuckets are the propagation histogram's upper bounds in
// seconds: the target is under 2 s, a busy server takes seconds.
var propagationBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}

// NewMetrics returns a server's metrics, with nothing counted yet.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tailplane_propagation_duration_seconds",
			Help:    "Time from the push webhook (or the revision reaching tailplane) to every connected node holding the applied revision's netmap, per applied revision.",
			Buckets: propagationBuckets,
		}),
		audit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tailplane_audit_actions_total",
			Help: "State changes made outside Git and recorded in the audit log, by action and result.",
		}, []string{"action", "result"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.propagation, m.audit,
	)
	return m
}

// ObservePropagation records one applied revision's propagation time;
// pass it as pipeline.Config.ObservePropagation.
func (m *Metrics) ObservePropagation(d time.Duration) {
	if m != nil {
		m.propagation.Observe(d.Seconds())
	}
}

// AuditAction counts one audited action: call it with each entry written
// to the audit log, action as recorded there (say "node.expire") and
// result "ok" or "error".
func (m *Metrics) AuditAction(action, result string) {
	if m != nil {
		m.audit.WithLabelValues(action, result).Inc()
	}
}

// auditVerb is the action label of an audit entry's what: its first word
// ("delete" of "delete node web1 (3)").
func auditVerb(what string) string {
	verb, _, _ := strings.Cut(what, " ")
	return verb
}

// auditResult is the result label of an audited action's outcome.
func auditResult(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// pendingApprovals counts the nodes of c waiting for device approval.
func pendingApprovals(c *control.Server) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		nodes, err := c.Nodes(ctx)
		n := 0
		for _, node := range nodes {
			if node.PendingApproval {
				n++
			}
		}
		return n, err
	}
}

// metrics answers GET /metrics in the Prometheus text format: the
// counted metrics of cfg.Metrics, and the scrape-time ones read under the
// request's context.
func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	scrape := prometheus.NewRegistry()
	scrape.MustRegister(scrapeCollector{ctx: r.Context(), a: a})
	// ContinueOnError: a part that cannot be read (the server is closing)
	// leaves out its metrics, not the whole answer.
	promhttp.HandlerFor(prometheus.Gatherers{a.cfg.Metrics.reg, scrape},
		promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics read at each scrape. The names before client_golang are
// kept (docs/gitops.md).
var (
	descPropagation     = desc("tailplane_propagation_seconds", "Time from the push webhook (or the revision reaching tailplane) to every connected node holding the last applied revision's netmap.")
	descAttempts        = desc("tailplane_sync_attempts_total", "Revisions the sync loop tried to apply, retries included.")
	descFailures        = desc("tailplane_sync_failures_total", "Sync attempts that failed (the last applied revision kept serving).")
	descApplied         = desc("tailplane_sync_applied_total", "Sync attempts that applied and published a revision.")
	descSyncConsecutive = desc("tailplane_sync_consecutive_failures", "Consecutive retry-later failures of the sync loop.")
	descSrcConsecutive  = desc("tailplane_source_consecutive_failures", "Consecutive failed checks of the Git remote or directory.")
	descServing         = desc("tailplane_serving", "1 when an applied revision is being served.")
	descAppliedAt       = desc("tailplane_applied_timestamp_seconds", "When the served revision was applied (Unix time).")
	descSourceOK        = desc("tailplane_source_last_success_timestamp_seconds", "When the source was last checked successfully (Unix time).")
	descNodes           = desc("tailplane_nodes", "Registered nodes by state.", "state")
	descByUser          = desc("tailplane_nodes_by_user", "Logged-in nodes of each declared user, by state.", "user", "state")
	descByTag           = desc("tailplane_nodes_by_tag", "Logged-in nodes with each tag of tagOwners, by state (a node with two tags counts under both).", "tag", "state")
	descRegistrations   = desc("tailplane_registrations_total", "Registration requests by result: new (a node registered), login (a known node logged in again), refused.", "result")
	descSessions        = desc("tailplane_map_sessions", "Streaming map sessions open now.")
	descSessionsStarted = desc("tailplane_map_sessions_started_total", "Streaming map sessions begun.")
	descPending         = desc("tailplane_nodes_pending_approval", "Nodes waiting for device approval.")
)

// scrapeCollector reads the pipeline's status and the coordination
// server's counts for one scrape. It describes nothing up front (an
// unchecked collector): which users and tags it reports depends on the
// served config.
type scrapeCollector struct {
	ctx context.Context
	a   *api
}

func (scrapeCollector) Describe(chan<- *prometheus.Desc) {}

func (c scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(d *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, typ, v, labels...)
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ls := c.a.cfg.Pipeline.Status()
	emit(descPropagation, gauge, ls.Metrics.Propagation.Seconds())
	emit(descAttempts, counter, float64(ls.Metrics.Attempts))
	emit(descFailures, counter, float64(ls.Metrics.Failures))
	emit(descApplied, counter, float64(ls.Metrics.Applied))
	emit(descSyncConsecutive, gauge, float64(ls.Failures))
	emit(descSrcConsecutive, gauge, float64(ls.Source.Failures))
	emit(descServing, gauge, boolValue(ls.Serving))
	if ls.Applied != nil {
		emit(descAppliedAt, gauge, float64(ls.Applied.AppliedAt.Unix()))
	}
	if ls.Source.LastSuccess.Unix() > 0 {
		emit(descSourceOK, gauge, float64(ls.Source.LastSuccess.Unix()))
	}
	cfg := c.a.cfg
	if cfg.Nodes != nil {
		if on, total, err := cfg.Nodes(c.ctx); err != nil {
			ch <- prometheus.NewInvalidMetric(descNodes, err)
		} else {
			emit(descNodes, gauge, float64(on), "online")
			emit(descNodes, gauge, float64(total-on), "offline")
		}
	}
	if cfg.Stats != nil {
		c.collectStats(ch, emit)
	}
	pending := 0
	if cfg.PendingApprovals != nil {
		n, err := cfg.PendingApprovals(c.ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descPending, err)
			return
		}
		pending = n
	}
	emit(descPending, gauge, float64(pending))
}

// collectStats emits the coordination server's counts; every declared
// user and tag is listed, with zeros when it has no nodes.
func (c scrapeCollector) collectStats(ch chan<- prometheus.Metric, emit func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	st, err := c.a.cfg.Stats(c.ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descRegistrations, err)
		return
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	emit(descRegistrations, counter, float64(st.Registrations.New), "new")
	emit(descRegistrations, counter, float64(st.Registrations.Login), "login")
	emit(descRegistrations, counter, float64(st.Registrations.Refused), "refused")
	emit(descSessions, gauge, float64(st.MapSessions))
	emit(descSessionsStarted, counter, float64(st.MapSessionsStarted))
	served := c.a.cfg.Served()
	users, tags := maps.Clone(st.Users), maps.Clone(st.Tags)
	if users == nil {
		users = map[string]control.NodeCount{}
	}
	if tags == nil {
		tags = map[string]control.NodeCount{}
	}
	for login := range served.Users {
		users[login] = users[login] // zero when the user has no nodes
	}
	for tag := range served.Policy.TagOwners {
		tags[tag] = tags[tag]
	}
	for login, n := range users {
		emit(descByUser, gauge, float64(n.Online), login, "online")
		emit(descByUser, gauge, float64(n.Total-n.Online), login, "offline")
	}
	for tag, n := range tags {
		emit(descByTag, gauge, float64(n.Online), tag, "online")
		emit(descByTag, gauge, float64(n.Total-n.Online), tag, "offline")
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
