package demo

import (
	"testing"
	"time"
)

func TestMemStore(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newMemStore[string](time.Minute, 2, func() time.Time { return now })
	a, err := s.put("a")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.get(a); !ok || v != "a" {
		t.Fatalf("get = %q, %v", v, ok)
	}
	if v, ok := s.take(a); !ok || v != "a" {
		t.Fatalf("take = %q, %v", v, ok)
	}
	if _, ok := s.take(a); ok {
		t.Fatal("taken twice")
	}
	b, _ := s.put("b")
	if _, err := s.put("c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.put("d"); err != errStoreFull {
		t.Fatalf("third entry: %v", err)
	}
	now = now.Add(time.Minute)
	if _, ok := s.get(b); ok {
		t.Fatal("expired entry returned")
	}
	if _, err := s.put("e"); err != nil {
		t.Fatalf("expired entries not swept: %v", err)
	}
}
