package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
)

// This file checks the tree against an independent reading of RFC 9162:
// the recursive definitions of §2.1.1 (MTH), §2.1.3.1 (PATH) and §2.1.4.1
// (PROOF, SUBPROOF) written out naively, and the verification algorithms of
// §2.1.3.2 and §2.1.4.2 written step by step. None of it calls the code
// under test.

func refNode(l, r [32]byte) [32]byte {
	b := append([]byte{1}, l[:]...)
	return sha256.Sum256(append(b, r[:]...))
}

// refK is the largest power of two smaller than n (n > 1).
func refK(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

// refMTH: MTH({}) = SHA-256(); MTH({d0}) = leaf; MTH(D[n]) =
// SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])). Here over leaf hashes.
func refMTH(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := refK(len(leaves))
	return refNode(refMTH(leaves[:k]), refMTH(leaves[k:]))
}

// refPath: PATH(m, {d0}) = {}; PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
// for m < k, PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise.
func refPath(m int, leaves [][32]byte) [][32]byte {
	if len(leaves) <= 1 {
		return nil
	}
	k := refK(len(leaves))
	if m < k {
		return append(refPath(m, leaves[:k]), refMTH(leaves[k:]))
	}
	return append(refPath(m-k, leaves[k:]), refMTH(leaves[:k]))
}

// refSubproof follows SUBPROOF(m, D[n], b).
func refSubproof(m int, leaves [][32]byte, b bool) [][32]byte {
	n := len(leaves)
	if m == n {
		if b {
			return nil
		}
		return [][32]byte{refMTH(leaves)}
	}
	k := refK(n)
	if m <= k {
		return append(refSubproof(m, leaves[:k], b), refMTH(leaves[k:]))
	}
	return append(refSubproof(m-k, leaves[k:], false), refMTH(leaves[:k]))
}

// refVerifyInclusion is RFC 9162 §2.1.3.2, step by step.
func refVerifyInclusion(leafIndex, treeSize uint64, hash [32]byte, path [][32]byte, root [32]byte) bool {
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
			r = refNode(p, r)
			// ii. if LSB(fn) not set, right-shift fn and sn until LSB(fn) set or fn == 0.
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			// otherwise r = HASH(0x01 || r || p)
			r = refNode(r, p)
		}
		// c. right-shift fn and sn once.
		fn >>= 1
		sn >>= 1
	}
	// 5. sn == 0 and r == root_hash.
	return sn == 0 && r == root
}

// refVerifyConsistency is RFC 9162 §2.1.4.2, step by step (for
// 0 < first < second; the RFC handles the other cases before it).
func refVerifyConsistency(first, second uint64, firstHash, secondHash [32]byte, path [][32]byte) bool {
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
			fr = refNode(c, fr)
			sr = refNode(c, sr)
			// iii. if LSB(fn) not set, right-shift until LSB(fn) set or fn == 0.
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = refNode(sr, c)
		}
		// c. right-shift once.
		fn >>= 1
		sn >>= 1
	}
	// 7. fr == first_hash, sr == second_hash, sn == 0.
	return fr == firstHash && sr == secondHash && sn == 0
}

func toRef(hs []audit.Hash) [][32]byte {
	out := make([][32]byte, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

// The test vectors of Certificate Transparency (RFC 6962, the same tree as
// RFC 9162): eight leaves and the roots of their prefixes.
func TestRootVectors(t *testing.T) {
	inputs := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657",
		"606162636465666768696a6b6c6d6e6f"}
	roots := []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	var leaves []audit.Hash
	for i, in := range inputs {
		d, _ := hex.DecodeString(in)
		leaves = append(leaves, audit.LeafHash(d))
		if got := audit.RootOf(leaves).String(); got != roots[i] {
			t.Errorf("root of %d leaves = %s, want %s", i+1, got, roots[i])
		}
	}
	if audit.EmptyRoot.String() != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty root %s", audit.EmptyRoot)
	}
}

