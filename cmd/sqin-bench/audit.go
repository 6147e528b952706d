package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
	"github.com/sqin/sqin/internal/sqlstore"
)

// The audit-log scenarios (issue 5) run on a database of their own, with
// no server: the log is filled through the store, as the server's
// transactions and its Batcher fill it, then `sqin audit verify` (the
// binary) recomputes it and inclusion proofs are asked for random events.

// Targets of issue 5.
const (
	auditAppendTarget = 20000            // events/s, with batching
	auditVerifyEvents = 10_000_000       // verify this many events…
	auditVerifyTarget = 60 * time.Second // …in under this
	auditProofTarget  = 5 * time.Millisecond
)

// auditOptions are the --audit-* flags.
type auditOptions struct {
	events   int           // events appended through AppendEvents before verify and proofs
	batch    int           // events per AppendEvents
	callers  int           // concurrent Batcher callers
	duration time.Duration // Batcher window
	proofs   int           // inclusion proofs (and as many Prove calls) timed
}

// measured is a CPU and wall-clock measurement of one step.
type measured struct {
	wall   time.Duration
	self   time.Duration // this process
	db     time.Duration // PostgreSQL backends serving this process
	child  time.Duration // a child process (sqin audit verify)
	others float64       // share of the CPUs used by anything else (the child's PostgreSQL backends included)
}

type auditResult struct {
	events   int // in the log at the end
	fill     audittest.FillStats
	fillM    measured
	vacuum   time.Duration
	batched  int64
	batcherM measured
	head     time.Duration // first signed head (builds the subtree cache)
	size     uint64        // tree size of that head
	verify   measured
	verifyIn time.Duration // what `sqin audit verify` reports (database open excluded)
	proof    []time.Duration
	prove    []time.Duration
}

// stepMeter measures a step: this process, its PostgreSQL backends, the
// children it waited for, and the machine.
type stepMeter struct {
	pg *pgBackends // nil on SQLite
}

type stepSample struct {
	t            time.Time
	self, childs int64 // ns
	db           map[int]int64
	machine      int64 // ticks
}

func (m stepMeter) sample() stepSample {
	s := stepSample{t: time.Now(), machine: machineBusy()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = ru.Utime.Nano() + ru.Stime.Nano()
	}
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		s.childs = ru.Utime.Nano() + ru.Stime.Nano()
	}
	if m.pg != nil {
		s.db = m.pg.cpu()
	}
	return s
}

func (m stepMeter) since(b stepSample) measured {
	a := m.sample()
	r := measured{wall: a.t.Sub(b.t), self: time.Duration(a.self - b.self), child: time.Duration(a.childs - b.childs)}
	if m.pg != nil {
		r.db = ticks(dbDelta(cpuSample{db: b.db}, cpuSample{db: a.db}))
	}
	ncpu := float64(runtime.NumCPU())
	other := ticks(a.machine-b.machine) - r.self - r.db - r.child
	if r.wall > 0 {
		r.others = max(0, other.Seconds()/(r.wall.Seconds()*ncpu))
	}
	return r
}

