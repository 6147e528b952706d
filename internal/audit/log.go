package audit

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sqin/sqin"
)

// Log computes roots and proofs over a Storage and signs tree heads. It
// keeps nothing in memory: any number of instances may share one store.
type Log struct {
	st     Storage
	signer crypto.Signer // nil: cannot sign
	now    func() time.Time
	mem    nodeMemo
}

// nodeMemo remembers node hashes this process computed or read: a complete
// subtree's hash never changes once its leaves exist, so proofs against
// the same head (the right edge, the top of the tree) stop costing
// queries. It holds at most memoSize hashes (a few MB).
type nodeMemo struct {
	mu sync.Mutex
	m  map[NodeID]Hash
}

const memoSize = 1 << 16

func (n *nodeMemo) get(ids []NodeID, got map[NodeID]Hash) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range ids {
		if h, ok := n.m[id]; ok {
			got[id] = h
		}
	}
}

func (n *nodeMemo) put(got map[NodeID]Hash) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil || len(n.m)+len(got) > memoSize {
		n.m = make(map[NodeID]Hash, len(got))
	}
	for id, h := range got {
		if id.Level > 0 { // leaves are many and cheap
			n.m[id] = h
		}
	}
}

// NewLog returns a log over st that signs tree heads with signer (nil for a
// log that only reads and proves).
func NewLog(st Storage, signer crypto.Signer) *Log {
	return &Log{st: st, signer: signer, now: time.Now}
}

// syncChunk is how many blocks of 2^CacheLevel leaves Sync reads at once.
const syncChunk = 512

// Sync caches the hashes of every complete subtree of 2^CacheLevel leaves
// or more within the first size leaves. It resumes where the cache ends,
// so it costs one pass over the leaves appended since; several instances
// may run it at once (they store the same hashes).
func (l *Log) Sync(ctx context.Context, size uint64) error {
	blocks := size >> CacheLevel
	done, err := l.st.SubtreeFrontier(ctx, CacheLevel)
	if err != nil || done >= blocks {
		return err
	}
	// Resume from the complete subtrees that make up the cached prefix.
	ids := decompose(0, done<<CacheLevel)
	got := map[NodeID]Hash{}
	if err := l.resolve(ctx, ids, got); err != nil {
		return err
	}
	stack := make([]Hash, len(ids))
	for i, id := range ids {
		stack[i] = got[id]
	}
	b := newBuilder(CacheLevel, done, stack)
	nodes := map[NodeID]Hash{}
	b.Emit = func(id NodeID, h Hash) { nodes[id] = h }
	for c := done; c < blocks; c += syncChunk {
		end := min(c+syncChunk, blocks)
		leaves, err := l.st.LeafHashes(ctx, c<<CacheLevel, end<<CacheLevel)
		if err != nil {
			return err
		}
		for i := uint64(0); i < end-c; i++ {
			b.Append(RootOf(leaves[i<<CacheLevel : (i+1)<<CacheLevel]))
		}
		if err := l.st.SaveSubtrees(ctx, nodes); err != nil {
			return err
		}
		clear(nodes)
	}
	return nil
}

// resolve adds to got the hash of every node in ids: from the cache, or
// from its children when the cache lacks it, or from the leaves below the
// cache level.
func (l *Log) resolve(ctx context.Context, ids []NodeID, got map[NodeID]Hash) error {
	var cached, low []NodeID
	for _, id := range ids {
		if _, ok := got[id]; ok {
			continue
		}
		if id.Level >= CacheLevel {
			cached = append(cached, id)
		} else {
			low = append(low, id)
		}
	}
	slices.SortFunc(cached, cmpNode)
	cached = slices.Compact(cached)
	if len(cached) > 0 {
		found, err := l.st.Subtrees(ctx, cached)
		if err != nil {
			return err
		}
		var children, composite []NodeID
		for _, id := range cached {
			switch h, ok := found[id]; {
			case ok:
				got[id] = h
			case id.Level == CacheLevel:
				low = append(low, id)
			default:
				a, b := id.children()
				children = append(children, a, b)
				composite = append(composite, id)
			}
		}
		if len(children) > 0 {
			if err := l.resolve(ctx, children, got); err != nil {
				return err
			}
			for _, id := range composite {
				a, b := id.children()
				got[id] = NodeHash(got[a], got[b])
			}
		}
	}
	// Nodes below the cache: read their leaves, nearby ranges at once (the
	// siblings of a leaf's path surround the leaf itself).
	slices.SortFunc(low, func(a, b NodeID) int { return cmp.Compare(a.Start(), b.Start()) })
	for i := 0; i < len(low); {
		a, b := low[i].Start(), low[i].End()
		j := i + 1
		for ; j < len(low) && low[j].Start() <= b+1<<CacheLevel; j++ {
			b = max(b, low[j].End())
		}
		leaves, err := l.st.LeafHashes(ctx, a, b)
		if err != nil {
			return err
		}
		for _, id := range low[i:j] {
			got[id] = RootOf(leaves[id.Start()-a : id.End()-a])
		}
		i = j
	}
	return nil
}

func cmpNode(a, b NodeID) int {
	return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.Index, b.Index))
}

// spanHashes returns the hash of each span, from memory when memo allows.
func (l *Log) spanHashes(ctx context.Context, spans []span, memo bool) ([]Hash, error) {
	parts := make([][]NodeID, len(spans))
	var ids []NodeID
	for i, s := range spans {
		parts[i] = decompose(s.a, s.b)
		ids = append(ids, parts[i]...)
	}
	got := make(map[NodeID]Hash, len(ids))
	if memo {
		l.mem.get(ids, got)
	}
	if err := l.resolve(ctx, ids, got); err != nil {
		return nil, err
	}
	if memo {
		l.mem.put(got)
	}
	out := make([]Hash, len(spans))
	hs := make([]Hash, 0, 64)
	for i, p := range parts {
		hs = hs[:0]
		for _, id := range p {
			hs = append(hs, got[id])
		}
		out[i] = fold(hs)
	}
	return out, nil
}

