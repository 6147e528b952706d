package audit

import (
	"cmp"
	"context"
	"crypto"
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// Kinds of findings.
const (
	// FindAltered: the event's fields no longer hash to the leaf hash
	// stored when it was appended (a field was edited, or the stored
	// hash was).
	FindAltered = "altered"
	// FindMoved: the event holds what was appended at another position
	// (events reordered, or renumbered around an insertion or deletion).
	FindMoved = "moved"
	// FindInvalid: the event's fields do not form a valid event (edited
	// outside the store).
	FindInvalid = "invalid"
	// FindMissing: events absent from the sequence (deleted).
	FindMissing = "missing"
	// FindExtra: an event numbered at or beyond the log size (inserted
	// behind the store's back, or the size was lowered).
	FindExtra = "extra"
	// FindTruncated: a tree head covers events the log no longer has.
	FindTruncated = "truncated"
	// FindSignature: a tree head's signature does not verify.
	FindSignature = "tree_head_signature"
	// FindRoot: the root of the stored leaf hashes at a tree head's size
	// is not the head's: events it covers were changed, with their leaf
	// hashes, after it was signed (Event and Events bound where).
	FindRoot = "tree_head_root"
	// FindSubtree: a cached subtree hash does not match the leaves below
	// it (Event and Events name them): the leaves or the cache changed.
	FindSubtree = "subtree"
)

// Finding is one thing wrong with the log.
type Finding struct {
	Kind     string `json:"kind"`
	Event    uint64 `json:"event"`               // first event concerned
	Events   uint64 `json:"events"`              // how many events from Event (0: none in particular)
	TreeSize uint64 `json:"tree_size,omitempty"` // the tree head concerned, if any
	External bool   `json:"external,omitempty"`  // that head was given from outside the store
	Message  string `json:"message"`
}

func (f Finding) String() string {
	msg := f.Message
	if f.External {
		msg += " (tree head given from outside)"
	}
	switch {
	case f.Events == 1:
		return fmt.Sprintf("%s: event %d: %s", f.Kind, f.Event, msg)
	case f.Events > 1:
		return fmt.Sprintf("%s: events %d to %d: %s", f.Kind, f.Event, f.Event+f.Events-1, msg)
	}
	return fmt.Sprintf("%s: %s", f.Kind, msg)
}

// Report is the result of Verify.
type Report struct {
	Size              uint64    `json:"size"`       // events the store counts
	Events            uint64    `json:"events"`     // events read
	Redacted          uint64    `json:"redacted"`   // of which redacted (checked through what they keep and their personal digest)
	Root              *Hash     `json:"root"`       // root at Size, when every event is there
	TreeHeads         int       `json:"tree_heads"` // heads whose root was checked
	SignaturesChecked bool      `json:"signatures_checked"`
	Findings          []Finding `json:"findings"`
	MoreFindings      int       `json:"more_findings,omitempty"` // left out beyond the limit
}

// OK reports whether nothing was found wrong.
func (r *Report) OK() bool { return len(r.Findings) == 0 && r.MoreFindings == 0 }

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// PublicKeys verify the tree heads' signatures (one must match each
	// head's key ID). Without any, signatures are not checked.
	PublicKeys []crypto.PublicKey
	// External are tree heads kept outside the store (published, given to
	// an auditor): each must verify and match the log at its size.
	External []*TreeHead
	// Workers read and hash in parallel (default GOMAXPROCS); Chunk is how
	// many events one read fetches (default 16384).
	Workers, Chunk int
	// MaxFindings bounds the report (default 1000).
	MaxFindings int
}

// checkpoint is a tree head to check during the pass.
type checkpoint struct {
	th       *TreeHead
	external bool
}

// Verify recomputes the log from storage: every event's leaf hash from its
// fields, the sequence, every cached subtree, and the root at the size of
// every stored and external tree head, whose signatures it checks. It reads
// the log once, in parallel. An error means it could not read the log; what
// it found wrong is in the report.
func Verify(ctx context.Context, st Storage, opt VerifyOptions) (*Report, error) {
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Chunk <= 0 {
		opt.Chunk = 16384
	}
	if opt.MaxFindings <= 0 {
		opt.MaxFindings = 1000
	}
	size, err := st.AuditSize(ctx)
	if err != nil {
		return nil, err
	}
	end, err := st.AuditEnd(ctx)
	if err != nil {
		return nil, err
	}
	heads, err := st.TreeHeads(ctx)
	if err != nil {
		return nil, err
	}
	v := &verifier{rep: &Report{Size: size, SignaturesChecked: len(opt.PublicKeys) > 0}, opt: opt, size: size}
	var cps []checkpoint
	for _, th := range heads {
		cps = append(cps, checkpoint{th, false})
	}
	for _, th := range opt.External {
		cps = append(cps, checkpoint{th, true})
	}
	slices.SortStableFunc(cps, func(a, b checkpoint) int { return cmp.Compare(a.th.TreeSize, b.th.TreeSize) })
	for _, cp := range cps {
		v.checkSignature(cp)
		if cp.th.TreeSize > size {
			v.add(Finding{Kind: FindTruncated, Event: size, Events: cp.th.TreeSize - size, TreeSize: cp.th.TreeSize,
				External: cp.external, Message: fmt.Sprintf("the tree head of size %d covers events the log (size %d) no longer has",
					cp.th.TreeSize, size)})
		}
	}
	v.cps = cps

	if err := v.pass(ctx, st, end); err != nil {
		return nil, err
	}
	v.finish()
	return v.rep, nil
}

