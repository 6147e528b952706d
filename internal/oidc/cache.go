package oidc

import (
	"context"
	"sync"
	"time"

	"github.com/sqin/sqin"
)

// cache is a small map with per-entry expiry and a size bound: when full,
// expired entries go first, then arbitrary ones (Go's map order) down to
// 7/8 of the bound, so that a full cache is swept once per max/8 puts and
// not at every put. That is enough for hot sets far smaller than the
// bound.
type cache[V any] struct {
	mu  sync.RWMutex
	m   map[string]cached[V]
	max int
}

type cached[V any] struct {
	v   V
	exp time.Time
}

func newCache[V any](max int) *cache[V] { return &cache[V]{m: make(map[string]cached[V]), max: max} }

func (c *cache[V]) get(k string, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *cache[V]) put(k string, v V, exp time.Time, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) <= c.max-c.max/8-1 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = cached[V]{v: v, exp: exp}
}

// clientTTL is how long a client read from storage is reused: a change
// (new secret, deleted client) reaches every instance within it.
const clientTTL = 5 * time.Second

// client returns a client for the hot protocol paths, from a short-lived
// cache.
func (p *Provider) client(ctx context.Context, id string) (*sqin.Client, error) {
	now := p.now()
	if c, ok := p.clients.get(id, now); ok {
		return c, nil
	}
	c, err := p.st.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	p.clients.put(id, c, now.Add(clientTTL), now)
	return c, nil
}
