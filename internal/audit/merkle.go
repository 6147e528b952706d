package audit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// Hash is a SHA-256 value: a leaf, a node or a root of the Merkle tree.
type Hash [sha256.Size]byte

// String is h in hexadecimal.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes h in standard base64, as Certificate Transparency's
// JSON APIs do.
func (h Hash) MarshalText() ([]byte, error) {
	return []byte(base64.StdEncoding.EncodeToString(h[:])), nil
}

// UnmarshalText decodes standard base64.
func (h *Hash) UnmarshalText(b []byte) error {
	var d [sha256.Size + 3]byte
	n, err := base64.StdEncoding.Decode(d[:], b)
	if err != nil || n != sha256.Size {
		return fmt.Errorf("audit: hash must be %d bytes in base64", sha256.Size)
	}
	copy(h[:], d[:n])
	return nil
}

// HashFromBytes converts a stored hash.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != len(h) {
		return h, fmt.Errorf("audit: hash of %d bytes", len(b))
	}
	copy(h[:], b)
	return h, nil
}

// EmptyRoot is the root of the empty tree: SHA-256 of nothing.
var EmptyRoot = Hash(sha256.Sum256(nil))

// LeafHash is SHA-256(0x00 || entry) (RFC 9162 §2.1.1).
func LeafHash(entry []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash is SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var b [1 + 2*sha256.Size]byte
	b[0] = 1
	copy(b[1:], left[:])
	copy(b[1+sha256.Size:], right[:])
	return sha256.Sum256(b[:])
}

// RootOf is the Merkle Tree Hash of the leaf hashes, in O(n) time and
// O(log n) space.
func RootOf(leaves []Hash) Hash {
	var b Builder
	for _, l := range leaves {
		b.Append(l)
	}
	return b.Root()
}

// NodeID names a complete subtree: the 2^Level leaves from Index<<Level.
// Level 0 is a leaf.
type NodeID struct {
	Level uint8
	Index uint64
}

// Start and End delimit the node's leaves, [Start, End).
func (n NodeID) Start() uint64 { return n.Index << n.Level }
func (n NodeID) End() uint64   { return (n.Index + 1) << n.Level }

func (n NodeID) children() (NodeID, NodeID) {
	return NodeID{n.Level - 1, 2 * n.Index}, NodeID{n.Level - 1, 2*n.Index + 1}
}

// Builder computes roots while leaves arrive: it keeps the complete
// subtrees that the leaves so far make (at most one per level) and, when
// Emit is set, reports every complete subtree as it is finished.
type Builder struct {
	size  uint64 // units appended
	level uint8  // level of one unit (0: leaves)
	stack []Hash // complete subtrees, largest (leftmost) first
	// Emit, when set, receives every unit and every node completed above.
	Emit func(NodeID, Hash)
}

// newBuilder resumes at size units of the given level from the complete
// subtrees that make up those units, largest first (see decompose).
func newBuilder(level uint8, size uint64, stack []Hash) *Builder {
	return &Builder{size: size, level: level, stack: stack}
}

// Size is the number of units (leaves for a Builder's zero value) appended.
func (b *Builder) Size() uint64 { return b.size }

// Append adds the next unit.
func (b *Builder) Append(h Hash) {
	if b.Emit != nil {
		b.Emit(NodeID{b.level, b.size}, h)
	}
	b.stack = append(b.stack, h)
	lvl := b.level
	for s := b.size; s&1 == 1; s >>= 1 {
		lvl++
		n := len(b.stack)
		p := NodeHash(b.stack[n-2], b.stack[n-1])
		b.stack = append(b.stack[:n-2], p)
		if b.Emit != nil {
			b.Emit(NodeID{lvl, s >> 1}, p)
		}
	}
	b.size++
}

// Root is the Merkle Tree Hash of everything appended.
func (b *Builder) Root() Hash {
	if len(b.stack) == 0 {
		return EmptyRoot
	}
	r := b.stack[len(b.stack)-1]
	for i := len(b.stack) - 2; i >= 0; i-- {
		r = NodeHash(b.stack[i], r)
	}
	return r
}

// decompose splits the leaves [a, b) of a subtree of the RFC 9162 tree
// (a range the recursion MTH(D[a:b]) visits, so that a is a multiple of a
// power of two at least b-a) into complete subtrees, largest first. The
// range's hash is the right fold of theirs: H(n1, H(n2, … nk)).
func decompose(a, b uint64) []NodeID {
	var out []NodeID
	for a < b {
		lvl := uint8(bits.Len64(b-a) - 1) // largest power of two <= b-a
		out = append(out, NodeID{lvl, a >> lvl})
		a += 1 << lvl
	}
	return out
}

