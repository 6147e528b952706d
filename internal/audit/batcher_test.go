package audit_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
)

func TestBatcher(t *testing.T) {
	ctx := context.Background()
	st := audittest.NewMemStore()
	b := audit.NewBatcher(st, 50, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for w := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0))
			for i := range 40 {
				e := audittest.RandomEvent(rng, i)
				if err := b.Append(ctx, e); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[e.ID] {
					t.Errorf("ID %d given twice", e.ID)
				}
				seen[e.ID] = true
				mu.Unlock()
			}
		})
	}
	// One caller's invalid event fails that caller only.
	bad := audittest.RandomEvent(rand.New(rand.NewPCG(9, 9)), 0)
	bad.Outcome = "perhaps"
	if err := b.Append(ctx, bad); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("invalid event: %v", err)
	}
	wg.Wait()
	b.Close()
	if err := b.Append(ctx, audittest.RandomEvent(rand.New(rand.NewPCG(1, 1)), 0)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if n, _ := st.AuditSize(ctx); n != 16*40 || len(seen) != 16*40 {
		t.Fatalf("%d events appended, %d IDs seen", n, len(seen))
	}
	rep, err := audit.Verify(ctx, st, audit.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatal(err, rep.Findings)
	}
}

// countingAppender counts the transactions a Batcher commits.
type countingAppender struct {
	audit.Appender
	mu  sync.Mutex
	txs int
}

func (c *countingAppender) AppendEvents(ctx context.Context, events ...*audit.Event) error {
	c.mu.Lock()
	c.txs++
	c.mu.Unlock()
	return c.Appender.AppendEvents(ctx, events...)
}

// TestBatcherGathers: callers that are runnable when a batch starts join
// it, even on one processor with an appender that never blocks (the case
// where committing only what was already queued gave about one event per
// transaction); and a lone caller is served at once, with no timer.
func TestBatcherGathers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ctx := context.Background()
	st := &countingAppender{Appender: audittest.NewMemStore()}
	b := audit.NewBatcher(st, 1000, 0)
	defer b.Close()
	const callers, each = 8, 50
	var wg sync.WaitGroup
	for w := range callers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range each {
				if err := b.Append(ctx, audittest.RandomEvent(rng, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// All 8 callers join each batch here; before the gathering rounds it
	// was 1 (4 with the race detector, which shuffles the scheduler).
	if st.txs*5 > callers*each {
		t.Errorf("%d events in %d transactions: fewer than 5 per transaction", callers*each, st.txs)
	}
	t.Logf("%d events in %d transactions", callers*each, st.txs)

	start := time.Now()
	const alone = 20
	for i := range alone {
		if err := b.Append(ctx, audittest.RandomEvent(rand.New(rand.NewPCG(2, uint64(i))), i)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > alone*50*time.Millisecond {
		t.Errorf("%d lone appends took %v", alone, d)
	}
}
