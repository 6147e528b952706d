package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
)

var (
	started  = time.Now()
	reqTotal [6]atomic.Uint64 // by status class: 0 other, 1xx … 5xx
)

// countStatus counts a response by status class for /metrics.
func countStatus(code int) {
	if cls := code / 100; cls >= 1 && cls <= 5 {
		reqTotal[cls].Add(1)
	} else {
		reqTotal[0].Add(1)
	}
}

// auditState is what /metrics reads of the audit log.
type auditState interface {
	AuditSize(ctx context.Context) (uint64, error)
	AuditQueued(ctx context.Context) (int64, error)
	LatestTreeHead(ctx context.Context) (*audit.TreeHead, error)
}

// metricsHandler writes a few process metrics and the audit log's state
// in Prometheus text format.
func metricsHandler(st auditState) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintln(w, "# HELP sqin_http_responses_total HTTP responses by status class.")
		fmt.Fprintln(w, "# TYPE sqin_http_responses_total counter")
		for cls := 1; cls <= 5; cls++ {
			fmt.Fprintf(w, "sqin_http_responses_total{class=\"%dxx\"} %d\n", cls, reqTotal[cls].Load())
		}
		fmt.Fprintln(w, "# HELP sqin_build_info Build information.")
		fmt.Fprintln(w, "# TYPE sqin_build_info gauge")
		fmt.Fprintf(w, "sqin_build_info{version=%q,go=%q} 1\n", version, runtime.Version())
		fmt.Fprintln(w, "# HELP sqin_start_time_seconds Process start time.")
		fmt.Fprintln(w, "# TYPE sqin_start_time_seconds gauge")
		fmt.Fprintf(w, "sqin_start_time_seconds %d\n", started.Unix())
		fmt.Fprintln(w, "# HELP go_goroutines Goroutines.")
		fmt.Fprintln(w, "# TYPE go_goroutines gauge")
		fmt.Fprintf(w, "go_goroutines %d\n", runtime.NumGoroutine())
		fmt.Fprintln(w, "# HELP go_memstats_heap_alloc_bytes Heap bytes in use.")
		fmt.Fprintln(w, "# TYPE go_memstats_heap_alloc_bytes gauge")
		fmt.Fprintf(w, "go_memstats_heap_alloc_bytes %d\n", ms.HeapAlloc)
		auditMetrics(r.Context(), w, st)
	})
}

// auditMetrics writes the audit log's size, the events still queued for
// sequencing (PostgreSQL) and its latest signed tree head: an alert on a
// head that stops advancing, or a queue that grows, catches an audit
// pipeline that has stopped. A read that fails leaves its metric out.
func auditMetrics(ctx context.Context, w io.Writer, st auditState) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	gauge := func(name, help string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %v\n", name, help, name, name, v)
	}
	if n, err := st.AuditSize(ctx); err == nil {
		gauge("sqin_audit_events", "Events in the audit log.", n)
	}
	if n, err := st.AuditQueued(ctx); err == nil {
		gauge("sqin_audit_queued_events", "Audited changes committed but not yet sequenced into the log (PostgreSQL).", n)
	}
	th, err := st.LatestTreeHead(ctx)
	switch {
	case err == nil:
		gauge("sqin_audit_tree_head_size", "Events covered by the latest signed tree head.", th.TreeSize)
		gauge("sqin_audit_tree_head_timestamp_seconds", "When the latest tree head was signed.", th.Timestamp/1000)
	case errors.Is(err, sqin.ErrNotFound):
		gauge("sqin_audit_tree_head_size", "Events covered by the latest signed tree head.", 0)
	}
}
