package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/sqlstore"
)

// The registry scenario (issue 6) needs no server: `sqin registry
// generate` writes a snapshot of --registry-records synthetic people and
// its first delta (about 1 % of them), then on each database `sqin
// registry import` (the binary, as an operator runs it) loads the
// snapshot into a fresh database and applies the delta; on PostgreSQL
// the same data file is also loaded with a bare COPY into a table with
// no index (the physical floor); last, --registry-readers goroutines look
// people up by health-insurance number through the store for
// --registry-lookup-duration.

const scRegistry = "registry"

// Targets of issue 6 (for 9 million people).
const (
	registryScale          = 9_000_000
	registryGenerateTarget = 3 * time.Minute // 9 M
	registryPGTarget       = 150_000         // records/s, snapshot
	registrySQLiteTarget   = 100_000         // records/s, snapshot
	registryDeltaTarget    = 30 * time.Second
	registryLookupTarget   = 2 * time.Millisecond // p99
)

// registryOptions are the --registry-* flags.
type registryOptions struct {
	records  int
	readers  int
	duration time.Duration
	keep     bool // keep the generated delivery (for a later run)
	delivery *registryDelivery
}

// registryDelivery is the generated snapshot and delta, made once and
// imported on each database.
type registryDelivery struct {
	dir           string
	snap, delta   string // manifests
	data          string // the snapshot's data file
	deltaRecords  int64
	gen, genDelta measured
	nams          []string // health numbers of people of the snapshot, for lookups
}

type registryResult struct {
	records   int64
	snapshot  measured
	snapRSS   int64 // KiB, peak of the import process
	summary   string
	delta     measured
	deltaRSS  int64
	copyFloor measured // PostgreSQL: bare COPY of the data file
	lookups   []time.Duration
	lookupM   measured
	misses    int // lookups of people the delta removed
	runQueue  runQueue
	one       []time.Duration // lookups by one reader alone: the latency without queueing
}

// lookupCPU is the CPU one lookup costs: this process (the readers, the
// store, the driver) and, on PostgreSQL, the backends that answer it.
func (r *registryResult) lookupCPU() time.Duration {
	return (r.lookupM.self + r.lookupM.db) / time.Duration(max(len(r.lookups), 1))
}

// lookupFloor is the mean latency 32 closed-loop readers cannot go below
// on ncpu CPUs: by Little's law, readers × CPU per lookup ÷ CPUs once the
// CPUs are saturated.
func (r *registryResult) lookupFloor(readers, ncpu int) time.Duration {
	return time.Duration(readers) * r.lookupCPU() / time.Duration(max(ncpu, 1))
}

func (r *registryResult) snapshotRate() float64 {
	return float64(r.records) / max(r.snapshot.wall.Seconds(), 1e-9)
}

// generateRegistry writes the delivery the registry scenario imports.
func generateRegistry(ctx context.Context, o *options, logw io.Writer) (*registryDelivery, error) {
	if d := o.registry.delivery; d != nil {
		return d, nil
	}
	dir, err := os.MkdirTemp("", "sqin-bench-registry-*")
	if err != nil {
		return nil, err
	}
	d := &registryDelivery{dir: dir}
	o.registry.delivery = d
	meter := stepMeter{}
	n := strconv.Itoa(o.registry.records)
	t0 := meter.sample()
	out, err := runSQIN(ctx, o.bin, "registry", "generate", "--count", n, "--seed", "1", "--out", dir)
	d.gen = meter.since(t0)
	if err != nil {
		return nil, err
	}
	d.snap = strings.TrimSpace(strings.Split(out, "\n")[0])
	t0 = meter.sample()
	out, err = runSQIN(ctx, o.bin, "registry", "generate", "--count", n, "--seed", "1", "--out", dir, "--kind", "delta")
	d.genDelta = meter.since(t0)
	if err != nil {
		return nil, err
	}
	d.delta = strings.TrimSpace(strings.Split(out, "\n")[0])
	m, data, err := registry.ReadManifest(d.snap)
	if err != nil {
		return nil, err
	}
	d.data = data
	dm, _, err := registry.ReadManifest(d.delta)
	if err != nil {
		return nil, err
	}
	d.deltaRecords = dm.RecordCount
	if d.nams, err = sampleNAMs(data, m.Format, m.RecordCount, 20_000); err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "registry: generated %s people in %s (%.0f records/s), delta of %s records in %s\n",
		commas(m.RecordCount), fmtDur(d.gen.wall), float64(m.RecordCount)/d.gen.wall.Seconds(),
		commas(d.deltaRecords), fmtDur(d.genDelta.wall))
	return d, nil
}

