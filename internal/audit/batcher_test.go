package audit_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

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
