package audit

import (
	"context"
	"sync"
)

// pending holds the events waiting for the next write that a store makes
// through a context that carries them.
type pending struct {
	mu     sync.Mutex
	events []Event
}

type ctxKey struct{}

// With returns a context carrying events, to be written by the store in
// the same transaction as the next write it makes through that context or
// one derived from it. If ctx already carries pending events, events are
// added to them (in order) and ctx itself is returned.
//
// When a write ends, the store takes every pending event: it writes them in
// the write's transaction just before committing, or drops them when the
// write fails (rollback, error, conflict). Each event is committed with
// exactly one write, or with none. So:
//
//   - add events right before the write whose change they record, with
//     what that change is known to be;
//   - events that record what a store callback decides (ExchangeCode's
//     issue, RotateRefreshToken's next) are added inside the callback
//     with Add: the transaction is still open;
//   - an event that records no change of its own goes through the store's
//     AppendEvents, which takes pending events the same way.
//
// Reads do not take events. The events are copied.
func With(ctx context.Context, events ...Event) context.Context {
	if p, ok := ctx.Value(ctxKey{}).(*pending); ok {
		p.add(events)
		return ctx
	}
	p := &pending{events: append([]Event(nil), events...)}
	return context.WithValue(ctx, ctxKey{}, p)
}

// Add adds events to those ctx carries, if it carries any recorder (With
// was called on it or on a parent), and reports whether it did.
func Add(ctx context.Context, events ...Event) bool {
	p, ok := ctx.Value(ctxKey{}).(*pending)
	if ok {
		p.add(events)
	}
	return ok
}

// Recorder returns a context that carries an empty recorder, so that
// events added later with Add (inside store callbacks, say) are written
// by the next write made through it.
func Recorder(ctx context.Context) context.Context {
	if _, ok := ctx.Value(ctxKey{}).(*pending); ok {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, &pending{})
}

func (p *pending) add(events []Event) {
	p.mu.Lock()
	p.events = append(p.events, events...)
	p.mu.Unlock()
}

// Pending reports whether ctx carries events not yet taken. Stores use it
// to keep writes without events on their fast path.
func Pending(ctx context.Context) bool {
	p, ok := ctx.Value(ctxKey{}).(*pending)
	if !ok {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events) > 0
}

// Take removes and returns the events ctx carries. Only stores call it:
// what they take, they write in the transaction at hand or drop with it.
func Take(ctx context.Context) []Event {
	p, ok := ctx.Value(ctxKey{}).(*pending)
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := p.events
	p.events = nil
	return ev
}
