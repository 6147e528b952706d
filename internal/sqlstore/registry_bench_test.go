package sqlstore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/registry"
)

var (
	lookupCount   = flag.Int("registry-lookup-count", 50_000, "people in the registry BenchmarkRegistryLookup imports (when -registry-lookup-db is not given)")
	lookupReaders = flag.Int("registry-lookup-readers", 32, "concurrent readers of BenchmarkRegistryLookup")
	lookupDB      = flag.String("registry-lookup-db", "", "BenchmarkRegistryLookup: look up people in this existing registry (a --db URL) instead of importing one")
)

// BenchmarkRegistryLookup looks people up by health-insurance number
// (FindPersonByHealthNumber) from -registry-lookup-readers goroutines at
// once, on a registry of -registry-lookup-count generated people per
// dialect, or on the registry at -registry-lookup-db. It reports the
// latency percentiles and this process's CPU per lookup (on PostgreSQL the
// server's backends come on top: cmd/sqin-bench counts them).
func BenchmarkRegistryLookup(b *testing.B) {
	type target struct{ name, url string }
	var targets []target
	if *lookupDB != "" {
		targets = []target{{"existing", *lookupDB}}
	} else {
		dir := b.TempDir()
		_, manifest, err := registry.GenerateDelivery(dir, registry.DeliveryOptions{Seed: 42, Count: *lookupCount, Kind: registry.KindSnapshot})
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range dialects {
			u := d.url(b)
			db := openTest(b, u)
			if _, err := registry.Import(context.Background(), db, manifest, registry.ImportOptions{}); err != nil {
				b.Fatal(err)
			}
			targets = append(targets, target{d.name, u})
		}
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			ctx := context.Background()
			u := tg.url
			if strings.HasPrefix(u, "postgres") {
				u += map[bool]string{true: "&", false: "?"}[strings.Contains(u, "?")] + "application_name=sqin_lookup_bench"
			}
			db, err := Open(ctx, u)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			nams, err := sampleHealthNumbers(ctx, db, 20_000)
			if err != nil {
				b.Fatal(err)
			}
			// Warm the pool and the caches.
			for _, n := range nams[:min(len(nams), 2000)] {
				if _, err := db.FindPersonByHealthNumber(ctx, n); err != nil {
					b.Fatal(err)
				}
			}
			var (
				mu  sync.Mutex
				all []time.Duration
			)
			var ru0, ru1 syscall.Rusage
			b.SetParallelism((*lookupReaders + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			db0 := backendCPU(ctx, db)
			var worker sync.Mutex
			next := 0
			b.RunParallel(func(pb *testing.PB) {
				worker.Lock()
				i := next * 7919
				next++
				worker.Unlock()
				lat := make([]time.Duration, 0, 4096)
				for pb.Next() {
					t := time.Now()
					_, err := db.FindPersonByHealthNumber(ctx, nams[i%len(nams)])
					lat = append(lat, time.Since(t))
					if err != nil && !errors.Is(err, sqin.ErrNotFound) {
						b.Error(err)
						return
					}
					i++
				}
				mu.Lock()
				all = append(all, lat...)
				mu.Unlock()
			})
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			dbCPU := backendCPU(ctx, db) - db0
			b.StopTimer()
			slices.Sort(all)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			b.ReportMetric(float64(pct(all, 0.50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(pct(all, 0.99).Microseconds()), "p99-µs")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(max(len(all), 1)), "cpu-µs/op")
			if db.dialect == Postgres {
				b.ReportMetric(float64(dbCPU.Nanoseconds())/1e3/float64(max(len(all), 1)), "pg-cpu-µs/op")
			}
		})
	}
}

// backendCPU is the CPU time the PostgreSQL backends of db's connections
// (application_name sqin_lookup_bench, on this machine) have used.
func backendCPU(ctx context.Context, db *DB) time.Duration {
	if db.dialect != Postgres {
		return 0
	}
	rows, err := db.read.QueryContext(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = 'sqin_lookup_bench'")
	if err != nil {
		return 0
	}
	defer rows.Close()
	var total int64
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			return 0
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + s
	}
	return time.Duration(total) * 10 * time.Millisecond // USER_HZ = 100
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// sampleHealthNumbers returns up to n health numbers of people in the
// registry, spread over it (identifiers are hashes: their order is
// random).
func sampleHealthNumbers(ctx context.Context, db *DB, n int) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, db.sql(newQuery(`SELECT health_no FROM persons WHERE removed_import = 0 ORDER BY id LIMIT ?`)), n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no person in the registry")
	}
	return out, rows.Err()
}
