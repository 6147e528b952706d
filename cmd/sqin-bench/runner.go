package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is one scenario at one concurrency.
type result struct {
	scenario    string
	concurrency int
	window      time.Duration
	ops         int
	errors      int
	firstErr    string
	p50, p99    time.Duration
	serverCPU   time.Duration // server process, user+system
	serverSys   time.Duration // server process, system only
	benchCPU    time.Duration // this process
	dbCPU       time.Duration // the server's PostgreSQL backends (PostgreSQL runs only)
	machineCPU  time.Duration // every CPU of the machine, busy time (/proc/stat)
	rssAfterKiB int64
	attempts    int // windows measured to get this one (see --retries)
	note        string
}

func (r result) opsPerSec() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.ops) / r.window.Seconds()
}

// perOp divides a CPU time by the number of operations.
func (r result) perOp(d time.Duration) time.Duration {
	if r.ops == 0 {
		return 0
	}
	return d / time.Duration(r.ops)
}

// busy is the share of the machine's CPUs used by server, database and
// load generator during the window.
func (r result) busy(ncpu int) float64 {
	if r.window <= 0 || ncpu == 0 {
		return 0
	}
	return (r.serverCPU + r.benchCPU + r.dbCPU).Seconds() / (r.window.Seconds() * float64(ncpu))
}

// others is the share of the machine's CPUs used by anything else than
// server, database and generator during the window (other work on the
// machine disturbs the measurement).
func (r result) others(ncpu int) float64 {
	if r.window <= 0 || ncpu == 0 {
		return 0
	}
	o := r.machineCPU - r.serverCPU - r.benchCPU - r.dbCPU
	return max(0, o.Seconds()/(r.window.Seconds()*float64(ncpu)))
}

// workerStats is what one worker records; only its own goroutine writes it.
type workerStats struct {
	lat      []time.Duration
	errors   int
	firstErr string
	_        [64]byte // keep workers' counters on separate cache lines
}

// cpuMeter samples the CPU time of the processes a run involves.
type cpuMeter struct {
	serverPID int
	postgres  *pgBackends // nil on SQLite
}

type cpuSample struct {
	server, serverSys, bench, machine int64 // bench in ns, others in ticks
	db                                map[int]int64
}

// dbDelta is the CPU the server's PostgreSQL backends used between two
// samples; a backend that appeared in between counts whole.
func dbDelta(before, after cpuSample) int64 {
	var d int64
	for pid, t := range after.db {
		d += t - before.db[pid]
	}
	return d
}

func (m cpuMeter) sample() cpuSample {
	var s cpuSample
	s.server, s.serverSys, _ = procTimes(m.serverPID)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.bench = ru.Utime.Nano() + ru.Stime.Nano()
	}
	if m.postgres != nil {
		s.db = m.postgres.cpu()
	}
	s.machine = machineBusy()
	return s
}

func ticks(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }

// measure runs op on conc workers: first for warm (results discarded),
// then for dur. An operation counts when it completes inside the
// measurement window; its latency is its own wall time. Workers stop
// after their operation in flight at the end of the window.
func measure(ctx context.Context, m cpuMeter, name string, conc int, warm, dur time.Duration,
	op func(ctx context.Context, worker int) error) result {
	const (
		warming = iota
		measuring
		stopped
	)
	var phase atomic.Int32
	var windowStart, windowEnd atomic.Int64 // unix ns
	stats := make([]workerStats, conc)
	var wg sync.WaitGroup
	for w := range conc {
		stats[w].lat = make([]time.Duration, 0, 1024)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[w]
			for phase.Load() != stopped && ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx, w)
				t1 := time.Now()
				ws, we := windowStart.Load(), windowEnd.Load()
				if ws == 0 || t1.UnixNano() < ws || (we != 0 && t1.UnixNano() > we) {
					continue // completed in warm-up or after the window
				}
				if err != nil {
					st.errors++
					if st.firstErr == "" {
						st.firstErr = err.Error()
					}
					continue
				}
				st.lat = append(st.lat, t1.Sub(t0))
			}
		}()
	}
	sleepCtx(ctx, warm)
	before := m.sample()
	start := time.Now()
	windowStart.Store(start.UnixNano())
	phase.Store(measuring)
	sleepCtx(ctx, dur)
	end := time.Now()
	windowEnd.Store(end.UnixNano())
	phase.Store(stopped)
	after := m.sample()
	wg.Wait()

	r := result{scenario: name, concurrency: conc, window: end.Sub(start),
		serverCPU:  ticks(after.server - before.server),
		serverSys:  ticks(after.serverSys - before.serverSys),
		benchCPU:   time.Duration(after.bench - before.bench),
		dbCPU:      ticks(dbDelta(before, after)),
		machineCPU: ticks(after.machine - before.machine)}
	var all []time.Duration
	for i := range stats {
		all = append(all, stats[i].lat...)
		r.errors += stats[i].errors
		if r.firstErr == "" {
			r.firstErr = stats[i].firstErr
		}
	}
	r.ops = len(all)
	slices.Sort(all)
	r.p50, r.p99 = percentile(all, 0.50), percentile(all, 0.99)
	return r
}

// percentile returns the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// waitQuiet waits, at most maxWait, until the rest of the machine (every
// process but server, PostgreSQL and this one) has used less than
// threshold of the CPUs over one second. It returns that share.
func waitQuiet(ctx context.Context, m cpuMeter, ncpu int, maxWait time.Duration, threshold float64) float64 {
	deadline := time.Now().Add(maxWait)
	for {
		before, t0 := m.sample(), time.Now()
		sleepCtx(ctx, time.Second)
		after := m.sample()
		el := time.Since(t0)
		ours := ticks(after.server-before.server) + time.Duration(after.bench-before.bench) + ticks(dbDelta(before, after))
		other := max(0, (ticks(after.machine-before.machine)-ours).Seconds()/(el.Seconds()*float64(ncpu)))
		if other < threshold || time.Now().After(deadline) || ctx.Err() != nil {
			return other
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
