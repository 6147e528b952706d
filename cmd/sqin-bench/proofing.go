package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/sqlstore"
)

// The proofing scenario (issue 7) needs no server: `sqin registry
// generate` and `sqin proofing generate` write a registry of
// --proofing-records people and the driver's licence numbers the SAAQ
// delivers for them; on each database `sqin registry import` and `sqin
// proofing import` (the binary, as an operator runs them) load both;
// then --proofing-callers goroutines act as citizens proving their
// identity with a local secret, through the store and the prover the
// server uses, for --proofing-duration.
//
// One operation is what the server does for one secret of a proofing
// form, less the padding and the audit event:
//
//  1. the claimed-identity lookup: FindPersonByNameAndBirthDate (the
//     persons born that day, names compared) and GetRegistryEntry (the
//     person's attributes), as signup's handler does;
//  2. Prover.Check: the attempt counted under the four limits (global,
//     identity, account, network address: four sliding-window writes in
//     the database), the values normalised and validated, then compared:
//     the health card with the registry's own attributes (constant-time
//     compare), the driver's licence by its keyed hash (HMAC-SHA256 and
//     one read of proofing_secrets).
//
// The prover's deliberate padding (Limits.MinDuration, 300 ms in
// production) is set to 1 ns, so Check returns as soon as its work is
// done; the handler's own padding is not involved. No password is hashed
// on this path. Operations alternate between the health card and the
// licence (the health card for people without a licence).

const scProofing = "proofing"

// Target of issue 7 (for 9 million people).
const (
	proofingScale       = 9_000_000
	proofingCheckTarget = 20 * time.Millisecond // p99, local secret check, 32 citizens
	proofingSeed        = 7
)

// proofingOptions are the --proofing-* flags.
type proofingOptions struct {
	records  int
	callers  int
	duration time.Duration
	warmup   time.Duration
	delivery *proofingDelivery
}

// proofingDelivery is the generated registry and licence deliveries, made
// once and imported on each database.
type proofingDelivery struct {
	dir                string
	registry, licences string // manifests
	licenceCount       int64
	people             []benchPerson // sample of the registry, with their secrets
	gen                measured
}

// benchPerson is a citizen of the sample: what they type.
type benchPerson struct {
	family, given, birth string
	nam, expiry, licence string // licence "" when the SAAQ delivered none
}

type proofingResult struct {
	records, licences int64
	regImport         measured
	secImport         measured
	lookup            []time.Duration // sorted
	health, licence   []time.Duration // Prover.Check, by secret
	total             []time.Duration // lookup + check
	window            measured
	outcomes          map[string]int // by secret and outcome
	firstErr          string
	errors            int
}

// generateProofing writes the deliveries once and samples people.
func generateProofing(ctx context.Context, o *options, logw io.Writer) (*proofingDelivery, error) {
	if d := o.proofing.delivery; d != nil {
		return d, nil
	}
	dir, err := os.MkdirTemp("", "sqin-bench-proofing-*")
	if err != nil {
		return nil, err
	}
	d := &proofingDelivery{dir: dir}
	o.proofing.delivery = d
	n, seed := strconv.Itoa(o.proofing.records), strconv.Itoa(proofingSeed)
	meter := stepMeter{}
	t0 := meter.sample()
	out, err := runSQIN(ctx, o.bin, "registry", "generate", "--count", n, "--seed", seed, "--out", dir)
	if err != nil {
		return nil, err
	}
	d.registry = strings.TrimSpace(strings.Split(out, "\n")[0])
	if out, err = runSQIN(ctx, o.bin, "proofing", "generate", "--count", n, "--seed", seed, "--out", dir); err != nil {
		return nil, err
	}
	d.gen = meter.since(t0)
	d.licences = strings.TrimSpace(strings.Split(out, "\n")[0])
	lm, licData, err := proofing.ReadSecretManifest(d.licences)
	if err != nil {
		return nil, err
	}
	d.licenceCount = lm.RecordCount
	m, data, err := registry.ReadManifest(d.registry)
	if err != nil {
		return nil, err
	}
	if d.people, err = samplePeople(data, m.Format, m.RecordCount, 20_000); err != nil {
		return nil, err
	}
	if err := addLicences(licData, d.people); err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "proofing: generated %s people and %s licences in %s\n", commas(m.RecordCount), commas(d.licenceCount), fmtDur(d.gen.wall))
	return d, nil
}

// samplePeople reads about n people spread over the registry data file.
func samplePeople(path, format string, records int64, n int) ([]benchPerson, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	every := max(records/int64(n), 1)
	rd := registry.NewReader(f, format)
	var out []benchPerson
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
			out = append(out, benchPerson{family: r.Fields[registry.FFamilyName], given: r.Fields[registry.FGivenNames],
				birth: r.Fields[registry.FBirthDate], nam: r.Fields[registry.FNAM], expiry: r.Fields[registry.FCardExpiry]})
		}
	}
}