// sampleNAMs reads about n health numbers spread over the data file.
func sampleNAMs(path, format string, records int64, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	every := max(records/int64(n), 1)
	rd := registry.NewReader(f, format)
	var out []string
	var r registry.Record
	for i := int64(0); ; i++ {
		err := rd.Next(&r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if i%every == 0 {
			out = append(out, r.Fields[registry.FNAM])
		}
	}
}

// cleanupRegistry removes the generated delivery unless asked to keep it.
func (o *options) cleanupRegistry(logw io.Writer) {
	d := o.registry.delivery
	if d == nil {
		return
	}
	if o.registry.keep {
		fmt.Fprintf(logw, "registry: delivery kept in %s\n", d.dir)
		return
	}
	os.RemoveAll(d.dir)
}

func runSQIN(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("sqin %s: %v\n%s", strings.Join(args[:2], " "), err, tail(errOut.String(), 2000))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// importChild runs `sqin registry import` and measures it: wall time, its
// CPU, its PostgreSQL backends' CPU (sampled while it runs: they end with
// it) and its peak RSS.
func importChild(ctx context.Context, o *options, dbURL, manifest string, pg bool) (measured, int64, string, error) {
	meter := stepMeter{}
	cmd := exec.CommandContext(ctx, o.bin, "registry", "import", manifest, "--db", dbURL)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	t0 := meter.sample()
	if err := cmd.Start(); err != nil {
		return measured{}, 0, "", err
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		backend = map[int]int64{}
		done    = make(chan struct{})
	)
	if pg {
		b, err := newPGBackends(ctx, o.postgres, cmd.Process.Pid)
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return measured{}, 0, "", err
		}
		defer b.close()
		wg.Go(func() {
			tk := time.NewTicker(200 * time.Millisecond)
			defer tk.Stop()
			for {
				for pid, t := range b.cpu() {
					mu.Lock()
					backend[pid] = max(backend[pid], t)
					mu.Unlock()
				}
				select {
				case <-done:
					return
				case <-tk.C:
				}
			}
		})
	}
	err := cmd.Wait()
	close(done)
	wg.Wait()
	m := meter.since(t0)
	if err != nil {
		return m, 0, "", fmt.Errorf("sqin registry import: %v\n%s", err, tail(errOut.String(), 2000))
	}
	var db int64
	for _, t := range backend {
		db += t
	}
	m.db = ticks(db)
	// The backends' CPU was counted as other load by since: take it back.
	if m.wall > 0 {
		m.others = max(0, m.others-m.db.Seconds()/(m.wall.Seconds()*float64(runtime.NumCPU())))
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return m, rss, lines[len(lines)-1], nil
}

// runRegistry runs the registry scenario on a fresh database of kind db.
func runRegistry(ctx context.Context, o *options, db string, logw io.Writer) (res *registryResult, err error) {
	d, err := generateRegistry(ctx, o, logw)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	dbURL, done, err := freshDB(ctx, o, db, d.dir, "registry")
	if err != nil {
		return nil, err
	}
	defer func() {
		if e := done(); e != nil && err == nil {
			err = e
		}
	}()
	pg := db == "postgres"
	quiet := cpuMeter{}
	wait := func(what string) {
		if q := o.wait(ctx, quiet); q >= quietThreshold {
			fmt.Fprintf(logw, "%s: registry %s: other processes still use %.0f%% of the CPUs; measuring anyway\n", db, what, 100*q)
		}
	}
	m, _, err := registry.ReadManifest(d.snap)
	if err != nil {
		return nil, err
	}
	res = &registryResult{records: m.RecordCount}

	// 1. The snapshot into an empty registry.
	wait("snapshot")
	if res.snapshot, res.snapRSS, res.summary, err = importChild(ctx, o, dbURL, d.snap, pg); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	fmt.Fprintf(logw, "%s: registry snapshot: %s records in %s, %.0f records/s, RSS %s (other load %.0f%%)\n", db,
		commas(res.records), fmtDur(res.snapshot.wall), res.snapshotRate(), mb(res.snapRSS), 100*res.snapshot.others)

	// 2. The floor: PostgreSQL's own COPY of the same file, no index.
	if pg {
		wait("copy")
		if res.copyFloor, err = bareCopy(ctx, dbURL, d.data); err != nil {
			return nil, fmt.Errorf("bare COPY: %w", err)
		}
		fmt.Fprintf(logw, "%s: registry bare COPY: %s (%.0f records/s); import ÷ COPY = %.1f\n", db, fmtDur(res.copyFloor.wall),
			float64(res.records)/res.copyFloor.wall.Seconds(), res.snapshot.wall.Seconds()/res.copyFloor.wall.Seconds())
	}

	// 3. The first delta (about 1 % of the people).
	wait("delta")
	if res.delta, res.deltaRSS, _, err = importChild(ctx, o, dbURL, d.delta, pg); err != nil {
		return nil, fmt.Errorf("delta: %w", err)
	}
	fmt.Fprintf(logw, "%s: registry delta: %s records in %s (other load %.0f%%)\n", db, commas(d.deltaRecords),
		fmtDur(res.delta.wall), 100*res.delta.others)

	// 4. Lookups by health number, --registry-readers at once.
	if o.registry.readers > 0 && o.registry.duration > 0 {
		if err := lookupScenario(ctx, o, db, dbURL, d.nams, res, quiet, logw); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// bareCopy loads the data file with COPY … FORMAT csv into a new table of
// text columns without any index, and drops it.
func bareCopy(ctx context.Context, dbURL, data string) (measured, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return measured{}, err
	}
	defer conn.Close(ctx)
	cols := strings.Join(registry.CSVHeader[:], " text, ") + " text"
	if _, err := conn.Exec(ctx, "CREATE TABLE registry_bare_copy ("+cols+")"); err != nil {
		return measured{}, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DROP TABLE registry_bare_copy")
	f, err := os.Open(data)
	if err != nil {
		return measured{}, err
	}
	defer f.Close()
	b, err := newPGBackendsOf(ctx, conn)
	if err != nil {
		return measured{}, err
	}
	meter := stepMeter{pg: b}
	t0 := meter.sample()
	_, err = conn.PgConn().CopyFrom(ctx, f, "COPY registry_bare_copy FROM STDIN WITH (FORMAT csv, HEADER true)")
	return meter.since(t0), err
}

// newPGBackendsOf follows this process's backends (conn's among them).
func newPGBackendsOf(_ context.Context, conn *pgx.Conn) (*pgBackends, error) {
	return &pgBackends{conn: conn, pid: os.Getpid(), pgPort: conn.Config().Port}, nil
}

// lookupScenario measures lookups by health number through the store, as
// the server runs them (FindPersonByHealthNumber, the default connection
// pool of the URL): --registry-readers goroutines at once, after a warm-up
// (connections opened, statements prepared, pages cached), then one
// reader alone. On PostgreSQL the registry is vacuumed first, as
// autovacuum leaves it a little after an import: until then an index-only
// scan still visits the table.
func lookupScenario(ctx context.Context, o *options, db, dbURL string, nams []string, res *registryResult,
	quiet cpuMeter, logw io.Writer) error {
	pg := db == "postgres"
	if pg {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "VACUUM (ANALYZE) persons")
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("vacuum: %w", err)
		}
	}
	st, err := sqlstore.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	meter := stepMeter{}
	if pg {
		b, err := newPGBackends(ctx, o.postgres, os.Getpid())
		if err != nil {
			return err
		}
		defer b.close()
		meter.pg, quiet.postgres = b, b
	}
	readers, dur := o.registry.readers, o.registry.duration
	if _, _, err := lookups(ctx, st, nams, readers, min(dur/5, time.Second)); err != nil { // warm-up
		return fmt.Errorf("lookup: %w", err)
	}
	if q := o.wait(ctx, quiet); q >= quietThreshold {
		fmt.Fprintf(logw, "%s: registry lookup: other processes still use %.0f%% of the CPUs; measuring anyway\n", db, 100*q)
	}
	rq := sampleRunQueue()
	t0 := meter.sample()
	res.lookups, res.misses, err = lookups(ctx, st, nams, readers, dur)
	res.lookupM = meter.since(t0)
	res.runQueue = rq()
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	if res.one, _, err = lookups(ctx, st, nams, 1, min(dur/2, 2*time.Second)); err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	fmt.Fprintf(logw, "%s: registry lookup by health number, %d readers: %d lookups, p50 %s p99 %s, CPU %s/lookup (floor of the mean %s), run queue %.1f (max %d), one reader p50 %s p99 %s (other load %.0f%%)\n",
		db, readers, len(res.lookups), fmtDur(percentile(res.lookups, 0.5)), fmtDur(percentile(res.lookups, 0.99)),
		fmtDur(res.lookupCPU()), fmtDur(res.lookupFloor(readers, runtime.NumCPU())), res.runQueue.mean, res.runQueue.max,
		fmtDur(percentile(res.one, 0.5)), fmtDur(percentile(res.one, 0.99)), 100*res.lookupM.others)
	return nil
}

// runQueue is the number of runnable threads on the machine (running or
// waiting for a CPU: /proc/stat procs_running, this process's included),
// sampled every 10 ms.
type runQueue struct {
	mean float64
	max  int
}

// sampleRunQueue starts sampling; the function it returns stops and
// summarises.
func sampleRunQueue() func() runQueue {
	done := make(chan runQueue)
	stop := make(chan struct{})
	go func() {
		var sum, n, most int
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				done <- runQueue{mean: float64(sum) / float64(max(n, 1)), max: most}
				return
			case <-tk.C:
			}
			if r, ok := procsRunning(); ok {
				sum, n, most = sum+r, n+1, max(most, r)
			}
		}
	}()
	return func() runQueue {
		close(stop)
		return <-done
	}
}

