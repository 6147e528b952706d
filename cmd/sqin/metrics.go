package main

import (
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"
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

// metricsHandler writes a few process metrics in Prometheus text format.
func metricsHandler() http.Handler {
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
	})
}