type verifier struct {
	rep  *Report
	opt  VerifyOptions
	size uint64
	cps  []checkpoint
	next int // next checkpoint to reach

	expect  uint64 // next ID in sequence
	broken  bool   // a gap: roots past it cannot be computed
	b       Builder
	lastOK  uint64 // size of the last head whose root matched
	altered []*Record
	nodes   []NodeID // nodes completed at the cache's levels, to compare with the cache
	hashes  map[NodeID]Hash
	badEnd  uint64 // end of the last subtree reported as differing from the cache
}

func (v *verifier) add(f Finding) {
	if len(v.rep.Findings) >= v.opt.MaxFindings {
		v.rep.MoreFindings++
		return
	}
	v.rep.Findings = append(v.rep.Findings, f)
}

func (v *verifier) checkSignature(cp checkpoint) {
	if len(v.opt.PublicKeys) == 0 {
		return
	}
	var err error = ErrSignature
	for _, k := range v.opt.PublicKeys {
		id, kerr := KeyID(k)
		if kerr == nil && id == cp.th.KeyID {
			err = cp.th.Verify(k)
			break
		}
	}
	if err != nil {
		v.add(Finding{Kind: FindSignature, TreeSize: cp.th.TreeSize, External: cp.external,
			Message: fmt.Sprintf("the tree head of size %d (key %q) does not verify with the audit keys given", cp.th.TreeSize, cp.th.KeyID)})
	}
}

// chunk is what a worker makes of one range of IDs.
type chunk struct {
	recs []*Record // present events, by ID (fields dropped once checked)
	bad  []*Record // events whose fields do not hash to their stored leaf
	err  error
}

// pass reads the events: [0, min(size, end)) in chunks, in parallel,
// consumed in order; then those numbered from size on (extra) in one read;
// [end, size) holds none, so it is reported missing without reading.
func (v *verifier) pass(ctx context.Context, st Storage, end uint64) error {
	v.hashes = map[NodeID]Hash{}
	v.b.Emit = func(id NodeID, h Hash) {
		if id.Level >= CacheLevel {
			v.nodes = append(v.nodes, id)
			v.hashes[id] = h
		}
	}
	if err := v.chunks(ctx, st, min(v.size, end)); err != nil {
		return err
	}
	if end > v.size {
		c := readChunk(ctx, st, v.size, end)
		if c.err != nil {
			return c.err
		}
		v.consume(c)
	}
	if v.expect < v.size {
		v.gap(v.expect, v.size)
	}
	v.reach(v.size)
	return nil
}

