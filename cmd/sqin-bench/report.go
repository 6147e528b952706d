package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// machine describes where the benchmark ran.
type machine struct {
	cpus    int
	model   string
	kernel  string
	goVer   string
	memory  string
	loadavg string
}

func describeMachine() machine {
	m := machine{cpus: runtime.NumCPU(), goVer: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.loadavg = strings.Join(f[:3], " ")
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == "MemTotal" {
				var kib int64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib)
				m.memory = fmt.Sprintf("%.0f GiB", float64(kib)/(1<<20))
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.goVer = strings.TrimSpace(string(out))
	}
	return m
}

type report struct {
	opts         *options
	machine      machine
	started      time.Time
	fastHashFlag bool
	dbs          []*dbResult
}

var dbTitles = map[string]string{"sqlite": "SQLite", "postgres": "PostgreSQL"}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func mb(kib int64) string { return fmt.Sprintf("%.1f MB", float64(kib)*1024/1e6) }

// at returns the result of a scenario at one concurrency.
func (d *dbResult) at(sc string, conc int) (result, bool) {
	for _, r := range d.results {
		if r.scenario == sc && r.concurrency == conc {
			return r, true
		}
	}
	return result{}, false
}

// best returns the result with the most operations per second.
func (d *dbResult) best(sc string) (result, bool) {
	var b result
	found := false
	for _, r := range d.results {
		if r.scenario == sc && (!found || r.opsPerSec() > b.opsPerSec()) {
			b, found = r, true
		}
	}
	return b, found
}

// verdict tells whether a scenario meets its target on a database.
func (d *dbResult) verdict(sc string) (value string, met bool, ok bool) {
	b, found := d.best(sc)
	if !found {
		return "", false, false
	}
	if sc == scFAPI {
		cf, ok := d.best(scCodeFlow)
		if !ok || cf.opsPerSec() <= 0 {
			return fmt.Sprintf("%.0f/s (c=%d), no code_flow run to compare with", b.opsPerSec(), b.concurrency), false, true
		}
		ratio := b.opsPerSec() / cf.opsPerSec()
		return fmt.Sprintf("%.0f %% (%.0f/s at c=%d, code flow %.0f/s at c=%d); ceiling %.0f/s", 100*ratio,
			b.opsPerSec(), b.concurrency, cf.opsPerSec(), cf.concurrency, d.ceiling(b)), ratio >= fapiTargetRatio, true
	}
	if sc == scPassword {
		if d.hashRate <= 0 {
			return "", false, false
		}
		ratio := b.opsPerSec() / d.hashRate
		return fmt.Sprintf("%.0f %% (%.1f/s of %.1f hashes/s)", 100*ratio, b.opsPerSec(), d.hashRate), ratio >= passwordTargetRatio, true
	}
	return fmt.Sprintf("%.0f/s (c=%d); ceiling %.0f/s", b.opsPerSec(), b.concurrency, d.ceiling(b)), b.opsPerSec() >= targets[sc], true
}

// ceiling is the throughput the server (with PostgreSQL) would reach if
// it had every CPU of this machine to itself, at the CPU per operation
// measured: the load generator's share taken away. It ignores locks and
// the database's single writer, so it is an upper bound.
func (d *dbResult) ceiling(r result) float64 {
	per := r.perOp(r.serverCPU + r.dbCPU)
	if per <= 0 {
		return 0
	}
	return float64(runtime.NumCPU()) / per.Seconds()
}

func targetText(sc string) string {
	if sc == scFAPI {
		return fmt.Sprintf("≥ %.0f %% of the code flow's rate", 100*fapiTargetRatio)
	}
	if sc == scPassword {
		return fmt.Sprintf("≥ %.0f %% of hash rate", 100*passwordTargetRatio)
	}
	return fmt.Sprintf("≥ %.0f/s", targets[sc])
}

func yesNo(b bool) string {
	if b {
		return "met"
	}
	return "**not met**"
}