// procsRunning reads procs_running from /proc/stat.
func procsRunning() (int, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	_, rest, ok := strings.Cut(string(b), "\nprocs_running ")
	if !ok {
		return 0, false
	}
	v, _, _ := strings.Cut(rest, "\n")
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// lookups runs readers goroutines looking up health numbers (cycling
// through nams) for dur, and returns every latency, sorted, and how many
// found nobody (people the delta removed).
func lookups(ctx context.Context, st *sqlstore.DB, nams []string, readers int, dur time.Duration) ([]time.Duration, int, error) {
	if len(nams) == 0 {
		return nil, 0, errors.New("no health numbers to look up")
	}
	end := time.Now().Add(dur)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		all    []time.Duration
		misses int
		first  error
	)
	for w := range readers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<14) // no growth (and garbage) while measuring, mostly
			miss := 0
			var ferr error
			for i := w * 7919; time.Now().Before(end) && ctx.Err() == nil; i++ {
				t := time.Now()
				_, err := st.FindPersonByHealthNumber(ctx, nams[i%len(nams)])
				lat = append(lat, time.Since(t))
				switch {
				case errors.Is(err, sqin.ErrNotFound): // removed by the delta
					miss++
				case err != nil && ferr == nil:
					ferr = err
				}
			}
			mu.Lock()
			all, misses = append(all, lat...), misses+miss
			if first == nil {
				first = ferr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	if first != nil {
		return all, misses, fmt.Errorf("lookup: %w", first)
	}
	return all, misses, nil
}