// addLicences fills the licence numbers of the sampled people from the
// licence data file (CSV "op,nam,number").
func addLicences(path string, people []benchPerson) error {
	idx := make(map[string]int, len(people))
	for i, p := range people {
		idx[p.nam] = i
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		op, rest, _ := strings.Cut(sc.Text(), ",")
		nam, number, _ := strings.Cut(rest, ",")
		if i, ok := idx[nam]; ok && op == proofing.OpSet {
			people[i].licence = number
		}
	}
	return sc.Err()
}

func (o *options) cleanupProofing() {
	if d := o.proofing.delivery; d != nil {
		os.RemoveAll(d.dir)
	}
}

// runProofing runs the proofing scenario on a fresh database of kind db.
func runProofing(ctx context.Context, o *options, db string, logw io.Writer) (res *proofingResult, err error) {
	d, err := generateProofing(ctx, o, logw)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	dbURL, done, err := freshDB(ctx, o, db, d.dir, "proofing")
	if err != nil {
		return nil, err
	}
	defer func() {
		if e := done(); e != nil && err == nil {
			err = e
		}
	}()
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		return nil, err
	}
	res = &proofingResult{outcomes: map[string]int{}}
	meter := stepMeter{}
	t0 := meter.sample()
	if _, err := runSQIN(ctx, o.bin, "registry", "import", d.registry, "--db", dbURL); err != nil {
		return nil, err
	}
	res.regImport = meter.since(t0)
	t0 = meter.sample()
	out, err := runSQIN(ctx, o.bin, "proofing", "import", d.licences, "--db", dbURL, "--master-key", base64.StdEncoding.EncodeToString(master))
	if err != nil {
		return nil, err
	}
	res.secImport = meter.since(t0)
	if _, err := fmt.Sscanf(lastLine(out), "stored %d,", &res.licences); err != nil {
		return nil, fmt.Errorf("sqin proofing import said %q: %w", lastLine(out), err)
	}
	m, _, err := registry.ReadManifest(d.registry)
	if err != nil {
		return nil, err
	}
	res.records = m.RecordCount
	fmt.Fprintf(logw, "%s: proofing: registry of %s imported in %s, %s licences in %s\n", db, commas(res.records),
		fmtDur(res.regImport.wall), commas(res.licences), fmtDur(res.secImport.wall))

	if db == "postgres" {
		// As autovacuum does after a bulk load, in its own time: the
		// visibility map lets the lookup's covering index answer alone.
		if err := vacuum(ctx, dbURL, "persons", "proofing_secrets"); err != nil {
			return nil, err
		}
	}
	st, err := sqlstore.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	prover, err := benchProver(st, master)
	if err != nil {
		return nil, err
	}
	quiet := cpuMeter{}
	if db == "postgres" {
		b, err := newPGBackends(ctx, o.postgres, os.Getpid())
		if err != nil {
			return nil, err
		}
		defer b.close()
		meter.pg, quiet.postgres = b, b
	}
	// Warm-up (discarded), then the window.
	if _, err := proofingChecks(ctx, st, prover, d.people, o.proofing.callers, o.proofing.warmup); err != nil {
		return nil, err
	}
	if q := o.wait(ctx, quiet); q >= quietThreshold {
		fmt.Fprintf(logw, "%s: proofing: other processes still use %.0f%% of the CPUs; measuring anyway\n", db, 100*q)
	}
	t0 = meter.sample()
	w, err := proofingChecks(ctx, st, prover, d.people, o.proofing.callers, o.proofing.duration)
	res.window = meter.since(t0)
	if err != nil {
		return nil, err
	}
	res.lookup, res.health, res.licence, res.total = w.lookup, w.health, w.licence, w.total
	res.outcomes, res.errors, res.firstErr = w.outcomes, w.errors, w.firstErr
	fmt.Fprintf(logw, "%s: proofing, %d callers: %d checks; health card p50 %s p99 %s; licence p50 %s p99 %s; lookup + check p99 %s; outcomes %v (other load %.0f%%)\n",
		db, o.proofing.callers, len(res.total), fmtDur(percentile(res.health, 0.5)), fmtDur(percentile(res.health, 0.99)),
		fmtDur(percentile(res.licence, 0.5)), fmtDur(percentile(res.licence, 0.99)), fmtDur(percentile(res.total, 0.99)),
		res.outcomes, 100*res.window.others)
	if res.firstErr != "" {
		fmt.Fprintf(logw, "    first error: %s\n", res.firstErr)
	}
	return res, nil
}