// chunks reads [0, end) with the workers, at most 2×Workers chunks ahead
// of the one consumed.
func (v *verifier) chunks(ctx context.Context, st Storage, end uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i int
		c chunk
	}
	step := uint64(v.opt.Chunk)
	n := int((end + step - 1) / step)
	jobs := make(chan int)
	results := make(chan result, 2*v.opt.Workers)
	window := make(chan struct{}, 2*v.opt.Workers)
	var wg sync.WaitGroup
	for range v.opt.Workers {
		wg.Go(func() {
			for i := range jobs {
				results <- result{i, readChunk(ctx, st, uint64(i)*step, min(uint64(i+1)*step, end))}
			}
		})
	}
	go func() {
		defer close(jobs)
		for i := range n {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()
	ahead := map[int]chunk{}
	for i := 0; i < n; {
		c, ok := ahead[i]
		if !ok {
			select {
			case r := <-results:
				ahead[r.i] = r.c
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		delete(ahead, i)
		i++
		<-window
		if c.err != nil {
			return c.err
		}
		v.consume(c)
		if err := v.compareCache(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

func readChunk(ctx context.Context, st Storage, from, to uint64) chunk {
	recs, err := st.Events(ctx, from, to)
	if err != nil {
		return chunk{err: err}
	}
	var c chunk
	c.recs = recs
	for _, r := range recs {
		if h, err := r.Leaf(); err != nil || h != r.LeafHash {
			c.bad = append(c.bad, r)
		}
	}
	return c
}

// consume takes one chunk's events in order.
func (v *verifier) consume(c chunk) {
	bad := map[uint64]bool{}
	for _, r := range c.bad {
		bad[r.ID] = true
		if len(v.altered) < 4*v.opt.MaxFindings {
			v.altered = append(v.altered, r)
		} else {
			v.add(Finding{Kind: FindAltered, Event: r.ID, Events: 1, Message: "its fields do not hash to its stored leaf hash"})
		}
	}
	for _, r := range c.recs {
		v.rep.Events++
		if r.ID >= v.size {
			v.add(Finding{Kind: FindExtra, Event: r.ID, Events: 1,
				Message: fmt.Sprintf("event beyond the log size %d: inserted, or the size was lowered", v.size)})
			continue
		}
		if r.Redacted {
			v.rep.Redacted++
		}
		if r.ID != v.expect {
			v.gap(v.expect, r.ID)
		}
		v.reach(r.ID)
		if !v.broken {
			v.b.Append(r.LeafHash)
		}
		v.expect = r.ID + 1
		if !bad[r.ID] {
			// Keep what the merkle pass needs only.
			*r = Record{Event: Event{ID: r.ID}, LeafHash: r.LeafHash, Redacted: r.Redacted}
		}
	}
}

// gap records events [a, b) missing.
func (v *verifier) gap(a, b uint64) {
	v.add(Finding{Kind: FindMissing, Event: a, Events: b - a, Message: fmt.Sprintf("%d events missing (deleted)", b-a)})
	v.broken = true
}

// reach checks every checkpoint of size at most n not yet checked, the
// builder holding exactly the leaves before n when it is not broken.
func (v *verifier) reach(n uint64) {
	for v.next < len(v.cps) && v.cps[v.next].th.TreeSize <= n {
		cp := v.cps[v.next]
		v.next++
		if cp.th.TreeSize > v.size || v.broken {
			continue // reported as truncated, or as missing events
		}
		v.rep.TreeHeads++
		if v.b.Root() == cp.th.RootHash {
			v.lastOK = cp.th.TreeSize
			continue
		}
		v.add(Finding{Kind: FindRoot, Event: v.lastOK, Events: cp.th.TreeSize - v.lastOK, TreeSize: cp.th.TreeSize,
			External: cp.external, Message: fmt.Sprintf("the stored leaf hashes do not give the root the tree head of size %d signed; "+
				"what changed is among these events (after the last head that matches)", cp.th.TreeSize)})
	}
}

// compareCache checks the cached subtrees completed so far.
func (v *verifier) compareCache(ctx context.Context, st Storage) error {
	if v.broken || len(v.nodes) == 0 {
		v.nodes = v.nodes[:0]
		clear(v.hashes)
		return nil
	}
	cached, err := st.Subtrees(ctx, v.nodes)
	if err != nil {
		return err
	}
	// Nodes come bottom-up, left to right (Builder's order), so the lowest
	// differing node is seen first; the nodes above it, which differ
	// because of it, are not reported again.
	for _, id := range v.nodes {
		h, ok := cached[id]
		if !ok || h == v.hashes[id] || id.Start() < v.badEnd {
			continue
		}
		v.badEnd = id.End()
		v.add(Finding{Kind: FindSubtree, Event: id.Start(), Events: id.End() - id.Start(),
			Message: "the cached hash of these events' subtree does not match their stored leaf hashes: a leaf hash or the cache was changed"})
	}
	v.nodes = v.nodes[:0]
	clear(v.hashes)
	return nil
}

// finish explains the events whose fields do not match their leaf hash.
func (v *verifier) finish() {
	if !v.broken && v.expect >= v.size {
		r := v.b.Root()
		v.rep.Root = &r
	}
	others := map[uint64]bool{}
	if len(v.altered) <= 256 {
		for _, r := range v.altered {
			others[r.ID] = true
		}
	}
	for _, r := range v.altered {
		if _, err := r.Leaf(); err != nil {
			v.add(Finding{Kind: FindInvalid, Event: r.ID, Events: 1, Message: err.Error()})
			continue
		}
		if from, ok := movedFrom(r, others); ok {
			v.add(Finding{Kind: FindMoved, Event: r.ID, Events: 1,
				Message: fmt.Sprintf("holds the event appended as number %d (reordered, or renumbered around an insertion or deletion)", from)})
			continue
		}
		v.add(Finding{Kind: FindAltered, Event: r.ID, Events: 1,
			Message: "its fields do not hash to the leaf hash stored when it was appended (a field or the hash was edited)"})
	}
	slices.SortStableFunc(v.rep.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Event, b.Event), cmp.Compare(a.TreeSize, b.TreeSize))
	})
}

// movedFrom looks for the position r's fields were appended at: near its
// own, or among the other altered events.
func movedFrom(r *Record, others map[uint64]bool) (uint64, bool) {
	c := *r
	try := func(id uint64) bool {
		c.ID = id
		h, err := c.Leaf()
		return err == nil && h == r.LeafHash
	}
	for d := uint64(1); d <= 3; d++ {
		if r.ID >= d && try(r.ID-d) {
			return r.ID - d, true
		}
		if try(r.ID + d) {
			return r.ID + d, true
		}
	}
	for id := range others {
		if id != r.ID && try(id) {
			return id, true
		}
	}
	return 0, false
}
