package oidc

import (
	"strconv"
	"testing"
	"time"
)

// TestCacheBound: a full cache drops expired entries first, then
// arbitrary ones down to 7/8 of its bound, so it is swept once per max/8
// puts; it never holds more than its bound.
func TestCacheBound(t *testing.T) {
	now := time.Now()
	c := newCache[int](64)
	for i := range 64 {
		exp := now.Add(time.Hour)
		if i < 4 {
			exp = now.Add(-time.Second)
		}
		c.put(strconv.Itoa(i), i, exp, now)
	}
	c.put("new", 1, now.Add(time.Hour), now)
	if n := len(c.m); n != 56 {
		t.Fatalf("after a sweep: %d entries, want 56 (7/8 of 64)", n)
	}
	if _, ok := c.get("new", now); !ok {
		t.Fatal("the new entry is missing")
	}
	for i := range 4 {
		if _, ok := c.m[strconv.Itoa(i)]; ok {
			t.Fatalf("expired entry %d kept", i)
		}
	}
	for i := range 1000 {
		c.put("more"+strconv.Itoa(i), i, now.Add(time.Hour), now)
		if len(c.m) > 64 {
			t.Fatalf("%d entries, bound 64", len(c.m))
		}
	}
	if _, ok := c.get("more999", now); !ok {
		t.Fatal("the last entry is missing")
	}
}