// vacuum runs VACUUM (ANALYZE) on PostgreSQL tables.
func vacuum(ctx context.Context, dbURL string, tables ...string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{t}.Sanitize()); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	return nil
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// benchProver is the server's prover (cmd/sqin setupSignup) on the local
// secrets of the built-in catalogue, with limits that never lock (every
// attempt is still counted) and no padding. Its key is derived from the
// master key as sqin serve and sqin proofing import derive it.
func benchProver(st *sqlstore.DB, master []byte) (*proofing.Prover, error) {
	cat := *proofing.DefaultCatalogue()
	cat.Secrets = slices.DeleteFunc(slices.Clone(cat.Secrets), func(s proofing.SecretType) bool { return s.Verify != proofing.VerifyLocal })
	mac := hmac.New(sha256.New, master)
	mac.Write([]byte("sqin/proofing-secret"))
	const never = 1 << 30
	return proofing.NewProver(&cat, mac.Sum(nil), proofing.Limits{PerPerson: never, PerAccount: never, PerAddress: never,
		Global: never, MinDuration: time.Nanosecond}, st, st, nil)
}

type proofingWindow struct {
	lookup, health, licence, total []time.Duration
	outcomes                       map[string]int
	errors                         int
	firstErr                       string
}

// proofingChecks runs callers citizens for dur and returns the latencies,
// sorted.
func proofingChecks(ctx context.Context, st *sqlstore.DB, p *proofing.Prover, people []benchPerson, callers int, dur time.Duration) (*proofingWindow, error) {
	if len(people) == 0 {
		return nil, errors.New("no people to prove")
	}
	res := &proofingWindow{outcomes: map[string]int{}}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	end := time.Now().Add(dur)
	for w := range callers {
		wg.Go(func() {
			var lookup, health, licence, total []time.Duration
			outcomes := map[string]int{}
			nerr, first := 0, ""
			account, address := fmt.Sprintf("acct-bench-%d", w), fmt.Sprintf("192.0.2.%d", w%250+1)
			for i := w * 7919; time.Now().Before(end) && ctx.Err() == nil; i++ {
				c := people[i%len(people)]
				t0 := time.Now()
				pid, err := st.FindPersonByNameAndBirthDate(ctx, c.family, c.given, c.birth)
				attrs := map[string]string{}
				if err == nil {
					e, err2 := st.GetRegistryEntry(ctx, pid)
					if err = err2; err == nil {
						for _, a := range e.Attributes {
							attrs[a.Name] = a.Value
						}
					}
				}
				if err != nil {
					nerr++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				t1 := time.Now()
				a := proofing.Attempt{AccountID: account, Address: address, Identity: "bench:" + c.nam, PersonID: pid, Person: attrs}
				useLicence := c.licence != "" && i%2 == 1
				if useLicence {
					a.SecretType, a.Values = "driving-licence", map[string]string{"number": c.licence}
				} else {
					a.SecretType, a.Values = "health-card", map[string]string{"nam": c.nam, "expiry": c.expiry}
				}
				r, err := p.Check(ctx, a)
				t2 := time.Now()
				if err != nil {
					nerr++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				lookup, total = append(lookup, t1.Sub(t0)), append(total, t2.Sub(t0))
				if useLicence {
					licence = append(licence, t2.Sub(t1))
				} else {
					health = append(health, t2.Sub(t1))
				}
				outcomes[a.SecretType+" "+r.Outcome.String()]++
			}
			mu.Lock()
			defer mu.Unlock()
			res.lookup, res.total = append(res.lookup, lookup...), append(res.total, total...)
			res.health, res.licence = append(res.health, health...), append(res.licence, licence...)
			for k, v := range outcomes {
				res.outcomes[k] += v
			}
			res.errors += nerr
			if res.firstErr == "" {
				res.firstErr = first
			}
		})
	}
	wg.Wait()
	for _, s := range [][]time.Duration{res.lookup, res.health, res.licence, res.total} {
		slices.Sort(s)
	}
	return res, ctx.Err()
}

// writeProofing writes the proofing section of the report.
func (rep *report) writeProofing(w io.Writer) {
	var dbs []*dbResult
	for _, d := range rep.dbs {
		if d.proofing != nil {
			dbs = append(dbs, d)
		}
	}
	po := rep.opts.proofing
	if len(dbs) == 0 || po.delivery == nil {
		return
	}
	n := dbs[0].proofing.records
	fmt.Fprintf(w, "## Proofing checks (issue 7)\n\n")
	fmt.Fprintf(w, "A registry of %s synthetic people (`sqin registry generate`) and the driver's licence numbers the SAAQ delivers for %s of them (`sqin proofing generate`) are imported on each database with the binary (`sqin registry import`, `sqin proofing import`: the licences stored as keyed hashes only); on PostgreSQL `VACUUM (ANALYZE)` then runs on both tables, as autovacuum would after a bulk load. Then %d goroutines, each a citizen with its own account and network address, prove identities of a sample of %s people for %s (after a discarded warm-up of %s), in-process through the store and the prover `sqin serve` uses.\n\n",
		commas(n), commas(po.delivery.licenceCount), po.callers, commas(int64(len(po.delivery.people))), po.duration, po.warmup)
	fmt.Fprintf(w, "What is timed, per operation: **lookup** = the claimed-identity lookup the proofing page does before any check (`FindPersonByNameAndBirthDate`: the persons born that day, names compared; then `GetRegistryEntry`: the person's attributes); **check** = `Prover.Check` for one local secret: the attempt counted under the four limits (global, identity, account, address: four sliding-window writes in the database), the values normalised and validated, then compared — the health-insurance number and card expiry with the registry's own attributes, the licence number by its HMAC-SHA256 and one read of `proofing_secrets`. Operations alternate between the two secrets. Excluded: the prover's deliberate padding (`Limits.MinDuration`, 300 ms in production, set to 1 ns here) and the page's own padding, the audit event, HTTP and HTML; no password is hashed on this path. The limits are set so high that nothing locks, but every attempt is counted.\n\n")
	fmt.Fprintf(w, "| measurement | target |")
	for _, d := range dbs {
		fmt.Fprintf(w, " %s |", dbTitles[d.db])
	}
	fmt.Fprintf(w, "\n|---|---|")
	for range dbs {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	row := func(name, target string, cell func(r *proofingResult) string) {
		fmt.Fprintf(w, "| %s | %s |", name, target)
		for _, d := range dbs {
			fmt.Fprintf(w, " %s |", cell(d.proofing))
		}
		fmt.Fprintln(w)
	}
	warn := func(m measured) string {
		if m.others >= quietThreshold {
			return fmt.Sprintf(" ⚠ other load %.0f %%", 100*m.others)
		}
		return ""
	}
	verdict := func(p99 time.Duration) string {
		if n < proofingScale {
			return "not at the target's scale"
		}
		return passMiss(p99 < proofingCheckTarget)
	}
	row("imports (binary): registry, then licences", "–", func(r *proofingResult) string {
		return fmt.Sprintf("%s people in %s; %s licences in %s (%s/s)", commas(r.records), fmtDur(r.regImport.wall), commas(r.licences),
			fmtDur(r.secImport.wall), commas(int64(float64(r.licences)/max(r.secImport.wall.Seconds(), 1e-9))))
	})
	lat := func(name string, pick func(r *proofingResult) []time.Duration, target bool) {
		t := "–"
		if target {
			t = fmt.Sprintf("p99 < %s", fmtDur(proofingCheckTarget))
		}
		row(fmt.Sprintf("%s, %d citizens", name, po.callers), t, func(r *proofingResult) string {
			s := pick(r)
			if len(s) == 0 {
				return "–"
			}
			p99 := percentile(s, 0.99)
			c := fmt.Sprintf("p50 %s, p99 %s, %s/s", fmtDur(percentile(s, 0.5)), fmtDur(p99),
				commas(int64(float64(len(s))/max(r.window.wall.Seconds(), 1e-9))))
			if target {
				c += ": " + verdict(p99)
			}
			return c + warn(r.window)
		})
	}
	lat("check, health card (registry-held)", func(r *proofingResult) []time.Duration { return r.health }, true)
	lat("check, driver's licence (delivered hash)", func(r *proofingResult) []time.Duration { return r.licence }, true)
	lat("claimed-identity lookup", func(r *proofingResult) []time.Duration { return r.lookup }, false)
	lat("lookup + check", func(r *proofingResult) []time.Duration { return r.total }, true)
	row("CPU per operation (this process + PostgreSQL backends)", "–", func(r *proofingResult) string {
		ops := len(r.total)
		if ops == 0 {
			return "–"
		}
		return fmt.Sprintf("%s + %s", fmtDur(r.window.self/time.Duration(ops)), fmtDur(r.window.db/time.Duration(ops)))
	})
	row("outcomes (every check uses the right values)", "all match", func(r *proofingResult) string {
		keys := make([]string, 0, len(r.outcomes))
		for k := range r.outcomes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %s", k, commas(int64(r.outcomes[k]))))
		}
		if r.errors > 0 {
			parts = append(parts, fmt.Sprintf("**%d errors**, first: `%s`", r.errors, oneLine(r.firstErr)))
		}
		return strings.Join(parts, "; ")
	})
	fmt.Fprintln(w)
	fmt.Fprintf(w, "A few checks of the sample may not match: two synthetic people with the same names and birth date make the lookup find the first of them (the real registry has such pairs too; the proofing page then fails for the second, who uses the code by mail).\n\n")
	if n < proofingScale {
		fmt.Fprintf(w, "The target is for %s people: measure it at that scale with `--proofing-records %d`.\n\n", commas(proofingScale), proofingScale)
	}
}
