// Package rfc9162 is an independent, naive reading of RFC 9162 §2.1 (the
// Merkle tree of Certificate Transparency 2.0) for tests: the recursive
// definitions of §2.1.1 (MTH), §2.1.3.1 (PATH) and §2.1.4.1 (PROOF,
// SUBPROOF) written out as they read, and the verification algorithms of
// §2.1.3.2 and §2.1.4.2 step by step. It shares no code with
// internal/audit, whose tree, proofs and verifiers tests check against it.
// It is slow (MTH recomputes every subtree) and meant for small trees.
package rfc9162

import "crypto/sha256"

// Leaf is the leaf hash of an entry: HASH(0x00 || entry).
func Leaf(entry []byte) [32]byte { return sha256.Sum256(append([]byte{0}, entry...)) }

// Node is HASH(0x01 || l || r).
func Node(l, r [32]byte) [32]byte {
	b := append([]byte{1}, l[:]...)
	return sha256.Sum256(append(b, r[:]...))
}

// split is the largest power of two smaller than n (n > 1).
func split(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

// MTH: MTH({}) = SHA-256(); MTH({d0}) = leaf; MTH(D[n]) =
// SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])). Here over leaf hashes.
func MTH(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := split(len(leaves))
	return Node(MTH(leaves[:k]), MTH(leaves[k:]))
}

// Path: PATH(m, {d0}) = {}; PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
// for m < k, PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise.
func Path(m int, leaves [][32]byte) [][32]byte {
	if len(leaves) <= 1 {
		return nil
	}
	k := split(len(leaves))
	if m < k {
		return append(Path(m, leaves[:k]), MTH(leaves[k:]))
	}
	return append(Path(m-k, leaves[k:]), MTH(leaves[:k]))
}

// Subproof follows SUBPROOF(m, D[n], b).
func Subproof(m int, leaves [][32]byte, b bool) [][32]byte {
	n := len(leaves)
	if m == n {
		if b {
			return nil
		}
		return [][32]byte{MTH(leaves)}
	}
	k := split(n)
	if m <= k {
		return append(Subproof(m, leaves[:k], b), MTH(leaves[k:]))
	}
	return append(Subproof(m-k, leaves[k:], false), MTH(leaves[:k]))
}

// VerifyInclusion is RFC 9162 §2.1.3.2, step by step.
func VerifyInclusion(leafIndex, treeSize uint64, hash [32]byte, path [][32]byte, root [32]byte) bool {
	// 1. leaf_index >= tree_size fails.
	if leafIndex >= treeSize {
		return false
	}
	// 2. fn = leaf_index, sn = tree_size - 1. 3. r = hash.
	fn, sn, r := leafIndex, treeSize-1, hash
	// 4. For each p in inclusion_path:
	for _, p := range path {
		// a. sn == 0: stop and fail.
		if sn == 0 {
			return false
		}
		// b. LSB(fn) set or fn == sn:
		if fn&1 == 1 || fn == sn {
			// i. r = HASH(0x01 || p || r)
			r = Node(p, r)
			// ii. if LSB(fn) not set, right-shift fn and sn until LSB(fn) set or fn == 0.
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			// otherwise r = HASH(0x01 || r || p)
			r = Node(r, p)
		}
		// c. right-shift fn and sn once.
		fn >>= 1
		sn >>= 1
	}
	// 5. sn == 0 and r == root_hash.
	return sn == 0 && r == root
}

// VerifyConsistency is RFC 9162 §2.1.4.2, step by step (for
// 0 < first < second; the RFC handles the other cases before it).
func VerifyConsistency(first, second uint64, firstHash, secondHash [32]byte, path [][32]byte) bool {
	// 1. An empty consistency_path fails.
	if len(path) == 0 {
		return false
	}
	// 2. first an exact power of 2: prepend first_hash.
	if first&(first-1) == 0 {
		path = append([][32]byte{firstHash}, path...)
	}
	// 3. fn = first - 1, sn = second - 1.
	fn, sn := first-1, second-1
	// 4. LSB(fn) set: right-shift fn and sn until LSB(fn) not set.
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	// 5. fr = sr = first value of the path.
	fr, sr := path[0], path[0]
	// 6. For each subsequent c:
	for _, c := range path[1:] {
		// a. sn == 0: fail.
		if sn == 0 {
			return false
		}
		// b. LSB(fn) set or fn == sn:
		if fn&1 == 1 || fn == sn {
			fr = Node(c, fr)
			sr = Node(c, sr)
			// iii. if LSB(fn) not set, right-shift until LSB(fn) set or fn == 0.
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = Node(sr, c)
		}
		// c. right-shift once.
		fn >>= 1
		sn >>= 1
	}
	// 7. fr == first_hash, sr == second_hash, sn == 0.
	return fr == firstHash && sr == secondHash && sn == 0
}