// runAudit runs the audit scenarios on a fresh database of kind db.
func runAudit(ctx context.Context, o *options, db string, logw io.Writer) (res *auditResult, err error) {
	ao := o.audit
	dir, err := os.MkdirTemp("", "sqin-bench-audit-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dbURL, done, err := freshDB(ctx, o, db, dir, "audit")
	if err != nil {
		return nil, err
	}
	defer func() {
		if e := done(); e != nil && err == nil {
			err = e
		}
	}()
	st, err := sqlstore.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return nil, err
	}
	meter := stepMeter{}
	quiet := cpuMeter{}
	if db == "postgres" {
		b, err := newPGBackends(ctx, o.postgres, os.Getpid())
		if err != nil {
			return nil, err
		}
		defer b.close()
		meter.pg, quiet.postgres = b, b
	}
	res = &auditResult{}
	wait := func(what string) {
		if q := o.wait(ctx, quiet); q >= quietThreshold {
			fmt.Fprintf(logw, "%s: audit %s: other processes still use %.0f%% of the CPUs; measuring anyway\n", db, what, 100*q)
		}
	}

	// 1. Sustained append in batches, one transaction per batch.
	wait("append")
	step := max(ao.events/10, 1)
	next := step
	t0 := meter.sample()
	res.fill, err = audittest.Fill(ctx, st, ao.events, audittest.FillOptions{Batch: ao.batch, Seed: 1, Progress: func(done int) {
		if done >= next {
			fmt.Fprintf(logw, "%s: audit append %d/%d events (%.0f events/s)\n", db, done, ao.events,
				float64(done)/time.Since(t0.t).Seconds())
			next += step
		}
	}})
	res.fillM = meter.since(t0)
	if err != nil {
		return nil, fmt.Errorf("audit append: %w", err)
	}
	fmt.Fprintf(logw, "%s: audit append: %d events in batches of %d, %.0f events/s (other load %.0f%%)\n",
		db, res.fill.Events, ao.batch, res.fill.Rate(), 100*res.fillM.others)
	if db == "postgres" {
		// What autovacuum does to an old log: statistics, hint bits,
		// visibility map (as the store benchmarks do).
		t := time.Now()
		if err := vacuumAudit(ctx, dbURL); err != nil {
			return nil, err
		}
		res.vacuum = time.Since(t)
	}

	// 2. Standalone events from many concurrent callers through one
	// Batcher (group commit), as the server's requests append them.
	if ao.duration > 0 && ao.callers > 0 {
		wait("batcher")
		bt := audit.NewBatcher(st, 1000, 0)
		t0 := meter.sample()
		n, el, err := audittest.AppendConcurrently(ctx, bt, ao.callers, ao.duration, 7)
		res.batcherM = meter.since(t0)
		res.batcherM.wall = el
		bt.Close()
		if err != nil {
			return nil, fmt.Errorf("audit batcher: %w", err)
		}
		res.batched = n
		fmt.Fprintf(logw, "%s: audit batcher: %d callers, %.0f events/s (other load %.0f%%)\n",
			db, ao.callers, float64(n)/el.Seconds(), 100*res.batcherM.others)
	}

	// 3. The first signed head builds the subtree cache.
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	th, err := audit.NewLog(st, key).SignTreeHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	res.head, res.size = time.Since(t), th.TreeSize
	res.events = int(th.TreeSize)

	// 4. `sqin audit verify` of the whole log, as an auditor runs it.
	pubFile := filepath.Join(dir, "audit.pem")
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	wait("verify")
	cmd := exec.CommandContext(ctx, o.bin, "audit", "verify", "--db", dbURL, "--public-key", pubFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 = meter.sample()
	err = cmd.Run()
	res.verify = meter.since(t0)
	if err != nil {
		return nil, fmt.Errorf("sqin audit verify: %v\n%s", err, out.String())
	}
	res.verifyIn = parseVerifyTime(out.String())
	if !bytes.Contains(out.Bytes(), []byte(fmt.Sprintf("audit log: %d events", th.TreeSize))) {
		return nil, fmt.Errorf("sqin audit verify: want %d events:\n%s", th.TreeSize, out.String())
	}
	fmt.Fprintf(logw, "%s: audit verify: %d events in %s (%s in verify)\n", db, th.TreeSize,
		fmtDur(res.verify.wall), fmtDur(res.verifyIn))

	// 5. Inclusion proofs of random events against that head, each
	// checked (outside the timing); then events with their proof
	// (Log.Prove, what the citizen API serves) checked too.
	wait("proofs")
	lg := audit.NewLog(st, nil)
	rng := mrand.New(mrand.NewPCG(4, 4))
	for range ao.proofs {
		id := rng.Uint64N(th.TreeSize)
		t := time.Now()
		p, err := lg.InclusionProof(ctx, id, th.TreeSize)
		res.proof = append(res.proof, time.Since(t))
		if err != nil {
			return nil, fmt.Errorf("inclusion proof of %d: %w", id, err)
		}
		leaf, err := st.LeafHashes(ctx, id, id+1)
		if err != nil {
			return nil, err
		}
		if err := audit.VerifyInclusion(leaf[0], id, th.TreeSize, p, th.RootHash); err != nil {
			return nil, fmt.Errorf("inclusion proof of %d: %w", id, err)
		}
	}
	for range ao.proofs {
		id := rng.Uint64N(th.TreeSize)
		t := time.Now()
		p, err := lg.Prove(ctx, id)
		if err == nil {
			err = audit.VerifyInclusion(p.Record.LeafHash, p.Record.ID, p.TreeHead.TreeSize, p.Hashes, p.TreeHead.RootHash)
		}
		res.prove = append(res.prove, time.Since(t))
		if err != nil {
			return nil, fmt.Errorf("prove %d: %w", id, err)
		}
	}
	slices.Sort(res.proof)
	slices.Sort(res.prove)
	fmt.Fprintf(logw, "%s: audit inclusion proof: p50 %s p99 %s (%d proofs)\n", db,
		fmtDur(percentile(res.proof, 0.5)), fmtDur(percentile(res.proof, 0.99)), len(res.proof))
	return res, nil
}

// vacuumAudit runs VACUUM ANALYZE on the audit log's table.
func vacuumAudit(ctx context.Context, dbURL string) error {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "VACUUM ANALYZE audit_events")
	return err
}

