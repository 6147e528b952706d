// Package audittest helps test the audit log: an in-memory audit.Storage whose
// rows tests can tamper with, random events, and the tampering suite that
// every audit.Storage implementation passes (RunTamper).
package audittest

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
)

// MemStore is an in-memory audit.Storage for tests: events by ID in a map, so
// that tests can tamper with them as someone with database access would.
type MemStore struct {
	mu       sync.Mutex
	size     uint64
	events   map[uint64]*audit.Record
	heads    map[uint64]*audit.TreeHead
	subtrees map[audit.NodeID]audit.Hash
	// Reads counts the calls to LeafHashes and Events, Ranges the ranges
	// LeafHashes read.
	Reads  int
	Ranges [][2]uint64
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{events: map[uint64]*audit.Record{}, heads: map[uint64]*audit.TreeHead{}, subtrees: map[audit.NodeID]audit.Hash{}}
}

func (m *MemStore) AppendEvents(ctx context.Context, events ...*audit.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	pend := audit.Take(ctx)
	all := make([]*audit.Event, 0, len(pend)+len(events))
	for i := range pend {
		all = append(all, &pend[i])
	}
	all = append(all, events...)
	for _, e := range all {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		e.Normalize()
		if len(e.Salt) == 0 {
			e.Salt = make([]byte, audit.SaltSize)
			rand.Read(e.Salt)
		}
		if err := e.Validate(); err != nil {
			return err
		}
	}
	for _, e := range all {
		e.ID = m.size
		m.size++
		m.events[e.ID] = &audit.Record{Event: *e, LeafHash: e.LeafHash()}
	}
	return nil
}

func (m *MemStore) AuditSize(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size, nil
}

func (m *MemStore) AuditEnd(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var end uint64
	for id := range m.events {
		end = max(end, id+1)
	}
	return end, nil
}

func (m *MemStore) Events(_ context.Context, from, to uint64) ([]*audit.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Reads++
	var out []*audit.Record
	if to-from > uint64(len(m.events)) { // sparse: walk the map
		for id := range m.events {
			if id >= from && id < to {
				out = append(out, m.copy(id))
			}
		}
		sortRecords(out)
		return out, nil
	}
	for id := from; id < to; id++ {
		if _, ok := m.events[id]; ok {
			out = append(out, m.copy(id))
		}
	}
	return out, nil
}

func sortRecords(rs []*audit.Record) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].ID < rs[j-1].ID; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

func (m *MemStore) copy(id uint64) *audit.Record {
	r := *m.events[id]
	r.Attributes = slices.Clip(slices.Clone(r.Attributes))
	r.Salt = slices.Clone(r.Salt)
	if r.PersonalDigest != nil {
		d := *r.PersonalDigest
		r.PersonalDigest = &d
	}
	return &r
}

func (m *MemStore) LeafHashes(_ context.Context, from, to uint64) ([]audit.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Reads++
	m.Ranges = append(m.Ranges, [2]uint64{from, to})
	out := make([]audit.Hash, 0, to-from)
	for id := from; id < to; id++ {
		r, ok := m.events[id]
		if !ok {
			return nil, fmt.Errorf("event %d missing", id)
		}
		out = append(out, r.LeafHash)
	}
	return out, nil
}

func (m *MemStore) EventsBySubject(_ context.Context, subject string, from uint64, limit int) ([]*audit.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*audit.Record
	for id := from; id < m.size && len(out) < limit; id++ {
		if r, ok := m.events[id]; ok && r.Subject == subject {
			out = append(out, m.copy(id))
		}
	}
	return out, nil
}

func (m *MemStore) RedactEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	m.mu.Lock()
	var n int64
	for id := uint64(0); id < m.size && n < int64(limit); id++ {
		r, ok := m.events[id]
		if !ok || r.Redacted || !r.Time.Before(before) {
			continue
		}
		d := r.Event.PersonalDigest()
		r.RequestID, r.Actor.ID, r.Subject, r.LegalBasis, r.Detail, r.Salt = "", "", "", "", "", nil
		r.Redacted, r.PersonalDigest = true, &d
		n++
	}
	m.mu.Unlock()
	if n == 0 {
		audit.Take(ctx)
		return 0, nil
	}
	return n, m.AppendEvents(ctx)
}

func (m *MemStore) SaveTreeHead(_ context.Context, th *audit.TreeHead) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.heads[th.TreeSize]; !ok {
		c := *th
		m.heads[th.TreeSize] = &c
	}
	return nil
}

func (m *MemStore) LatestTreeHead(context.Context) (*audit.TreeHead, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best *audit.TreeHead
	for _, th := range m.heads {
		if best == nil || th.TreeSize > best.TreeSize {
			best = th
		}
	}
	if best == nil {
		return nil, sqin.ErrNotFound
	}
	c := *best
	return &c, nil
}

