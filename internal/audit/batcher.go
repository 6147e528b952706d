package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"runtime"
	"sync"
	"time"
)

// Appender is what a Batcher appends through (store.Audit is one).
type Appender interface {
	AppendEvents(ctx context.Context, events ...*Event) error
}

// Batcher appends events that record no change of their own (a disclosure
// through userinfo, a failed sign-in) in shared transactions: while one
// batch commits, the next gathers, so a busy server commits many events per
// transaction (group commit) and a quiet one commits each at once. Append
// returns once the caller's events are committed. One Batcher per process
// is enough; several processes may each have one.
type Batcher struct {
	st      Appender
	max     int
	timeout time.Duration
	reqs    chan *batchReq
	done    chan struct{} // closed by Close
	exited  chan struct{} // closed when the loop has stopped
	once    sync.Once
}

type batchReq struct {
	events []*Event
	err    chan error
}

// gatherRounds is how many times the loop yields the processor to let
// more requests join a batch before committing it.
const gatherRounds = 4

// ErrClosed is the error of Append on a closed Batcher.
var ErrClosed = errors.New("audit: batcher closed")

// NewBatcher starts a batcher that commits up to max events per
// transaction (default 1000), each commit bounded by timeout (default 10
// s). Close stops it.
func NewBatcher(st Appender, max int, timeout time.Duration) *Batcher {
	if max <= 0 {
		max = 1000
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	b := &Batcher{st: st, max: max, timeout: timeout, reqs: make(chan *batchReq, 4*max), done: make(chan struct{}),
		exited: make(chan struct{})}
	go b.loop()
	return b
}

// Append commits events (setting their ID, Time and Salt) in the next
// batch. Events are checked first, so that one caller's mistake fails only
// that caller. If ctx ends first, Append returns its error; the events may
// still be committed.
func (b *Batcher) Append(ctx context.Context, events ...*Event) error {
	for _, e := range events {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		if len(e.Salt) == 0 {
			e.Salt = make([]byte, SaltSize)
			rand.Read(e.Salt)
		}
		e.Normalize()
		if err := e.Validate(); err != nil {
			return err
		}
	}
	r := &batchReq{events: events, err: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-b.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.exited:
		select {
		case err := <-r.err:
			return err
		default:
			return ErrClosed // queued after the last drain
		}
	}
}

// Close stops the batcher after committing what it was given, and waits
// for that.
func (b *Batcher) Close() {
	b.once.Do(func() { close(b.done) })
	<-b.exited
}

func (b *Batcher) loop() {
	defer close(b.exited)
	var batch []*batchReq
	var events []*Event
	for {
		batch, events = batch[:0], events[:0]
		select {
		case r := <-b.reqs:
			batch, events = append(batch, r), append(events, r.events...)
		case <-b.done:
			b.drain()
			return
		}
		// Gather what is queued, then let the goroutines that are about to
		// append run (a few scheduler rounds, no timer) and gather again:
		// under load each round brings more requests, so a transaction
		// carries many events instead of the two or so queued at the
		// instant the loop woke; when idle a round finds nothing and the
		// batch commits at once.
		for round := 0; len(events) < b.max; {
			select {
			case r := <-b.reqs:
				batch, events = append(batch, r), append(events, r.events...)
				continue
			default:
			}
			if round == gatherRounds {
				break
			}
			round++
			runtime.Gosched()
		}
		b.commit(batch, events)
	}
}

func (b *Batcher) commit(batch []*batchReq, events []*Event) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	err := b.st.AppendEvents(ctx, events...)
	cancel()
	for _, r := range batch {
		r.err <- err
	}
}

// drain commits the requests queued before Close.
func (b *Batcher) drain() {
	for {
		select {
		case r := <-b.reqs:
			b.commit([]*batchReq{r}, r.events)
		default:
			return
		}
	}
}
