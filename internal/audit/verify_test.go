package audit_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
)

func TestTamperMemory(t *testing.T) {
	audittest.RunTamper(t, 280, 1, func(t *testing.T) (audit.Storage, audittest.Tamperer) {
		st := audittest.NewMemStore()
		return st, st
	})
}

// TestSignTreeHeadRefuses checks that the key never signs a tree that does
// not extend its latest head, nor extends a forged head.
func TestSignTreeHeadRefuses(t *testing.T) {
	ctx := t.Context()
	key, _ := audit.NewKey(make([]byte, 32))
	rng := rand.New(rand.NewPCG(3, 3))
	setup := func() (*audittest.MemStore, *audit.Log) {
		st := audittest.NewMemStore()
		log := audit.NewLog(st, key)
		for i := range 300 {
			if err := st.AppendEvents(ctx, audittest.RandomEvent(rng, i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := log.SignTreeHead(ctx); err != nil {
			t.Fatal(err)
		}
		if err := st.AppendEvents(ctx, audittest.RandomEvent(rng, 300)); err != nil {
			t.Fatal(err)
		}
		return st, log
	}
	rewrite := func(st *audittest.MemStore, id uint64) {
		r, _ := st.Events(ctx, id, id+1)
		rec := r[0]
		rec.Detail = "rewritten"
		leaf, _ := rec.Leaf()
		st.SetColumn(ctx, id, "detail", rec.Detail)
		st.SetColumn(ctx, id, "leaf_hash", leaf[:])
	}
	// A covered event rewritten with its leaf hash, past the cached blocks.
	st, log := setup()
	rewrite(st, 280)
	if _, err := log.SignTreeHead(ctx); !errors.Is(err, audit.ErrInconsistent) {
		t.Fatalf("signed over a rewritten event: %v", err)
	}
	// Within a cached block, the cache still holds the original: the new
	// head commits to the original history, and verify names the block.
	st, log = setup()
	rewrite(st, 7)
	if _, err := log.SignTreeHead(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, st, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, f := range rep.Findings {
		if f.Event <= 7 && 7 < f.Event+f.Events {
			kinds = append(kinds, f.Kind)
		}
	}
	if !slices.Contains(kinds, audit.FindSubtree) || !slices.Contains(kinds, audit.FindRoot) {
		t.Fatalf("findings %v", rep.Findings)
	}
	// The latest head forged in the database.
	st, log = setup()
	st.SetTreeHeadRoot(ctx, 300, audit.Hash{1})
	if _, err := log.SignTreeHead(ctx); !errors.Is(err, audit.ErrInconsistent) {
		t.Fatalf("extended a forged head: %v", err)
	}
	// Truncated below the latest head.
	st, log = setup()
	st.SetSize(ctx, 200)
	if _, err := log.SignTreeHead(ctx); !errors.Is(err, audit.ErrInconsistent) {
		t.Fatalf("signed a truncated log: %v", err)
	}
}