func (m *MemStore) TreeHeads(context.Context) ([]*audit.TreeHead, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*audit.TreeHead
	for _, th := range m.heads {
		c := *th
		out = append(out, &c)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].TreeSize < out[j-1].TreeSize; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

func (m *MemStore) Subtrees(_ context.Context, ids []audit.NodeID) (map[audit.NodeID]audit.Hash, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[audit.NodeID]audit.Hash{}
	for _, id := range ids {
		if h, ok := m.subtrees[id]; ok {
			out[id] = h
		}
	}
	return out, nil
}

func (m *MemStore) SaveSubtrees(_ context.Context, nodes map[audit.NodeID]audit.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, h := range nodes {
		if _, ok := m.subtrees[id]; !ok {
			m.subtrees[id] = h
		}
	}
	return nil
}

// Subtree returns the cached hash of a node.
func (m *MemStore) Subtree(id audit.NodeID) (audit.Hash, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.subtrees[id]
	return h, ok
}

// CachedNodes returns every cached node.
func (m *MemStore) CachedNodes() map[audit.NodeID]audit.Hash {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[audit.NodeID]audit.Hash, len(m.subtrees))
	for id, h := range m.subtrees {
		out[id] = h
	}
	return out
}

func (m *MemStore) SubtreeFrontier(_ context.Context, level uint8) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var f uint64
	for id := range m.subtrees {
		if id.Level == level {
			f = max(f, id.Index+1)
		}
	}
	return f, nil
}

var _ audit.Storage = (*MemStore)(nil)

// The Tamperer methods change rows as someone with write access to the
// database would, bypassing the store.

func (m *MemStore) SetColumn(_ context.Context, id uint64, column string, value any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.events[id]
	if !ok {
		return fmt.Errorf("no event %d", id)
	}
	str := func() string { return value.(string) }
	switch column {
	case "at":
		r.Time = time.UnixMilli(value.(int64)).UTC()
	case "request_id":
		r.RequestID = str()
	case "actor_kind":
		r.Actor.Kind = str()
	case "actor_id":
		r.Actor.ID = str()
	case "action":
		r.Action = str()
	case "subject":
		r.Subject = str()
	case "client_id":
		r.ClientID = str()
	case "public_body":
		r.PublicBody = str()
	case "legal_basis":
		r.LegalBasis = str()
	case "attributes":
		r.Attributes = nil
		if v := str(); v != "" {
			r.Attributes = strings.Split(v, " ")
		}
	case "outcome":
		r.Outcome = str()
	case "detail":
		r.Detail = str()
	case "salt":
		r.Salt = slices.Clone(value.([]byte))
	case "leaf_hash":
		h, err := audit.HashFromBytes(value.([]byte))
		if err != nil {
			return err
		}
		r.LeafHash = h
	case "personal_digest":
		h, err := audit.HashFromBytes(value.([]byte))
		if err != nil {
			return err
		}
		r.PersonalDigest = &h
	default:
		return fmt.Errorf("no column %q", column)
	}
	return nil
}

func (m *MemStore) Delete(_ context.Context, id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.events, id)
	return nil
}

func (m *MemStore) Swap(_ context.Context, i, j uint64, withLeafHashes bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, b := m.events[i], m.events[j]
	if a == nil || b == nil {
		return fmt.Errorf("swap %d and %d: missing", i, j)
	}
	ca, cb := *a, *b
	*a, *b = cb, ca
	a.ID, b.ID = i, j
	if !withLeafHashes {
		a.LeafHash, b.LeafHash = ca.LeafHash, cb.LeafHash
	}
	return nil
}

func (m *MemStore) Insert(_ context.Context, r *audit.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.events[r.ID]; ok {
		return fmt.Errorf("event %d exists", r.ID)
	}
	c := *r
	m.events[r.ID] = &c
	return nil
}

func (m *MemStore) Shift(_ context.Context, from uint64, delta int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	moved := map[uint64]*audit.Record{}
	for id, r := range m.events {
		if id >= from {
			delete(m.events, id)
			r.ID = uint64(int64(id) + delta)
			moved[r.ID] = r
		}
	}
	for id, r := range moved {
		m.events[id] = r
	}
	return nil
}

func (m *MemStore) SetSize(_ context.Context, n uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.size = n
	return nil
}

func (m *MemStore) SetTreeHeadRoot(_ context.Context, size uint64, root audit.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	th, ok := m.heads[size]
	if !ok {
		return fmt.Errorf("no tree head of size %d", size)
	}
	th.RootHash = root
	return nil
}

var _ Tamperer = (*MemStore)(nil)
