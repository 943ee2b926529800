package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// execBuckets are the upper bounds (seconds) of the exec latency histogram.
var execBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// serveMetrics are petty serve's Prometheus metrics, written by hand in
// the text exposition format.
type serveMetrics struct {
	sandboxes func() int // the gauges, read at scrape time
	pooled    func() int

	mu       sync.Mutex
	creates  uint64
	failures uint64
	counts   []uint64 // per bucket, not cumulative; last is +Inf
	sum      float64
	n        uint64
}

// newServeMetrics returns metrics whose gauges read sandboxes (alive,
// handed out) and pooled (ready in the warm pools) at scrape time.
func newServeMetrics(sandboxes, pooled func() int) *serveMetrics {
	return &serveMetrics{sandboxes: sandboxes, pooled: pooled, counts: make([]uint64, len(execBuckets)+1)}
}

// created counts a create_sandbox, failed or not.
func (m *serveMetrics) created(_ time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	if err != nil {
		m.failures++
	}
}

// exec records one command's latency.
func (m *serveMetrics) exec(d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(execBuckets) && s > execBuckets[i] {
		i++
	}
	m.counts[i]++
	m.sum += s
	m.n++
}

// write writes the metrics in the Prometheus text format.
func (m *serveMetrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(w, "# HELP petty_sandboxes Sandboxes alive.\n# TYPE petty_sandboxes gauge\npetty_sandboxes %d\n", m.sandboxes())
	fmt.Fprintf(w, "# HELP petty_pooled_sandboxes Sandboxes ready in the warm pools (not yet handed out).\n# TYPE petty_pooled_sandboxes gauge\npetty_pooled_sandboxes %d\n", m.pooled())
	fmt.Fprintf(w, "# HELP petty_sandbox_creates_total Sandboxes created, failures included.\n# TYPE petty_sandbox_creates_total counter\npetty_sandbox_creates_total %d\n", m.creates)
	fmt.Fprintf(w, "# HELP petty_sandbox_create_failures_total Sandbox creations that failed.\n# TYPE petty_sandbox_create_failures_total counter\npetty_sandbox_create_failures_total %d\n", m.failures)
	fmt.Fprintf(w, "# HELP petty_exec_duration_seconds Latency of commands run in sandboxes.\n# TYPE petty_exec_duration_seconds histogram\n")
	var cum uint64
	for i, b := range execBuckets {
		cum += m.counts[i]
		fmt.Fprintf(w, "petty_exec_duration_seconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(b, 'g', -1, 64), cum)
	}
	cum += m.counts[len(execBuckets)]
	fmt.Fprintf(w, "petty_exec_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "petty_exec_duration_seconds_sum %s\npetty_exec_duration_seconds_count %d\n", strconv.FormatFloat(m.sum, 'g', -1, 64), m.n)
}

// ServeHTTP serves /metrics.
func (m *serveMetrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.write(w)
}
