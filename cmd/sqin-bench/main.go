// Command sqin-bench is SQIN's load generator. It starts a real
// `sqin serve --demo` process on SQLite and on PostgreSQL, talks to it over
// loopback with standard OpenID Connect and OAuth 2.0 only (discovery,
// /authorize with the sign-in and consent pages, PAR, /token with DPoP and
// private_key_jwt, /userinfo, JWKS), and prints a Markdown report:
// operations per second, p50 and p99 latency, errors, CPU per operation
// and memory, next to the targets. The audit scenario needs no server: it
// fills an audit log through the store, runs `sqin audit verify` over it
// and times inclusion proofs; the registry scenario needs none either: it
// generates and imports a registry delivery and looks people up.
//
//	go run ./cmd/sqin-bench --bin bin/sqin [--duration 5s] [--concurrency 1,8,32]
//	    [--db sqlite,postgres] [--scenarios client_credentials,userinfo,refresh,code_flow,fapi2,password,audit]
//	    [--audit-events 1000000] [--registry-records 1000000] [--proofing-records 200000] [--out FILE]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	bin         string
	duration    time.Duration
	warmup      time.Duration
	pwDuration  time.Duration
	hashTime    time.Duration
	quietWait   time.Duration
	waitBudget  time.Duration // total of quiet waits and re-measurements
	waits       *budget
	retries     int
	concurrency []int
	dbs         []string
	scenarios   []string
	out         string
	postgres    string
	argon2      argon2Params
	audit       auditOptions
	registry    registryOptions
	proofing    proofingOptions
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sqin-bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sqin-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conc, dbs, scen string
	var at, am, ap uint
	fs.StringVar(&o.bin, "bin", "bin/sqin", "sqin binary to start")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measurement window of each scenario at each concurrency")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measurement window (discarded)")
	fs.DurationVar(&o.pwDuration, "password-duration", 10*time.Second, "measurement window of the password scenario (a sign-in costs ~100 ms of CPU)")
	fs.DurationVar(&o.hashTime, "hash-duration", 4*time.Second, "window of each of the three in-process argon2id hash-rate measurements (the best counts)")
	fs.DurationVar(&o.quietWait, "quiet-wait", time.Minute, "before each window, wait up to this long for other processes to use < 10 % of the CPUs")
	fs.IntVar(&o.retries, "retries", 3, "measure a window again up to this many times when other processes disturbed it (keeps the least disturbed)")
	fs.DurationVar(&o.waitBudget, "wait-budget", 3*time.Minute, "at most this much time in all, over the run, spent waiting for quiet and measuring disturbed windows again (bounds the run time on a busy machine)")
	fs.StringVar(&conc, "concurrency", "1,8,32", "comma-separated worker counts")
	fs.StringVar(&dbs, "db", "sqlite,postgres", "databases: sqlite, postgres")
	fs.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "scenarios to run")
	fs.StringVar(&o.out, "out", "", "write the Markdown report to this file (default stdout)")
	fs.StringVar(&o.postgres, "postgres", envOr("SQIN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		"PostgreSQL server; a fresh schema is created and dropped")
	fs.UintVar(&at, "argon2-time", 3, "argon2id iterations (production)")
	fs.UintVar(&am, "argon2-memory-kib", 64*1024, "argon2id memory in KiB (production)")
	fs.UintVar(&ap, "argon2-threads", 2, "argon2id parallelism (production)")
	fs.IntVar(&o.audit.events, "audit-events", 1_000_000, "audit: events appended through AppendEvents, then verified and proved (10000000: the issue's scale)")
	fs.IntVar(&o.audit.batch, "audit-batch", 1000, "audit: events per AppendEvents transaction")
	fs.IntVar(&o.audit.callers, "audit-callers", 64, "audit: concurrent callers appending through one Batcher (0: skip)")
	fs.DurationVar(&o.audit.duration, "audit-duration", 10*time.Second, "audit: window of the Batcher measurement (0: skip)")
	fs.IntVar(&o.audit.proofs, "audit-proofs", 2000, "audit: inclusion proofs of random events timed (and as many Prove calls)")
	fs.IntVar(&o.registry.records, "registry-records", 1_000_000, "registry: people in the generated snapshot (9000000: the issue's scale)")
	fs.IntVar(&o.registry.readers, "registry-readers", 32, "registry: concurrent lookups by health number (0: skip)")
	fs.DurationVar(&o.registry.duration, "registry-lookup-duration", 5*time.Second, "registry: window of the lookups")
	fs.BoolVar(&o.registry.keep, "registry-keep", false, "registry: keep the generated delivery (its directory is printed)")
	fs.IntVar(&o.proofing.records, "proofing-records", 200_000, "proofing: people in the generated registry (9000000: the issue's scale)")
	fs.IntVar(&o.proofing.callers, "proofing-callers", 32, "proofing: concurrent citizens checking local secrets")
	fs.DurationVar(&o.proofing.duration, "proofing-duration", 5*time.Second, "proofing: window of the checks")
	fs.DurationVar(&o.proofing.warmup, "proofing-warmup", 5*time.Second, "proofing: checks before the window (discarded; the imports leave the caches cold)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range splitList(conc) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("--concurrency: bad value %q", s)
		}
		o.concurrency = append(o.concurrency, n)
	}
	for _, d := range splitList(dbs) {
		if d != "sqlite" && d != "postgres" {
			return nil, fmt.Errorf("--db: unknown database %q", d)
		}
		o.dbs = append(o.dbs, d)
	}
	for _, s := range splitList(scen) {
		if !slices.Contains(allScenarios, s) {
			return nil, fmt.Errorf("--scenarios: unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	// Always run in the canonical order: the password scenario signs in
	// again the accounts whose SSO sessions the others use.
	o.scenarios = slices.DeleteFunc(slices.Clone(allScenarios), func(s string) bool { return !slices.Contains(o.scenarios, s) })
	if len(o.concurrency) == 0 || len(o.dbs) == 0 || len(o.scenarios) == 0 {
		return nil, errors.New("nothing to run")
	}
	o.waits = &budget{left: o.waitBudget}
	if o.duration <= 0 || o.pwDuration <= 0 || o.warmup < 0 {
		return nil, errors.New("durations must be positive")
	}
	if o.registry.records < 1 || o.registry.readers < 0 || o.registry.duration < 0 {
		return nil, errors.New("bad --registry-* value")
	}
	if o.proofing.records < 1 || o.proofing.callers < 1 || o.proofing.duration <= 0 || o.proofing.warmup < 0 {
		return nil, errors.New("bad --proofing-* value")
	}
	if o.audit.events < 1 || o.audit.batch < 1 || o.audit.proofs < 1 || o.audit.callers < 0 || o.audit.duration < 0 {
		return nil, errors.New("bad --audit-* value: events, batch and proofs must be at least 1")
	}
	if at == 0 || am < 8 || ap == 0 || ap > 255 {
		return nil, errors.New("bad argon2id parameters")
	}
	o.argon2 = argon2Params{time: uint32(at), memoryKiB: uint32(am), threads: uint8(ap)}
	return o, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.bin); err != nil {
		return fmt.Errorf("--bin: %w (run make build)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := &report{opts: o, machine: describeMachine(), started: time.Now()}
	defer o.cleanupRegistry(stderr)
	defer o.cleanupProofing()
	help := serveHelp(o.bin)
	rep.fastHashFlag = strings.Contains(help, "demo-fast-hash")
	if !rep.fastHashFlag {
		fmt.Fprintln(stderr, "warning: `sqin serve` has no --demo-fast-hash flag: demo accounts may use the demo's cheap argon2id cost")
	}
	for _, db := range o.dbs {
		res, err := runDB(ctx, o, db, rep.fastHashFlag, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", db, err)
		}
		rep.dbs = append(rep.dbs, res)
	}
	out := stdout
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	rep.write(out)
	if o.out != "" {
		fmt.Fprintln(stderr, "report written to", o.out)
	}
	return nil
}

// dbResult is every measurement on one database.
type dbResult struct {
	db         string
	restRSS    int64 // KiB
	afterRSS   int64
	peakRSS    int64
	results    []result
	hashRate   float64
	setupTime  time.Duration
	startTime  time.Duration
	demoUsers  int
	serverArgs []string
	server     bool         // server scenarios ran
	fapiRetry  int64        // FAPI requests sent again with a fresh DPoP nonce
	audit      *auditResult // the audit scenario
	registry   *registryResult
	proofing   *proofingResult
}

// runDB runs the server scenarios, then the audit scenario (on a database
// of its own, once the server has stopped).
func runDB(ctx context.Context, o *options, db string, fastHashFlag bool, logw io.Writer) (*dbResult, error) {
	res := &dbResult{db: db}
	if slices.ContainsFunc(o.scenarios, serverScenario) {
		if err := runServer(ctx, o, db, fastHashFlag, logw, res); err != nil {
			return nil, err
		}
		res.server = true
	}
	if slices.Contains(o.scenarios, scAudit) {
		a, err := runAudit(ctx, o, db, logw)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		res.audit = a
	}
	if slices.Contains(o.scenarios, scRegistry) {
		r, err := runRegistry(ctx, o, db, logw)
		if err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		res.registry = r
	}
	if slices.Contains(o.scenarios, scProofing) {
		p, err := runProofing(ctx, o, db, logw)
		if err != nil {
			return nil, fmt.Errorf("proofing: %w", err)
		}
		res.proofing = p
	}
	return res, nil
}

// runServer starts a server on a fresh database and runs the server
// scenarios.
func runServer(ctx context.Context, o *options, db string, fastHashFlag bool, logw io.Writer, res *dbResult) (err error) {
	dir, err := os.MkdirTemp("", "sqin-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var dbURL string
	switch db {
	case "sqlite":
		dbURL = "sqlite://" + filepath.Join(dir, "bench.db")
	case "postgres":
		u, drop, err := pgSchema(ctx, o.postgres)
		if err != nil {
			return err
		}
		defer func() {
			if e := drop(); e != nil && err == nil {
				err = fmt.Errorf("drop schema: %w", e)
			}
		}()
		dbURL = u
	}
	maxConc := slices.Max(o.concurrency)
	res.demoUsers = max(maxConc, 2)
	extra := []string{"--demo-users", strconv.Itoa(res.demoUsers),
		"--argon2-time", strconv.Itoa(int(o.argon2.time)),
		"--argon2-memory-kib", strconv.Itoa(int(o.argon2.memoryKiB)),
		"--argon2-threads", strconv.Itoa(int(o.argon2.threads))}
	if fastHashFlag {
		extra = append(extra, "--demo-fast-hash=false")
	}
	res.serverArgs = extra
	fmt.Fprintf(logw, "== %s: starting %s\n", db, o.bin)
	t0 := time.Now()
	srv, err := startServer(ctx, o.bin, dbURL, dir, extra, 5*time.Minute)
	if err != nil {
		return err
	}
	res.startTime = time.Since(t0)
	defer func() {
		if e := srv.stop(); e != nil {
			fmt.Fprintf(logw, "%s: server stop: %v\n", db, e)
		}
	}()
	const clientID, secret = "sqin-bench", "bench-secret-0123456789abcdef"
	redirectURI := "http://127.0.0.1:9/callback" // never contacted
	if err := createClient(o.bin, dbURL, clientID, secret, redirectURI); err != nil {
		return err
	}
	tr := newTransport(2)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	r, err := newRP(ctx, hc, srv.issuer, clientID, secret, redirectURI)
	if err != nil {
		return err
	}
	e := &env{rp: r, srvPID: srv.pid(), meter: cpuMeter{serverPID: srv.pid()}}
	if db == "postgres" {
		b, err := newPGBackends(ctx, o.postgres, srv.pid())
		if err != nil {
			return err
		}
		defer b.close()
		e.meter.postgres = b
	}
	if slices.Contains(o.scenarios, scFAPI) {
		const fapiID = "sqin-bench-fapi"
		key, err := newFAPIKey()
		if err != nil {
			return err
		}
		if err := createFAPIClient(o.bin, dbURL, dir, fapiID, redirectURI, key); err != nil {
			return err
		}
		fc, err := newFAPIClient(ctx, hc, srv.issuer, fapiID, redirectURI, key)
		if err != nil {
			return err
		}
		e.fapi = &fapiState{client: fc}
		defer func() { res.fapiRetry = fc.nonceRetries.Load() }()
	}

	// Memory at rest: started, a few requests served, 2 s idle.
	for range 20 {
		var tok tokenResponse
		var b bytes.Buffer
		if err := r.postToken(ctx, hc, "grant_type=client_credentials", &b, &tok); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	tr.CloseIdleConnections()
	sleepCtx(ctx, 2*time.Second)
	res.restRSS, _ = procMemKiB(srv.pid())
	fmt.Fprintf(logw, "%s: ready in %s, RSS at rest %.1f MB\n", db, res.startTime.Round(time.Millisecond), float64(res.restRSS)*1024/1e6)

	t1 := time.Now()
	if err := e.setupSessions(ctx, maxConc); err != nil {
		return fmt.Errorf("setup: %w\nserver log:\n%s", err, srv.logTail(10))
	}
	res.setupTime = time.Since(t1)
	fmt.Fprintf(logw, "%s: %d SSO sessions signed in (%s)\n", db, maxConc, res.setupTime.Round(time.Millisecond))

	for _, sc := range o.scenarios {
		if !serverScenario(sc) {
			continue
		}
		dur, warm := o.duration, o.warmup
		if sc == scPassword {
			dur, warm = o.pwDuration, max(o.warmup, 3*time.Second)
			// Other processes can only slow hashing down: keep the best
			// of three windows.
			for range 3 {
				o.wait(ctx, e.meter)
				hr := hashRate(ctx, o.argon2, 2, o.hashTime)
				fmt.Fprintf(logw, "%s: argon2id in-process %.2f hashes/s\n", db, hr)
				res.hashRate = max(res.hashRate, hr)
			}
		}
		for _, c := range o.concurrency {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			tr := newTransport(c)
			op, err := e.prepare(ctx, sc, c, tr)
			if err != nil {
				return fmt.Errorf("%s: %w", sc, err)
			}
			// On a shared machine: measure again when other processes
			// disturbed the window, and keep the least disturbed one.
			var rr result
			for attempt := 0; attempt <= o.retries; attempt++ {
				if q := o.wait(ctx, e.meter); q >= quietThreshold {
					fmt.Fprintf(logw, "%s: other processes still use %.0f%% of the CPUs; measuring anyway\n", db, 100*q)
				}
				t0 := time.Now()
				r := measure(ctx, e.meter, sc, c, warm, dur, op)
				if attempt > 0 {
					o.waits.spend(time.Since(t0))
				}
				r.attempts = attempt + 1
				if attempt == 0 || r.others(runtime.NumCPU()) < rr.others(runtime.NumCPU()) {
					rr = r
				}
				if ctx.Err() != nil || rr.others(runtime.NumCPU()) < quietThreshold || o.waits.remaining() <= 0 {
					break
				}
				if attempt < o.retries {
					fmt.Fprintf(logw, "%s: %s c=%d disturbed (other load %.0f%%), measuring again\n", db, sc, c, 100*r.others(runtime.NumCPU()))
				}
			}
			rr.attempts = max(rr.attempts, 1)
			if sc == scFAPI {
				// Where a flow's time goes (warm-up and every attempt
				// included).
				if m, n := e.fapi.client.meanSteps(); n > 0 {
					var parts []string
					for i, d := range m {
						parts = append(parts, stepNames[i]+" "+fmtDur(d))
					}
					rr.note = fmt.Sprintf("c=%d, mean of %d flows: %s", c, n, strings.Join(parts, ", "))
				}
			}
			tr.CloseIdleConnections()
			rr.rssAfterKiB, _ = procMemKiB(srv.pid())
			res.results = append(res.results, rr)
			fmt.Fprintf(logw, "%s: %-18s c=%-3d %9.1f ops/s  p50 %-9s p99 %-9s errors %d  server %s/op  bench %s/op%s  other load %.0f%%\n",
				db, sc, c, rr.opsPerSec(), fmtDur(rr.p50), fmtDur(rr.p99), rr.errors,
				fmtDur(rr.perOp(rr.serverCPU)), fmtDur(rr.perOp(rr.benchCPU)), dbCPUNote(rr, db), 100*rr.others(runtime.NumCPU()))
			if rr.firstErr != "" {
				fmt.Fprintf(logw, "    first error: %s\n", rr.firstErr)
			}
		}
	}
	res.afterRSS, res.peakRSS = procMemKiB(srv.pid())
	return nil
}

// budget is the time left for quiet waits and re-measurements.
type budget struct {
	left time.Duration
	used bool // ran out at least once
}

func (b *budget) spend(d time.Duration) {
	b.left -= d
	if b.left <= 0 {
		b.used = true
	}
}

func (b *budget) remaining() time.Duration { return max(b.left, 0) }

// wait waits for the machine to be quiet, within --quiet-wait and what is
// left of --wait-budget (it always samples one second, to know the other
// load), and returns the share of the CPUs other processes use.
func (o *options) wait(ctx context.Context, m cpuMeter) float64 {
	t := time.Now()
	q := waitQuiet(ctx, m, runtime.NumCPU(), min(o.quietWait, o.waits.remaining()), quietThreshold)
	o.waits.spend(max(time.Since(t)-time.Second, 0))
	return q
}

// quietThreshold is the share of the CPUs other processes may use while
// a window is measured without a warning.
const quietThreshold = 0.10

func dbCPUNote(r result, db string) string {
	if db != "postgres" {
		return ""
	}
	return "  postgres " + fmtDur(r.perOp(r.dbCPU)) + "/op"
}