func (rep *report) write(w io.Writer) {
	o, m := rep.opts, rep.machine
	fmt.Fprintf(w, "# SQIN load benchmark\n\n")
	fmt.Fprintf(w, "Run %s with `sqin-bench --bin %s --duration %s --warmup %s --concurrency %s --scenarios %s`.\n\n",
		rep.started.UTC().Format("2006-01-02 15:04 MST"), o.bin, o.duration, o.warmup,
		joinInts(o.concurrency), strings.Join(o.scenarios, ","))
	fmt.Fprintf(w, "- Machine: %d CPUs, %s, %s RAM, Linux %s; load average before the run %s\n", m.cpus, m.model, m.memory, m.kernel, m.loadavg)
	fmt.Fprintf(w, "- Go: %s\n", m.goVer)
	fmt.Fprintf(w, "- The load generator and the server (and PostgreSQL) share these %d CPUs over loopback: every number is for the whole machine, not the server alone. PostgreSQL CPU counts only the backends serving the server under test (found by its sockets), not the WAL writer or other clients. \"CPU busy\" is (server + generator + PostgreSQL backends CPU time) / (window × CPUs); \"other load\" is what every other process on the machine used in the same window (before each window the tool waits up to --quiet-wait for it to fall under 10 %%; ⚠ marks windows where it did not stay there, whose numbers are disturbed).\n", m.cpus)
	fmt.Fprintf(w, "- argon2id: t=%d, m=%d KiB, p=%d on the server", o.argon2.time, o.argon2.memoryKiB, o.argon2.threads)
	if rep.fastHashFlag {
		fmt.Fprintf(w, " with `--demo-fast-hash=false` (demo accounts hashed at the production cost).\n")
	} else {
		fmt.Fprintf(w, "; **`sqin serve` has no `--demo-fast-hash` flag**: the demo accounts may be hashed with the demo's cheap cost, so the password numbers may not reflect production.\n")
	}
	fmt.Fprintf(w, "- Window %s per scenario and concurrency (%s for password sign-ins), after a discarded warm-up; an operation counts when it completes inside the window. Latency is per operation (a code flow is GET /authorize + POST /token + ID token check; a FAPI 2.0 flow is POST /par + GET /authorize + POST /token + ID token check, each API call with a fresh DPoP proof and each client authentication a fresh private_key_jwt assertion (each worker's first flow, not counted, also calls GET /userinfo with a proof); a sign-in is GET /authorize → GET /login → POST /login → GET /authorize/resume → code).\n",
		o.duration, o.pwDuration)
	fmt.Fprintf(w, "- Shared machine: before each window the tool waits up to %s for quiet and measures a disturbed window again up to %d times, within a budget of %s for the whole run", o.quietWait, o.retries, o.waitBudget)
	if o.waits != nil && o.waits.used {
		fmt.Fprintf(w, ", **which ran out**: later windows were measured without waiting, once.\n")
	} else {
		fmt.Fprintf(w, " (not used up).\n")
	}
	if slices.Contains(o.scenarios, scAudit) {
		fmt.Fprintf(w, "- Audit scenario: `--audit-events %d --audit-batch %d --audit-callers %d --audit-duration %s --audit-proofs %d` (section \"Audit log\").\n",
			o.audit.events, o.audit.batch, o.audit.callers, o.audit.duration, o.audit.proofs)
	}
	fmt.Fprintln(w)

	for _, d := range rep.dbs {
		if !d.server {
			continue
		}
		fmt.Fprintf(w, "## %s\n\n", dbTitles[d.db])
		fmt.Fprintf(w, "Server RSS at rest: **%s** (target < %.0f MB: %s); after load: %s; peak (VmHWM): %s. Start to ready: %s; %d SSO sessions signed in for the workers in %s.\n\n",
			mb(d.restRSS), rssTargetBytes/1e6, yesNo(float64(d.restRSS)*1024 < rssTargetBytes), mb(d.afterRSS), mb(d.peakRSS),
			d.startTime.Round(time.Millisecond), slicesMax(rep.opts.concurrency), d.setupTime.Round(time.Millisecond))
		pg := d.db == "postgres"
		fmt.Fprintf(w, "| scenario | conc | ops/s | p50 | p99 | errors | server CPU/op |")
		if pg {
			fmt.Fprintf(w, " PostgreSQL backends CPU/op |")
		}
		fmt.Fprintf(w, " generator CPU/op | CPU busy | other load | RSS after |\n")
		fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|")
		if pg {
			fmt.Fprintf(w, "--:|")
		}
		fmt.Fprintf(w, "--:|--:|--:|--:|\n")
		for _, r := range d.results {
			fmt.Fprintf(w, "| %s | %d | %.1f | %s | %s | %d | %s (%.0f %% sys) |", scenarioTitles[r.scenario], r.concurrency, r.opsPerSec(),
				fmtDur(r.p50), fmtDur(r.p99), r.errors, fmtDur(r.perOp(r.serverCPU)), 100*share(r.serverSys, r.serverCPU))
			if pg {
				fmt.Fprintf(w, " %s |", fmtDur(r.perOp(r.dbCPU)))
			}
			warn := ""
			if r.others(m.cpus) >= quietThreshold {
				warn = " ⚠"
			}
			fmt.Fprintf(w, " %s | %.0f %% | %.0f %%%s | %s |\n", fmtDur(r.perOp(r.benchCPU)), 100*r.busy(m.cpus), 100*r.others(m.cpus), warn, mb(r.rssAfterKiB))
		}
		fmt.Fprintln(w)
		if d.hashRate > 0 {
			fmt.Fprintf(w, "argon2id in this process (golang.org/x/crypto/argon2 IDKey, same parameters, 2 goroutines, server idle, best of three windows of %s): **%.2f hashes/s**.\n\n", o.hashTime, d.hashRate)
		}
		if d.fapiRetry > 0 || slices.Contains(o.scenarios, scFAPI) {
			var parts []string
			for _, c := range o.concurrency {
				f, ok1 := d.at(scFAPI, c)
				p, ok2 := d.at(scCodeFlow, c)
				if ok1 && ok2 && p.opsPerSec() > 0 {
					parts = append(parts, fmt.Sprintf("c=%d: %.0f %%", c, 100*f.opsPerSec()/p.opsPerSec()))
				}
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "FAPI 2.0 flow rate ÷ plain code flow rate at the same concurrency: %s (the same journey: authorize, code, token, ID token check). ", strings.Join(parts, ", "))
			}
			var notes []string
			for _, r := range d.results {
				if r.scenario == scFAPI && r.note != "" {
					notes = append(notes, r.note)
				}
			}
			if len(notes) > 0 {
				fmt.Fprintf(w, "Wall time per step of a FAPI flow, as the client sees it: %s. ", strings.Join(notes, "; "))
			}
			fmt.Fprintf(w, "DPoP nonce challenges answered (`use_dpop_nonce`, request sent again with the new nonce; warm-up flows included): %d.\n\n", d.fapiRetry)
		}
		var errs []string
		for _, r := range d.results {
			if r.firstErr != "" {
				errs = append(errs, fmt.Sprintf("- %s c=%d: %d errors; first: `%s`", r.scenario, r.concurrency, r.errors, oneLine(r.firstErr)))
			}
		}
		if len(errs) > 0 {
			fmt.Fprintf(w, "Errors:\n\n%s\n\n", strings.Join(errs, "\n"))
		}
	}

	var servers []*dbResult
	for _, d := range rep.dbs {
		if d.server {
			servers = append(servers, d)
		}
	}
	if len(servers) > 0 {
		rep.writeTargets(w, servers)
	}
	rep.writeAudit(w)
	rep.writeRegistry(w)
	rep.writeProofing(w)
}