// fold is the hash of a range from the hashes of its decomposition.
func fold(hs []Hash) Hash {
	r := hs[len(hs)-1]
	for i := len(hs) - 2; i >= 0; i-- {
		r = NodeHash(hs[i], r)
	}
	return r
}

// span is the range of leaves [a, b).
type span struct{ a, b uint64 }

// split is k, the largest power of two smaller than n (n > 1).
func split(n uint64) uint64 { return 1 << (bits.Len64(n-1) - 1) }

// inclusionSpans lists the subtrees whose hashes make the inclusion proof
// of leaf m in the tree of size n, in proof order (RFC 9162 §2.1.3.1:
// PATH(m, D[n]), the leaf's sibling first).
func inclusionSpans(m, n uint64) []span {
	var top []span // root first
	a, b := uint64(0), n
	for b-a > 1 {
		k := split(b - a)
		if m < a+k {
			top = append(top, span{a + k, b})
			b = a + k
		} else {
			top = append(top, span{a, a + k})
			a += k
		}
	}
	for i, j := 0, len(top)-1; i < j; i, j = i+1, j-1 {
		top[i], top[j] = top[j], top[i]
	}
	return top
}

// consistencySpans lists the subtrees whose hashes make the consistency
// proof between sizes m and n, 0 < m < n, in proof order (RFC 9162
// §2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true)).
func consistencySpans(m, n uint64) []span {
	var top []span // outermost first
	a, b, whole := uint64(0), n, true
	for m != b {
		k := split(b - a)
		if m <= a+k {
			top = append(top, span{a + k, b})
			b = a + k
		} else {
			top = append(top, span{a, a + k})
			a, whole = a+k, false
		}
	}
	if !whole {
		top = append(top, span{a, b})
	}
	for i, j := 0, len(top)-1; i < j; i, j = i+1, j-1 {
		top[i], top[j] = top[j], top[i]
	}
	return top
}

// Proof errors.
var (
	ErrProofSize = errors.New("audit: proof has the wrong number of hashes")
	ErrProofRoot = errors.New("audit: proof does not lead to the root")
	ErrProofArgs = errors.New("audit: proof asked for impossible indexes or sizes")
)

// VerifyInclusion checks that leaf is at index in the tree of size whose
// root is root (RFC 9162 §2.1.3.2).
func VerifyInclusion(leaf Hash, index, size uint64, proof []Hash, root Hash) error {
	if index >= size {
		return ErrProofArgs
	}
	r, err := rootFromInclusion(leaf, index, size, proof)
	if err != nil {
		return err
	}
	if r != root {
		return ErrProofRoot
	}
	return nil
}

func rootFromInclusion(leaf Hash, index, size uint64, proof []Hash) (Hash, error) {
	spans := inclusionSpans(index, size)
	if len(proof) != len(spans) {
		return Hash{}, ErrProofSize
	}
	r := leaf
	for i, s := range spans {
		if s.a > index {
			r = NodeHash(r, proof[i])
		} else {
			r = NodeHash(proof[i], r)
		}
	}
	return r, nil
}

// VerifyConsistency checks that the tree of size m with root rootM is a
// prefix of the tree of size n with root rootN (RFC 9162 §2.1.4.2).
// Equal sizes need an empty proof and equal roots; size 0 is a prefix of
// everything.
func VerifyConsistency(m, n uint64, rootM, rootN Hash, proof []Hash) error {
	switch {
	case m > n:
		return ErrProofArgs
	case m == n:
		if len(proof) != 0 {
			return ErrProofSize
		}
		if rootM != rootN {
			return ErrProofRoot
		}
		return nil
	case m == 0:
		if len(proof) != 0 {
			return ErrProofSize
		}
		return nil
	}
	spans := consistencySpans(m, n)
	if len(proof) != len(spans) {
		return ErrProofSize
	}
	// Walk up from the old tree's rightmost subtree: the proof's first hash,
	// or, when m is a power of two (the old tree is a subtree of the new),
	// the old root itself, which the proof leaves out. Siblings on the left
	// belong to both trees, those on the right only to the new one.
	oldR, newR, cur, rest := rootM, rootM, span{0, m}, spans
	if m&(m-1) != 0 {
		oldR, newR, cur, rest = proof[0], proof[0], spans[0], spans[1:]
		proof = proof[1:]
	}
	for i, s := range rest {
		if s.b <= cur.a {
			oldR = NodeHash(proof[i], oldR)
			newR = NodeHash(proof[i], newR)
			cur.a = s.a
		} else {
			newR = NodeHash(newR, proof[i])
			cur.b = s.b
		}
	}
	if oldR != rootM || newR != rootN || cur != (span{0, n}) {
		return ErrProofRoot
	}
	return nil
}
