package legal

import (
	"context"
	"errors"
	"testing"
	"time"
)

type fakeLister struct {
	list  []*Authorisation
	err   error
	calls int
}

func (f *fakeLister) ListAuthorisations(context.Context) ([]*Authorisation, error) {
	f.calls++
	return f.list, f.err
}

func TestCache(t *testing.T) {
	now := time.Date(2027, 3, 31, 23, 59, 0, 0, time.UTC)
	src := &fakeLister{list: []*Authorisation{{Ref: "A"}}}
	c := NewCache(src, 5*time.Second, func() time.Time { return now })
	ctx := t.Context()
	get := func() ([]*Authorisation, error) { return c.Authorisations(ctx) }

	if l, err := get(); err != nil || len(l) != 1 || src.calls != 1 {
		t.Fatalf("first read: %v %v calls %d", l, err, src.calls)
	}
	now = now.Add(4 * time.Second)
	if _, _ = get(); src.calls != 1 {
		t.Fatal("read storage within the TTL")
	}
	now = now.Add(time.Second)
	src.list = append(src.list, &Authorisation{Ref: "B"})
	if l, _ := get(); len(l) != 2 || src.calls != 2 {
		t.Fatalf("no reload after the TTL: %d entries, %d calls", len(l), src.calls)
	}
	c.Invalidate()
	if _, _ = get(); src.calls != 3 {
		t.Fatal("Invalidate did not force a read")
	}

	// Storage down: the last list serves for ten TTLs, then the cache
	// fails closed.
	src.err = errors.New("connection refused")
	now = now.Add(6 * time.Second)
	if l, err := get(); err != nil || len(l) != 2 {
		t.Fatalf("stale list refused early: %v", err)
	}
	now = now.Add(45 * time.Second)
	if _, err := get(); err == nil {
		t.Fatal("a list older than ten TTLs still served")
	}
	src.err = nil
	if l, err := get(); err != nil || len(l) != 2 {
		t.Fatalf("no recovery: %v", err)
	}
}
