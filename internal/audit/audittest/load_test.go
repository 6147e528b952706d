package audittest

import (
	"testing"
	"time"

	"github.com/sqin/sqin/internal/audit"
)

func TestFill(t *testing.T) {
	st := NewMemStore()
	var progress []int
	s, err := Fill(t.Context(), st, 2500, FillOptions{Batch: 1000, Seed: 3, Progress: func(n int) { progress = append(progress, n) }})
	if err != nil {
		t.Fatal(err)
	}
	if s.Events != 2500 || s.Batches != 3 || s.Rate() <= 0 || s.Wall < s.Append {
		t.Errorf("stats %+v", s)
	}
	if len(progress) != 3 || progress[2] != 2500 {
		t.Errorf("progress %v", progress)
	}
	if n, _ := st.AuditSize(t.Context()); n != 2500 {
		t.Errorf("size %d, want 2500", n)
	}
	// Fills with different First make different events.
	a, _ := st.Events(t.Context(), 0, 1)
	st2 := NewMemStore()
	if _, err := Fill(t.Context(), st2, 1, FillOptions{Seed: 3, First: 7}); err != nil {
		t.Fatal(err)
	}
	b, _ := st2.Events(t.Context(), 0, 1)
	if a[0].LeafHash == b[0].LeafHash {
		t.Error("First did not change the events")
	}
}

func TestAppendConcurrently(t *testing.T) {
	st := NewMemStore()
	bt := audit.NewBatcher(st, 100, 0)
	n, el, err := AppendConcurrently(t.Context(), bt, 8, 200*time.Millisecond, 1)
	bt.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || el <= 0 || el > 200*time.Millisecond {
		t.Errorf("%d events in %s", n, el)
	}
	// Events committed after the window are not counted, but are in the
	// log.
	if size, _ := st.AuditSize(t.Context()); size < uint64(n) {
		t.Errorf("log holds %d events, %d counted", size, n)
	}
}
