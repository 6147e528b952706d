package demo

import (
	"crypto/rand"
	"errors"
	"sync"
	"time"
)

// memStore keeps values under random ids for a limited time, in memory:
// enough for a demonstration service that runs as one process. (SQIN
// itself keeps nothing in one process's memory.)
type memStore[T any] struct {
	mu        sync.Mutex
	m         map[string]memEntry[T]
	ttl       time.Duration
	max       int
	now       func() time.Time
	lastSweep time.Time
}

type memEntry[T any] struct {
	v   T
	exp time.Time
}

var errStoreFull = errors.New("demo: too many entries")

func newMemStore[T any](ttl time.Duration, max int, now func() time.Time) *memStore[T] {
	return &memStore[T]{m: map[string]memEntry[T]{}, ttl: ttl, max: max, now: now}
}

// put stores v under a new random id.
func (s *memStore[T]) put(v T) (string, error) {
	id := rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.m) >= s.max || now.Sub(s.lastSweep) > time.Minute {
		for k, e := range s.m {
			if !now.Before(e.exp) {
				delete(s.m, k)
			}
		}
		s.lastSweep = now
	}
	if len(s.m) >= s.max {
		return "", errStoreFull
	}
	s.m[id] = memEntry[T]{v: v, exp: now.Add(s.ttl)}
	return id, nil
}

// get returns the value stored under id if it has not expired.
func (s *memStore[T]) get(id string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookup(id, false)
}

// take returns the value stored under id and removes it: single use.
func (s *memStore[T]) take(id string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookup(id, true)
}

func (s *memStore[T]) lookup(id string, remove bool) (T, bool) {
	var zero T
	e, ok := s.m[id]
	if !ok {
		return zero, false
	}
	if remove || !s.now().Before(e.exp) {
		delete(s.m, id)
	}
	if !s.now().Before(e.exp) {
		return zero, false
	}
	return e.v, true
}

func (s *memStore[T]) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}