// Root is the Merkle Tree Hash of the first size events.
func (l *Log) Root(ctx context.Context, size uint64) (Hash, error) { return l.root(ctx, size, true) }

func (l *Log) root(ctx context.Context, size uint64, memo bool) (Hash, error) {
	if size == 0 {
		return EmptyRoot, nil
	}
	hs, err := l.spanHashes(ctx, []span{{0, size}}, memo)
	if err != nil {
		return Hash{}, err
	}
	return hs[0], nil
}

// InclusionProof is the proof that event index is in the tree of size
// (RFC 9162 §2.1.3.1), the leaf's sibling first.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([]Hash, error) {
	if index >= size {
		return nil, ErrProofArgs
	}
	return l.spanHashes(ctx, inclusionSpans(index, size), true)
}

// ConsistencyProof is the proof that the tree of size m is a prefix of the
// tree of size n (RFC 9162 §2.1.4.1); empty when m is 0 or m == n.
func (l *Log) ConsistencyProof(ctx context.Context, m, n uint64) ([]Hash, error) {
	return l.consistencyProof(ctx, m, n, true)
}

func (l *Log) consistencyProof(ctx context.Context, m, n uint64, memo bool) ([]Hash, error) {
	switch {
	case m > n:
		return nil, ErrProofArgs
	case m == 0 || m == n:
		return []Hash{}, nil
	}
	return l.spanHashes(ctx, consistencySpans(m, n), memo)
}

// ErrInconsistent is the error of SignTreeHead when the log no longer
// extends its latest signed head: someone changed or removed events.
var ErrInconsistent = errors.New("audit: the log is not consistent with its latest signed tree head")

// SignTreeHead signs a head for every event appended so far and stores it,
// unless the latest head already covers them (then that head is returned).
// Before signing it checks, with a consistency proof, that the new tree
// extends the latest signed one, and refuses (ErrInconsistent) if not: the
// key never signs a rewritten history.
func (l *Log) SignTreeHead(ctx context.Context) (*TreeHead, error) {
	if l.signer == nil {
		return nil, errors.New("audit: this log has no signing key")
	}
	// The latest head first, then the size: another instance may append
	// and sign between the two reads, and a size read first could then be
	// smaller than that head (a false alarm). Read in this order, the size
	// covers at least every head already stored.
	prev, err := l.st.LatestTreeHead(ctx)
	if err != nil && !errors.Is(err, sqin.ErrNotFound) {
		return nil, err
	}
	size, err2 := l.st.AuditSize(ctx)
	if err2 != nil {
		return nil, err2
	}
	switch {
	case errors.Is(err, sqin.ErrNotFound):
		prev = nil
	case err != nil:
		return nil, err
	case prev.TreeSize == size:
		return prev, nil
	case prev.TreeSize > size:
		return nil, fmt.Errorf("%w: the head of size %d is larger than the log (%d events)", ErrInconsistent, prev.TreeSize, size)
	}
	if err := l.Sync(ctx, size); err != nil {
		return nil, err
	}
	// The signer reads storage, never this process's memory of it: what it
	// checks is what the database holds now.
	root, err := l.root(ctx, size, false)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		// A head that claims this key but does not verify was forged in the
		// database: extending it would lend it the key's word. (A head of
		// another key, from before a change of key, is only checked for
		// consistency.)
		if id, err := KeyID(l.signer.Public()); err == nil && id == prev.KeyID {
			if err := prev.Verify(l.signer.Public()); err != nil {
				return nil, fmt.Errorf("%w: the head of size %d claims this key but does not verify", ErrInconsistent, prev.TreeSize)
			}
		}
		proof, err := l.consistencyProof(ctx, prev.TreeSize, size, false)
		if err != nil {
			return nil, err
		}
		if err := VerifyConsistency(prev.TreeSize, size, prev.RootHash, root, proof); err != nil {
			return nil, fmt.Errorf("%w (size %d to %d): %v", ErrInconsistent, prev.TreeSize, size, err)
		}
	}
	th := &TreeHead{TreeSize: size, Timestamp: l.now().UnixMilli(), RootHash: root}
	if err := th.Sign(l.signer); err != nil {
		return nil, err
	}
	if err := l.st.SaveTreeHead(ctx, th); err != nil {
		return nil, err
	}
	return th, nil
}

// Proof is an event with what proves it is in the log: its inclusion
// proof in the tree of the signed head.
type Proof struct {
	Record   *Record   `json:"event"`
	TreeHead *TreeHead `json:"tree_head"`
	Hashes   []Hash    `json:"inclusion_proof"`
}

// Prove returns event id, the latest signed head and the inclusion proof
// between them; sqin.ErrNotFound when the event is missing or not yet
// covered by a signed head.
func (l *Log) Prove(ctx context.Context, id uint64) (*Proof, error) {
	th, err := l.st.LatestTreeHead(ctx)
	if err != nil {
		return nil, err
	}
	if id >= th.TreeSize {
		return nil, sqin.ErrNotFound
	}
	rs, err := l.st.Events(ctx, id, id+1)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, sqin.ErrNotFound
	}
	hs, err := l.InclusionProof(ctx, id, th.TreeSize)
	if err != nil {
		return nil, err
	}
	return &Proof{Record: rs[0], TreeHead: th, Hashes: hs}, nil
}