// writeRegistry writes the registry section of the report.
func (rep *report) writeRegistry(w io.Writer) {
	var dbs []*dbResult
	for _, d := range rep.dbs {
		if d.registry != nil {
			dbs = append(dbs, d)
		}
	}
	ro := rep.opts.registry
	dl := ro.delivery
	if len(dbs) == 0 || dl == nil {
		return
	}
	ncpu := rep.machine.cpus
	n := dbs[0].registry.records
	scale := ""
	if n != registryScale {
		scale = fmt.Sprintf(" (the targets are for %s people: rates are compared as they are, times extrapolated linearly)", commas(registryScale))
	}
	fmt.Fprintf(w, "## Registry import (RAIG)\n\n")
	fmt.Fprintf(w, "`sqin registry generate --count %s` writes a snapshot and its first delta (%s records); on each database `sqin registry import` (the binary) loads the snapshot into a fresh registry, then the delta; on PostgreSQL a bare `COPY … FORMAT csv` of the same data file into a table of text columns without index is the physical floor; then %d goroutines look people up by health-insurance number through the store as the server does (`FindPersonByHealthNumber`, the default connection pool; after a warm-up, and on PostgreSQL a `VACUUM (ANALYZE)` as autovacuum would do) for %s, and one goroutine alone for a moment%s. The CPU per lookup counts this process and its PostgreSQL backends; with every reader busy, the CPUs are saturated and the mean latency is at least readers × CPU per lookup ÷ CPUs (Little's law); the run queue is the machine's runnable threads (/proc/stat procs_running), sampled every 10 ms. Import CPU is the `sqin` process's; PostgreSQL CPU counts the backends serving it (not the WAL writer, checkpointer or parallel index-build workers, which fall in \"other load\").\n\n",
		commas(n), commas(dl.deltaRecords), ro.readers, ro.duration, scale)
	warn := func(m measured) string {
		if m.others >= quietThreshold {
			return fmt.Sprintf(" ⚠ other load %.0f %%", 100*m.others)
		}
		return ""
	}
	est := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * float64(registryScale) / float64(max(n, 1)))
	}
	genCell := fmt.Sprintf("%s (%s records/s)", fmtDur(dl.gen.wall), commas(int64(float64(n)/dl.gen.wall.Seconds())))
	if n != registryScale {
		genCell += fmt.Sprintf(", 9 M ≈ %.0f s", est(dl.gen.wall).Seconds())
	}
	fmt.Fprintf(w, "| scenario | target |")
	for _, d := range dbs {
		fmt.Fprintf(w, " %s |", dbTitles[d.db])
	}
	fmt.Fprintf(w, "\n|---|---|")
	for range dbs {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	row := func(name, target string, cell func(d *dbResult, r *registryResult) string) {
		fmt.Fprintf(w, "| %s | %s |", name, target)
		for _, d := range dbs {
			fmt.Fprintf(w, " %s |", cell(d, d.registry))
		}
		fmt.Fprintln(w)
	}
	row("generate (once, CSV)", fmt.Sprintf("9 M ≤ %s", registryGenerateTarget), func(*dbResult, *registryResult) string {
		return genCell + ": " + passMiss(est(dl.gen.wall) <= registryGenerateTarget) + warn(dl.gen)
	})
	row("import snapshot, empty registry", fmt.Sprintf("PostgreSQL ≥ %s/s, SQLite ≥ %s/s", commas(registryPGTarget), commas(registrySQLiteTarget)),
		func(d *dbResult, r *registryResult) string {
			target := float64(registrySQLiteTarget)
			if d.db == "postgres" {
				target = registryPGTarget
			}
			cpu := r.snapshot.child + r.snapshot.db
			return fmt.Sprintf("%s in %s: %s records/s (CPU %.1f µs/record, ceiling %s/s), RSS %s: %s%s",
				commas(r.records), fmtDur(r.snapshot.wall), commas(int64(r.snapshotRate())),
				float64(cpu.Microseconds())/float64(max(r.records, 1)), commas(int64(float64(ncpu)*float64(r.records)/max(cpu.Seconds(), 1e-9))),
				mb(r.snapRSS), passMiss(r.snapshotRate() >= target && r.snapRSS*1024 < 500e6), warn(r.snapshot))
		})
	row("bare COPY of the file (the floor), and import ÷ COPY", "–", func(d *dbResult, r *registryResult) string {
		if r.copyFloor.wall == 0 {
			return "–"
		}
		return fmt.Sprintf("%s (%s records/s); ratio **%.1f×**%s", fmtDur(r.copyFloor.wall),
			commas(int64(float64(r.records)/r.copyFloor.wall.Seconds())), r.snapshot.wall.Seconds()/r.copyFloor.wall.Seconds(), warn(r.copyFloor))
	})
	row(fmt.Sprintf("delta of %s records (≈ 1 %%)", commas(dl.deltaRecords)), fmt.Sprintf("9 M: < %s", registryDeltaTarget),
		func(d *dbResult, r *registryResult) string {
			s := fmtDur(r.delta.wall)
			if n != registryScale {
				s += fmt.Sprintf(", 9 M ≈ %.0f s", est(r.delta.wall).Seconds())
			}
			return s + ": " + passMiss(est(r.delta.wall) < registryDeltaTarget) + warn(r.delta)
		})
	row(fmt.Sprintf("lookup by health number, %d readers", ro.readers), fmt.Sprintf("p99 < %s", fmtDur(registryLookupTarget)),
		func(d *dbResult, r *registryResult) string {
			if len(r.lookups) == 0 {
				return "–"
			}
			p99 := percentile(r.lookups, 0.99)
			verdict := passMiss(p99 < registryLookupTarget)
			if n < registryScale {
				verdict = "not at the target's scale"
			}
			return fmt.Sprintf("p50 %s, p99 %s, %s lookups/s; CPU %s/lookup, so a mean of at least %s with %d readers on %d CPUs; run queue %.1f (max %d); one reader alone: p50 %s, p99 %s: %s%s",
				fmtDur(percentile(r.lookups, 0.5)), fmtDur(p99), commas(int64(float64(len(r.lookups))/r.lookupM.wall.Seconds())),
				fmtDur(r.lookupCPU()), fmtDur(r.lookupFloor(ro.readers, ncpu)), ro.readers, ncpu, r.runQueue.mean, r.runQueue.max,
				fmtDur(percentile(r.one, 0.5)), fmtDur(percentile(r.one, 0.99)), verdict, warn(r.lookupM))
		})
	fmt.Fprintln(w)
	if n < registryScale {
		fmt.Fprintf(w, "The lookup target is for %s people: measure it at that scale with `--registry-records %d`.\n\n", commas(registryScale), registryScale)
	}
}
