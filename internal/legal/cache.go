package legal

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Lister reads every authorisation (store.Authorisations provides it).
type Lister interface {
	ListAuthorisations(ctx context.Context) ([]*Authorisation, error)
}

// Cache keeps the authorisations in memory for the release rule, read again
// from storage every TTL so that one created or ended on another instance
// applies within TTL. An authorisation's own end needs no reload: Decide
// compares it with the time of each request, so releases stop at the
// instant it ends.
type Cache struct {
	src Lister
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	list   []*Authorisation
	loaded time.Time
}

// NewCache returns a cache over src; ttl 0 means 5 s, now nil time.Now.
func NewCache(src Lister, ttl time.Duration, now func() time.Time) *Cache {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{src: src, ttl: ttl, now: now}
}

// Authorisations returns the current list, reading storage when it is
// older than the TTL. When storage cannot be read, the last list serves for
// up to ten TTLs more; after that the error is returned and callers must
// withhold (fail closed), since an authorisation may have been ended.
func (c *Cache) Authorisations(ctx context.Context) ([]*Authorisation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.loaded.IsZero() && now.Sub(c.loaded) < c.ttl {
		return c.list, nil
	}
	list, err := c.src.ListAuthorisations(ctx)
	if err != nil {
		if !c.loaded.IsZero() && now.Sub(c.loaded) < 10*c.ttl {
			return c.list, nil
		}
		return nil, fmt.Errorf("legal: read the authorisations: %w", err)
	}
	c.list, c.loaded = list, now
	return list, nil
}

// Invalidate makes the next call read storage (after a change made by this
// instance).
func (c *Cache) Invalidate() {
	c.mu.Lock()
	c.loaded = time.Time{}
	c.mu.Unlock()
}
