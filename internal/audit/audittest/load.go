package audittest

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sqin/sqin/internal/audit"
)

// Load generation shared by the store benchmarks (internal/sqlstore) and
// the load generator (cmd/sqin-bench): the same random events, appended
// the same ways.

// FillOptions says how Fill appends.
type FillOptions struct {
	// Batch is the number of events per AppendEvents call (one
	// transaction); default 1000.
	Batch int
	// First numbers the first event (RandomEvent(rng, First+i)), so that
	// several fills of one log make different events.
	First int
	// Seed seeds the random events.
	Seed uint64
	// Progress, when set, is called after each batch with the events
	// appended so far.
	Progress func(done int)
}

// FillStats is what a fill measured.
type FillStats struct {
	Events  int
	Batches int
	// Append is the time spent in AppendEvents; Wall includes making the
	// events.
	Append, Wall time.Duration
}

// Rate is events per second of AppendEvents time.
func (s FillStats) Rate() float64 {
	if s.Append <= 0 {
		return 0
	}
	return float64(s.Events) / s.Append.Seconds()
}

// Fill appends n random events through st in batches, one transaction per
// batch, and measures the appends.
func Fill(ctx context.Context, st audit.Appender, n int, o FillOptions) (FillStats, error) {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	var s FillStats
	start := time.Now()
	evs := make([]*audit.Event, 0, o.Batch)
	for i := 0; i < n; i += o.Batch {
		evs = evs[:0]
		for j := i; j < min(i+o.Batch, n); j++ {
			evs = append(evs, RandomEvent(rng, o.First+j))
		}
		t0 := time.Now()
		if err := st.AppendEvents(ctx, evs...); err != nil {
			return s, err
		}
		s.Append += time.Since(t0)
		s.Events += len(evs)
		s.Batches++
		if o.Progress != nil {
			o.Progress(s.Events)
		}
	}
	s.Wall = time.Since(start)
	return s, nil
}

// EventAppender appends events one caller at a time (audit.Batcher is
// one).
type EventAppender interface {
	Append(ctx context.Context, events ...*audit.Event) error
}

// AppendConcurrently runs callers goroutines that each append one random
// event at a time through ap, waiting for each to commit, as concurrent
// requests do, for d. It returns the events committed within d and the
// time they took (d, or less when ctx ended).
func AppendConcurrently(ctx context.Context, ap EventAppender, callers int, d time.Duration, seed uint64) (int64, time.Duration, error) {
	var n atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	start := time.Now()
	deadline := start.Add(d)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(c)+1))
			for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
				if err := ap.Append(ctx, RandomEvent(rng, c*1_000_000+i)); err != nil {
					if !errors.Is(err, context.Canceled) {
						once.Do(func() { firstErr = err })
					}
					stop.Store(true)
					return
				}
				if time.Now().After(deadline) {
					return
				}
				n.Add(1)
			}
		}()
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	stop.Store(true)
	el := min(time.Since(start), d)
	wg.Wait()
	return n.Load(), el, firstErr
}