// writeTargets writes the server scenarios' targets table.
func (rep *report) writeTargets(w io.Writer, dbs []*dbResult) {
	o := rep.opts
	fmt.Fprintf(w, "## Targets\n\nBest ops/s over the concurrency levels. \"Ceiling\" is %d CPUs divided by the server's (plus PostgreSQL's) CPU time per operation in that window: what the server could do with the machine to itself and the load coming from elsewhere (an upper bound: it ignores lock waits).\n\n| target |", runtime.NumCPU())
	for _, d := range dbs {
		fmt.Fprintf(w, " %s |", dbTitles[d.db])
	}
	fmt.Fprintf(w, "\n|---|")
	for range dbs {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	for _, sc := range o.scenarios {
		if !serverScenario(sc) {
			continue
		}
		fmt.Fprintf(w, "| %s %s |", scenarioTitles[sc], targetText(sc))
		for _, d := range dbs {
			v, met, ok := d.verdict(sc)
			if !ok {
				fmt.Fprintf(w, " – |")
				continue
			}
			fmt.Fprintf(w, " %s: %s |", v, yesNo(met))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "| RSS at rest < %.0f MB |", rssTargetBytes/1e6)
	for _, d := range dbs {
		fmt.Fprintf(w, " %s: %s |", mb(d.restRSS), yesNo(float64(d.restRSS)*1024 < rssTargetBytes))
	}
	fmt.Fprintf(w, "\n\n")
}

func share(part, whole time.Duration) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

func slicesMax(v []int) int {
	m := 0
	for _, n := range v {
		m = max(m, n)
	}
	return m
}