var verifyOK = regexp.MustCompile(`(?m)^OK \(([^)]+)\)$`)

// parseVerifyTime reads the time `sqin audit verify` prints after OK.
func parseVerifyTime(out string) time.Duration {
	m := verifyOK.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	d, _ := time.ParseDuration(m[1])
	return d
}

// verifyRate is events per second of the verify command (wall time).
func (a *auditResult) verifyRate() float64 {
	if a.verify.wall <= 0 {
		return 0
	}
	return float64(a.size) / a.verify.wall.Seconds()
}

// verifyEstimate extrapolates the verify time to n events: the start-up
// (wall time minus what verify reports for itself) stays, the
// verification grows linearly (one pass over the log).
func (a *auditResult) verifyEstimate(n uint64) time.Duration {
	in := a.verifyIn
	if in <= 0 || in > a.verify.wall {
		in = a.verify.wall
	}
	return a.verify.wall - in + time.Duration(float64(in)*float64(n)/float64(max(a.size, 1)))
}

func (a *auditResult) batcherRate() float64 {
	if a.batcherM.wall <= 0 {
		return 0
	}
	return float64(a.batched) / a.batcherM.wall.Seconds()
}

// ceilingRate is events per second if the step had ncpu CPUs to itself at
// the CPU per event measured.
func ceilingRate(m measured, events int64, ncpu int) float64 {
	cpu := m.self + m.db
	if events <= 0 || cpu <= 0 {
		return 0
	}
	return float64(ncpu) * float64(events) / cpu.Seconds()
}

