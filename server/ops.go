package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/agentaudit/agentaudit/ledger"
)

// Metrics are the server's Prometheus metrics, on a registry of its own.
type Metrics struct {
	reg          *prometheus.Registry
	ingested     *prometheus.CounterVec
	batchSize    prometheus.Histogram
	commit       prometheus.Histogram
	commitErrors prometheus.Counter
	authFailures prometheus.Counter
	requests     *prometheus.CounterVec
	// The children of ingested and requests, by their labels: WithLabelValues hashes the values
	// and takes the vector's lock on every call, and a status code needs formatting first.
	mu         sync.RWMutex
	ingestedBy map[string]prometheus.Counter
	requestsBy map[routeCode]prometheus.Counter
}

type routeCode struct {
	route string
	code  int
}

// NewMetrics creates the metrics. Pass ObserveCommit to the ledger (Options.OnCommit) so commit
// latency is measured where it happens.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentaudit_events_ingested_total",
			Help: "Events durably committed, by the door they came in by."}, []string{"door"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "agentaudit_commit_batch_events",
			Help: "Events per ledger commit (group commit).", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "agentaudit_commit_seconds",
			Help: "Ledger commit latency, fsync included.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12)}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentaudit_commit_errors_total", Help: "Failed ledger commits."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentaudit_auth_failures_total", Help: "Requests with a missing, unknown or revoked API key."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentaudit_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.ingested, m.batchSize, m.commit, m.commitErrors, m.authFailures, m.requests,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// countIngested adds n to the events ingested by door.
func (m *Metrics) countIngested(door string, n int) {
	m.mu.RLock()
	c, ok := m.ingestedBy[door]
	m.mu.RUnlock()
	if !ok {
		c = m.ingested.WithLabelValues(door)
		m.mu.Lock()
		if m.ingestedBy == nil {
			m.ingestedBy = map[string]prometheus.Counter{}
		}
		m.ingestedBy[door] = c
		m.mu.Unlock()
	}
	c.Add(float64(n))
}

// countRequest counts one request answered with code on route.
func (m *Metrics) countRequest(route string, code int) {
	k := routeCode{route, code}
	m.mu.RLock()
	c, ok := m.requestsBy[k]
	m.mu.RUnlock()
	if !ok {
		c = m.requests.WithLabelValues(route, strconv.Itoa(code))
		m.mu.Lock()
		if m.requestsBy == nil {
			m.requestsBy = map[routeCode]prometheus.Counter{}
		}
		m.requestsBy[k] = c
		m.mu.Unlock()
	}
	c.Inc()
}

// ObserveCommit records one ledger commit.
func (m *Metrics) ObserveCommit(events int, d time.Duration, err error) {
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.batchSize.Observe(float64(events))
	m.commit.Observe(d.Seconds())
}

// watchLedger adds the gauges read from the ledger when scraped.
func (m *Metrics) watchLedger(l *ledger.Ledger) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentaudit_queue_depth", Help: "Append requests waiting for the ledger writer."},
			func() float64 { return float64(l.QueueLen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentaudit_tree_size", Help: "Events in the log."},
			func() float64 { return float64(l.Head().N) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentaudit_checkpoint_age_seconds", Help: "Seconds since this process last signed a checkpoint (-1: none yet)."},
			func() float64 {
				if t := l.LastCheckpoint(); !t.IsZero() {
					return time.Since(t).Seconds()
				}
				return -1
			}),
	)
}

// watchStore adds the gauge of acknowledged events the store has not inserted yet, when it
// has such a backlog (store/sqlite's intake): how far its database runs behind ingest.
func (m *Metrics) watchStore(st any) {
	b, ok := st.(interface{ Backlog() int64 })
	if !ok {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentaudit_store_backlog_events",
		Help: "Acknowledged events durable in the store's intake and not yet in its database."},
		func() float64 { return float64(b.Backlog()) }))
}

// Register adds collectors of other packages (the alert engine's) to the metrics served.
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

func (m *Metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// authLimiter rate-limits failed authentication per client address: after a burst of failures
// an address is refused (429) until its bucket refills, whatever key it sends.
type authLimiter struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

const (
	authFailuresPerMinute = 10
	authFailureBurst      = 20
	maxTrackedAddresses   = 10000
)

func (a *authLimiter) limiter(ip string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.limiters == nil || len(a.limiters) > maxTrackedAddresses {
		a.limiters = map[string]*rate.Limiter{} // bounded memory: start over rather than grow
	}
	l, ok := a.limiters[ip]
	if !ok {
		l = rate.NewLimiter(rate.Every(time.Minute/authFailuresPerMinute), authFailureBurst)
		a.limiters[ip] = l
	}
	return l
}

// blocked reports whether ip has used up its failures.
func (a *authLimiter) blocked(ip string) bool { return a.limiter(ip).Tokens() < 1 }

// fail counts a failure of ip and reports whether it was within the allowance.
func (a *authLimiter) fail(ip string) bool { return a.limiter(ip).Allow() }

// statusWriter remembers the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
