package sqlstore

import (
	"context"
	"crypto"
	crand "crypto/rand"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
)

// benchEvents is the size of the log the proof and verify benchmarks
// build: SQIN_AUDIT_BENCH_EVENTS, default 200 000 (make bench sets
// millions).
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("SQIN_AUDIT_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 200000
}

// fillAudit appends n random events in batches of 1000 and reports the
// rate (audittest.Fill, which sqin-bench runs too).
func fillAudit(b *testing.B, db *DB, n int) {
	ctx := context.Background()
	st, err := audittest.Fill(ctx, db, n, audittest.FillOptions{Batch: 1000, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: appended %d events in %s (%.0f events/s, batches of 1000)", db.dialect, n,
		st.Wall.Round(time.Millisecond), st.Rate())
	// What autovacuum does to an old log: statistics, hint bits, visibility.
	if db.dialect == Postgres {
		start := time.Now()
		if _, err := db.write.ExecContext(ctx, "VACUUM ANALYZE audit_events"); err != nil {
			b.Fatal(err)
		}
		b.Logf("VACUUM ANALYZE in %s", time.Since(start).Round(time.Millisecond))
	}
}

// BenchmarkAuditAppend: events/s in batches (AppendEvents), and single
// events riding on concurrent writes (a sign-in's session and its event).
func BenchmarkAuditAppend(b *testing.B) {
	forEach(b, b.Run, func(b *testing.B, db *DB) {
		rng := rand.New(rand.NewPCG(2, 2))
		for _, batch := range []int{1, 100} {
			b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
				evs := make([]*audit.Event, batch)
				for b.Loop() {
					for j := range evs {
						evs[j] = audittest.RandomEvent(rng, j)
					}
					if err := db.AppendEvents(b.Context(), evs...); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			})
		}
		batcherParallel := func(b *testing.B) { // standalone events from many requests, group-committed
			bt := audit.NewBatcher(db, 1000, 0)
			defer bt.Close()
			var n atomic.Int64
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(uint64(n.Add(1)), 5))
				for pb.Next() {
					if err := bt.Append(b.Context(), audittest.RandomEvent(rng, 0)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		}
		b.Run("batcher-parallel", batcherParallel)
		// The same on a log that already holds benchEvents() events, whose
		// indexes no longer fit in a small page cache.
		filled := false
		b.Run("batcher-parallel-old-log", func(b *testing.B) {
			if !filled { // once: the benchmark function runs again for each b.N
				b.StopTimer()
				fillAudit(b, db, benchEvents())
				filled = true
				b.StartTimer()
			}
			batcherParallel(b)
		})
		b.Run("with-session-parallel", func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(uint64(n.Add(1)), 3))
				for pb.Next() {
					i := n.Add(1)
					ctx := audit.With(b.Context(), *audittest.RandomEvent(rng, int(i)))
					s := &sqin.Session{ID: "bench-" + crand.Text(), AccountID: "acct", LoA: sqin.LoA1,
						ExpiresAt: benchNow.Add(time.Hour)}
					if err := db.CreateSession(ctx, s); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	})
}

// BenchmarkAuditProof: an inclusion proof for a random event of a log of
// benchEvents(), against its signed head, and a consistency proof.
func BenchmarkAuditProof(b *testing.B) {
	forEach(b, b.Run, func(b *testing.B, db *DB) {
		n := benchEvents()
		fillAudit(b, db, n)
		log := audit.NewLog(db, testAuditKey)
		start := time.Now()
		th, err := log.SignTreeHead(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("first signed head (subtree cache built for %d events) in %s", n, time.Since(start).Round(time.Millisecond))
		rng := rand.New(rand.NewPCG(4, 4))
		b.Run("inclusion", func(b *testing.B) {
			for b.Loop() {
				m := rng.Uint64N(th.TreeSize)
				p, err := log.InclusionProof(b.Context(), m, th.TreeSize)
				if err != nil {
					b.Fatal(err)
				}
				_ = p
			}
		})
		b.Run("prove-event", func(b *testing.B) { // event + proof, as the citizen API will serve it
			for b.Loop() {
				p, err := log.Prove(b.Context(), rng.Uint64N(th.TreeSize))
				if err != nil {
					b.Fatal(err)
				}
				if err := audit.VerifyInclusion(p.Record.LeafHash, p.Record.ID, th.TreeSize, p.Hashes, th.RootHash); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("consistency", func(b *testing.B) {
			for b.Loop() {
				if _, err := log.ConsistencyProof(b.Context(), 1+rng.Uint64N(th.TreeSize-1), th.TreeSize); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkAuditVerify: the whole log recomputed, in events/s.
func BenchmarkAuditVerify(b *testing.B) {
	forEach(b, b.Run, func(b *testing.B, db *DB) {
		n := benchEvents()
		fillAudit(b, db, n)
		log := audit.NewLog(db, testAuditKey)
		if _, err := log.SignTreeHead(b.Context()); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			rep, err := audit.Verify(b.Context(), db, audit.VerifyOptions{PublicKeys: []crypto.PublicKey{testAuditKey.Public()}})
			if err != nil || !rep.OK() {
				b.Fatal(err, rep.Findings)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