func passMiss(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**MISS**"
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeAudit writes the audit section of the report.
func (rep *report) writeAudit(w io.Writer) {
	var dbs []*dbResult
	for _, d := range rep.dbs {
		if d.audit != nil {
			dbs = append(dbs, d)
		}
	}
	if len(dbs) == 0 {
		return
	}
	ao := rep.opts.audit
	ncpu := rep.machine.cpus
	fmt.Fprintf(w, "## Audit log\n\n")
	fmt.Fprintf(w, "A fresh database per run, no server: %s events appended through the store's `AppendEvents` in batches of %d (one transaction each, as `audittest.Fill`); then %d concurrent callers each appending one event at a time through one `audit.Batcher` (group commit) for %s; a signed tree head (which builds the subtree cache); `sqin audit verify --public-key` (the binary, as an auditor runs it) over the whole log; %d inclusion proofs of random events against that head (`Log.InclusionProof`, each checked outside the timing) and %d events with their proof (`Log.Prove` + check). The generator, the database and the verify process share the machine's %d CPUs.\n\n",
		commas(int64(ao.events)), ao.batch, ao.callers, ao.duration, ao.proofs, ao.proofs, ncpu)

	fmt.Fprintf(w, "| scenario | target |")
	for _, d := range dbs {
		fmt.Fprintf(w, " %s |", dbTitles[d.db])
	}
	fmt.Fprintf(w, "\n|---|---|")
	for range dbs {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	row := func(name, target string, cell func(a *auditResult) string) {
		fmt.Fprintf(w, "| %s | %s |", name, target)
		for _, d := range dbs {
			fmt.Fprintf(w, " %s |", cell(d.audit))
		}
		fmt.Fprintln(w)
	}
	warn := func(m measured) string {
		if m.others >= quietThreshold {
			return fmt.Sprintf(" ⚠ other load %.0f %%", 100*m.others)
		}
		return ""
	}
	row(fmt.Sprintf("append, `AppendEvents` batches of %d", ao.batch), fmt.Sprintf("≥ %s events/s", commas(auditAppendTarget)), func(a *auditResult) string {
		return fmt.Sprintf("%s events/s (ceiling %s): %s%s", commas(int64(a.fill.Rate())), commas(int64(ceilingRate(a.fillM, int64(a.fill.Events), ncpu))),
			passMiss(a.fill.Rate() >= auditAppendTarget), warn(a.fillM))
	})
	if ao.duration > 0 && ao.callers > 0 {
		row(fmt.Sprintf("append, `Batcher`, %d concurrent callers", ao.callers), fmt.Sprintf("≥ %s events/s", commas(auditAppendTarget)), func(a *auditResult) string {
			return fmt.Sprintf("%s events/s (ceiling %s): %s%s", commas(int64(a.batcherRate())), commas(int64(ceilingRate(a.batcherM, a.batched, ncpu))),
				passMiss(a.batcherRate() >= auditAppendTarget), warn(a.batcherM))
		})
	}
	row("`sqin audit verify`", fmt.Sprintf("%s events < %s", commas(auditVerifyEvents), auditVerifyTarget), func(a *auditResult) string {
		if a.size >= auditVerifyEvents {
			return fmt.Sprintf("%s events in %s: %s%s", commas(int64(a.size)), fmtDur(a.verify.wall), passMiss(a.verify.wall < auditVerifyTarget), warn(a.verify))
		}
		est := a.verifyEstimate(auditVerifyEvents)
		return fmt.Sprintf("%s events in %s (%s events/s): 10 M ≈ %.0f s, %s extrapolated — measure with `--audit-events 10000000`%s",
			commas(int64(a.size)), fmtDur(a.verify.wall), commas(int64(a.verifyRate())), est.Seconds(),
			passMiss(est < auditVerifyTarget), warn(a.verify))
	})
	row("inclusion proof, random event", fmt.Sprintf("< %s", fmtDur(auditProofTarget)), func(a *auditResult) string {
		p50, p99 := percentile(a.proof, 0.5), percentile(a.proof, 0.99)
		return fmt.Sprintf("p50 %s, p99 %s, max %s: %s", fmtDur(p50), fmtDur(p99), fmtDur(a.proof[len(a.proof)-1]), passMiss(p99 < auditProofTarget))
	})
	row("event + proof + check (`Log.Prove`)", "–", func(a *auditResult) string {
		return fmt.Sprintf("p50 %s, p99 %s", fmtDur(percentile(a.prove, 0.5)), fmtDur(percentile(a.prove, 0.99)))
	})
	row("first signed head (builds the subtree cache)", "–", func(a *auditResult) string {
		return fmtDur(a.head) + " for " + commas(int64(a.size)) + " events"
	})
	fmt.Fprintln(w)

	fmt.Fprintf(w, "| database | step | wall | generator CPU | PostgreSQL backends CPU | `sqin audit verify` CPU | other load |\n|---|---|--:|--:|--:|--:|--:|\n")
	for _, d := range dbs {
		a := d.audit
		for _, s := range []struct {
			name string
			m    measured
		}{{"append (batches)", a.fillM}, {"append (Batcher)", a.batcherM}, {"verify", a.verify}} {
			if s.m.wall == 0 {
				continue
			}
			pg, child := "–", "–"
			if d.db == "postgres" {
				pg = fmtDur(s.m.db)
			}
			if s.name == "verify" {
				child = fmtDur(s.m.child)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.0f %% |\n", dbTitles[d.db], s.name, fmtDur(s.m.wall), fmtDur(s.m.self), pg, child, 100*s.m.others)
		}
	}
	fmt.Fprintf(w, "\nThe append ceilings are %d CPUs ÷ (generator + PostgreSQL backends CPU per event): the rate with the machine to the appends alone, making the random events included (an upper bound: it ignores commit waits). ", ncpu)
	fmt.Fprintf(w, "\"Other load\" is every other process's share of the %d CPUs in that step; for verify on PostgreSQL it includes the backends serving `sqin audit verify`, which the tool does not single out.", ncpu)
	for _, d := range dbs {
		a := d.audit
		if a.verifyIn > 0 {
			fmt.Fprintf(w, " %s: `audit verify` reported %s for the verification itself (the rest of the wall time is start-up and opening the database).", dbTitles[d.db], fmtDur(a.verifyIn))
		}
		if a.vacuum > 0 {
			fmt.Fprintf(w, " %s: `VACUUM ANALYZE audit_events` after the append took %s (not timed in any step).", dbTitles[d.db], fmtDur(a.vacuum))
		}
	}
	fmt.Fprintf(w, "\n\n")
}
