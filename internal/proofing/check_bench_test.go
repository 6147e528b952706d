package proofing_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/sqltest"
)

// benchPeople is the registry the benchmark proves against (cmd/sqin-bench
// measures the same path at up to 9 million people: make bench).
const benchPeople = 20_000

// BenchmarkLocalCheck is one local secret check as the proofing page does
// it, less the padding: the claimed-identity lookup
// (FindPersonByNameAndBirthDate, GetRegistryEntry) and Prover.Check (four
// limits counted in the database, then the comparison), by 32 concurrent
// citizens. It reports the p50 and p99 of Check alone and of lookup +
// check.
func BenchmarkLocalCheck(b *testing.B) {
	for _, tc := range []struct{ name, url string }{
		{"sqlite", sqltest.SQLiteURL(b)},
		{"postgres", sqltest.PostgresURL(b)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			db := openDB(b, tc.url)
			people := loadBenchRegistry(b, db)
			never := 1 << 30
			p, err := proofing.NewProver(proofing.DefaultCatalogue(), key, proofing.Limits{PerPerson: never, PerAccount: never,
				PerAddress: never, Global: never, MinDuration: time.Nanosecond}, db, db, benchRemote())
			if err != nil {
				b.Fatal(err)
			}
			for _, secret := range []string{"health-card", "driving-licence"} {
				b.Run(secret, func(b *testing.B) { benchCheck(b, db, p, people, secret) })
			}
		})
	}
}

// benchRemote is the verifiers of the catalogue's remote secrets, never
// called here (only local secrets are checked).
func benchRemote() map[string]proofing.Verifier {
	v := verifierFunc(func([]string, map[string]string) (bool, error) {
		panic("a local check asked a holder")
	})
	return map[string]proofing.Verifier{"sin": v, "notice-of-assessment": v}
}

type benchPerson struct {
	family, given, birth string // as the registry holds them
	licence              string // "" when the generated delivery gave none
}

// loadBenchRegistry imports a synthetic registry and its licence delivery
// (the same pipelines as sqin registry import and sqin proofing import)
// and returns its people as delivered, with their licence numbers.
func loadBenchRegistry(b *testing.B, db *sqlstore.DB) []benchPerson {
	b.Helper()
	ctx := b.Context()
	dir := b.TempDir()
	m, rm, err := registry.GenerateDelivery(dir, registry.DeliveryOptions{Seed: 3, Count: benchPeople, Kind: registry.KindSnapshot})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := registry.Import(ctx, db, rm, registry.ImportOptions{}); err != nil {
		b.Fatal(err)
	}
	_, sm, err := proofing.GenerateSecretDelivery(dir, proofing.SecretDeliveryOptions{Seed: 3, Count: benchPeople, Kind: proofing.DeliverySnapshot})
	if err != nil {
		b.Fatal(err)
	}
	s, err := proofing.ImportSecrets(ctx, db, proofing.DefaultCatalogue(), sm, proofing.ImportOptions{Key: key})
	if err != nil {
		b.Fatal(err)
	}
	if s.Stored < benchPeople/2 {
		b.Fatalf("only %d licences stored", s.Stored)
	}
	licences := map[string]string{} // by health number
	i := 0
	if err := registry.Generate(3, benchPeople, func(p *sqin.Person) error {
		licences[p.HealthNo] = proofing.SyntheticLicence(3, i, p, 0)
		i++
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, m.DataFile))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rd := registry.NewReader(f, m.Format)
	var out []benchPerson
	var r registry.Record
	for {
		err := rd.Next(&r)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, benchPerson{family: r.Fields[registry.FFamilyName], given: r.Fields[registry.FGivenNames],
			birth: r.Fields[registry.FBirthDate], licence: licences[r.Fields[registry.FNAM]]})
	}
}

func benchCheck(b *testing.B, db *sqlstore.DB, p *proofing.Prover, people []benchPerson, secret string) {
	ctx := b.Context()
	var (
		mu             sync.Mutex
		checks, totals []time.Duration
		next, matches  atomic.Int64
		worker         atomic.Int64
	)
	b.SetParallelism(int(math.Ceil(32 / float64(runtime.GOMAXPROCS(0)))))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := worker.Add(1)
		var check, total []time.Duration
		var match int64
		for pb.Next() {
			c := people[next.Add(7919)%int64(len(people))]
			t0 := time.Now()
			pid, err := db.FindPersonByNameAndBirthDate(ctx, c.family, c.given, c.birth)
			if errors.Is(err, sqin.ErrNotFound) {
				continue // deceased
			}
			if err != nil {
				b.Error(err)
				return
			}
			e, err := db.GetRegistryEntry(ctx, pid)
			if err != nil {
				b.Error(err)
				return
			}
			attrs := map[string]string{}
			for _, a := range e.Attributes {
				attrs[a.Name] = a.Value
			}
			a := proofing.Attempt{SecretType: secret, AccountID: fmt.Sprint("acct-", w), Address: fmt.Sprint("192.0.2.", w),
				Identity: "bench:" + pid, PersonID: pid, Person: attrs}
			if secret == "health-card" {
				a.Values = map[string]string{"nam": attrs["health_insurance_number"], "expiry": attrs["health_card_expiry"]}
			} else {
				a.Values = map[string]string{"number": c.licence}
			}
			t1 := time.Now()
			r, err := p.Check(ctx, a)
			t2 := time.Now()
			if err != nil {
				b.Error(err)
				return
			}
			if r.Outcome == proofing.Match {
				match++
			}
			check, total = append(check, t2.Sub(t1)), append(total, t2.Sub(t0))
		}
		mu.Lock()
		checks, totals = append(checks, check...), append(totals, total...)
		mu.Unlock()
		matches.Add(match)
	})
	b.StopTimer()
	if len(checks) == 0 {
		return
	}
	// Every health card matches; about 80 % of adults hold a licence.
	if share := float64(matches.Load()) / float64(len(checks)); share < 0.5 {
		b.Fatalf("%s: only %.0f %% of the checks matched", secret, 100*share)
	}
	slices.Sort(checks)
	slices.Sort(totals)
	pct := func(s []time.Duration, q float64) float64 {
		return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(checks, 0.5), "check-p50-ms")
	b.ReportMetric(pct(checks, 0.99), "check-p99-ms")
	b.ReportMetric(pct(totals, 0.99), "lookup+check-p99-ms")
}