// fillLog appends n events to a fresh memory log and returns it with the
// leaf hashes.
func fillLog(t testing.TB, n int) (*audittest.MemStore, *audit.Log, [][32]byte) {
	t.Helper()
	st := audittest.NewMemStore()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	evs := make([]*audit.Event, n)
	for i := range evs {
		evs[i] = &audit.Event{Time: at.Add(time.Duration(i) * time.Millisecond), Actor: audit.Actor{Kind: audit.ActorSystem, ID: "test"},
			Action: "test.event", Outcome: audit.Success, Detail: fmt.Sprint(i)}
	}
	if err := st.AppendEvents(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	leaves := make([][32]byte, n)
	for i, e := range evs {
		leaves[i] = e.LeafHash()
	}
	return st, audit.NewLog(st, nil), leaves
}

func TestProofsSmall(t *testing.T) {
	ctx := context.Background()
	const N = 70
	_, log, leaves := fillLog(t, N)
	for n := 1; n <= N; n++ {
		root := refMTH(leaves[:n])
		got, err := log.Root(ctx, uint64(n))
		if err != nil || got != audit.Hash(root) {
			t.Fatalf("Root(%d) = %x, %v; want %x", n, got, err, root)
		}
		for m := range n {
			proof, err := log.InclusionProof(ctx, uint64(m), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			want := refPath(m, leaves[:n])
			if !slices.Equal(toRef(proof), want) {
				t.Fatalf("InclusionProof(%d, %d) differs from PATH", m, n)
			}
			if !refVerifyInclusion(uint64(m), uint64(n), leaves[m], toRef(proof), root) {
				t.Fatalf("independent verifier rejects inclusion %d in %d", m, n)
			}
			if err := audit.VerifyInclusion(leaves[m], uint64(m), uint64(n), proof, root); err != nil {
				t.Fatalf("audit.VerifyInclusion(%d, %d): %v", m, n, err)
			}
			checkInclusionRejects(t, leaves[m], uint64(m), uint64(n), proof, root)
		}
		for m := 1; m <= n; m++ {
			proof, err := log.ConsistencyProof(ctx, uint64(m), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			old := refMTH(leaves[:m])
			if m == n {
				if len(proof) != 0 || audit.VerifyConsistency(uint64(m), uint64(n), old, root, proof) != nil {
					t.Fatalf("consistency %d to itself", m)
				}
				continue
			}
			want := refSubproof(m, leaves[:n], true)
			if !slices.Equal(toRef(proof), want) {
				t.Fatalf("ConsistencyProof(%d, %d) differs from PROOF", m, n)
			}
			if !refVerifyConsistency(uint64(m), uint64(n), old, root, toRef(proof)) {
				t.Fatalf("independent verifier rejects consistency %d to %d", m, n)
			}
			if err := audit.VerifyConsistency(uint64(m), uint64(n), old, root, proof); err != nil {
				t.Fatalf("audit.VerifyConsistency(%d, %d): %v", m, n, err)
			}
			checkConsistencyRejects(t, uint64(m), uint64(n), old, root, proof)
		}
	}
}

// checkInclusionRejects checks that both verifiers refuse damaged proofs.
func checkInclusionRejects(t *testing.T, leaf [32]byte, m, n uint64, proof []audit.Hash, root [32]byte) {
	t.Helper()
	bad := func(what string, leaf [32]byte, m, n uint64, p []audit.Hash, root [32]byte) {
		t.Helper()
		if audit.VerifyInclusion(leaf, m, n, p, root) == nil || refVerifyInclusion(m, n, leaf, toRef(p), root) {
			t.Fatalf("inclusion %d in %d: %s accepted", m, n, what)
		}
	}
	for i := range proof {
		p := slices.Clone(proof)
		p[i][i%32] ^= 1
		bad(fmt.Sprintf("hash %d flipped", i), leaf, m, n, p, root)
	}
	if len(proof) > 0 {
		bad("hash dropped", leaf, m, n, proof[:len(proof)-1], root)
	}
	bad("hash added", leaf, m, n, append(slices.Clone(proof), audit.Hash{}), root)
	other := leaf
	other[0] ^= 1
	bad("other leaf", other, m, n, proof, root)
	if n > 1 {
		bad("other index", leaf, (m+1)%n, n, proof, root)
	}
	bad("index out of the tree", leaf, n, n, proof, root)
}

func checkConsistencyRejects(t *testing.T, m, n uint64, old, root [32]byte, proof []audit.Hash) {
	t.Helper()
	bad := func(what string, m, n uint64, old, root [32]byte, p []audit.Hash) {
		t.Helper()
		if audit.VerifyConsistency(m, n, old, root, p) == nil || refVerifyConsistency(m, n, old, root, toRef(p)) {
			t.Fatalf("consistency %d to %d: %s accepted", m, n, what)
		}
	}
	for i := range proof {
		p := slices.Clone(proof)
		p[i][31-i%32] ^= 0x80
		bad(fmt.Sprintf("hash %d flipped", i), m, n, old, root, p)
	}
	bad("hash dropped", m, n, old, root, proof[:len(proof)-1])
	bad("hash added", m, n, old, root, append(slices.Clone(proof), audit.Hash{}))
	o := old
	o[1] ^= 1
	bad("other old root", m, n, o, root, proof)
	r := root
	r[2] ^= 1
	bad("other new root", m, n, old, r, proof)
	// A proof and a root do not bind the new size on their own (the root
	// of 4 leaves is also that of 3 leaves whose third is a node): the
	// signed tree head binds size and root together.
}

// TestProofsCached checks proofs and roots on a tree large enough for the
// subtree cache, with the cache covering part of it, all of it, or none.
func TestProofsCached(t *testing.T) {
	ctx := context.Background()
	const N = 3000
	st, log, leaves := fillLog(t, N)
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(stage string) {
		for range 150 {
			n := 1 + rng.IntN(N)
			m := rng.IntN(n)
			root := refMTH(leaves[:n])
			if got, err := log.Root(ctx, uint64(n)); err != nil || got != audit.Hash(root) {
				t.Fatalf("%s: Root(%d): %v", stage, n, err)
			}
			proof, err := log.InclusionProof(ctx, uint64(m), uint64(n))
			if err != nil || !refVerifyInclusion(uint64(m), uint64(n), leaves[m], toRef(proof), root) {
				t.Fatalf("%s: inclusion %d in %d rejected (%v)", stage, m, n, err)
			}
			m++
			if m == n {
				continue
			}
			proof, err = log.ConsistencyProof(ctx, uint64(m), uint64(n))
			if err != nil || !refVerifyConsistency(uint64(m), uint64(n), refMTH(leaves[:m]), root, toRef(proof)) {
				t.Fatalf("%s: consistency %d to %d rejected (%v)", stage, m, n, err)
			}
		}
	}
	check("no cache")
	if err := log.Sync(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	if f, _ := st.SubtreeFrontier(ctx, audit.CacheLevel); f != 1000>>audit.CacheLevel {
		t.Fatalf("frontier %d after Sync(1000)", f)
	}
	check("cache to 1000")
	if err := log.Sync(ctx, N); err != nil {
		t.Fatal(err)
	}
	check("cache to the end")
	// Every cached node is the hash of its leaves.
	for id, h := range st.CachedNodes() {
		if refMTH(leaves[id.Start():id.End()]) != h {
			t.Fatalf("cached node %v is wrong", id)
		}
	}
	if n := len(st.CachedNodes()); n != 11+5+2+1 { // 11 blocks of 256 and the subtrees above them
		t.Errorf("%d cached nodes, want 19", n)
	}
}

// TestProofCost checks that a proof reads O(1) ranges once the cache is
// synced, whatever the size.
func TestProofCost(t *testing.T) {
	ctx := context.Background()
	st, log, _ := fillLog(t, 20000)
	if err := log.Sync(ctx, 20000); err != nil {
		t.Fatal(err)
	}
	for _, m := range []uint64{0, 255, 256, 9999, 19999} {
		st.Reads = 0
		st.Ranges = nil
		if _, err := log.InclusionProof(ctx, m, 20000); err != nil {
			t.Fatal(err)
		}
		if st.Reads > 2 {
			t.Log(st.Ranges)
			t.Errorf("inclusion proof of %d read leaves %d times", m, st.Reads)
		}
	}
}

func TestBuilderEmit(t *testing.T) {
	_, _, leaves := fillLog(t, 37)
	got := map[audit.NodeID]audit.Hash{}
	b := audit.Builder{Emit: func(id audit.NodeID, h audit.Hash) { got[id] = h }}
	for _, l := range leaves {
		b.Append(l)
	}
	for id, h := range got {
		if refMTH(leaves[id.Start():id.End()]) != h {
			t.Fatalf("emitted %v wrong", id)
		}
	}
	if len(got) != 37+18+9+4+2+1 {
		t.Fatalf("%d nodes emitted", len(got))
	}
}
