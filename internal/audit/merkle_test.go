package audit_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
	"github.com/sqin/sqin/internal/audit/rfc9162"
)

// This file checks the tree against an independent reading of RFC 9162
// (package rfc9162), which calls none of the code under test.

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
		root := rfc9162.MTH(leaves[:n])
		got, err := log.Root(ctx, uint64(n))
		if err != nil || got != audit.Hash(root) {
			t.Fatalf("Root(%d) = %x, %v; want %x", n, got, err, root)
		}
		for m := range n {
			proof, err := log.InclusionProof(ctx, uint64(m), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			want := rfc9162.Path(m, leaves[:n])
			if !slices.Equal(toRef(proof), want) {
				t.Fatalf("InclusionProof(%d, %d) differs from PATH", m, n)
			}
			if !rfc9162.VerifyInclusion(uint64(m), uint64(n), leaves[m], toRef(proof), root) {
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
			old := rfc9162.MTH(leaves[:m])
			if m == n {
				if len(proof) != 0 || audit.VerifyConsistency(uint64(m), uint64(n), old, root, proof) != nil {
					t.Fatalf("consistency %d to itself", m)
				}
				continue
			}
			want := rfc9162.Subproof(m, leaves[:n], true)
			if !slices.Equal(toRef(proof), want) {
				t.Fatalf("ConsistencyProof(%d, %d) differs from PROOF", m, n)
			}
			if !rfc9162.VerifyConsistency(uint64(m), uint64(n), old, root, toRef(proof)) {
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
		if audit.VerifyInclusion(leaf, m, n, p, root) == nil || rfc9162.VerifyInclusion(m, n, leaf, toRef(p), root) {
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
		if audit.VerifyConsistency(m, n, old, root, p) == nil || rfc9162.VerifyConsistency(m, n, old, root, toRef(p)) {
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
			root := rfc9162.MTH(leaves[:n])
			if got, err := log.Root(ctx, uint64(n)); err != nil || got != audit.Hash(root) {
				t.Fatalf("%s: Root(%d): %v", stage, n, err)
			}
			proof, err := log.InclusionProof(ctx, uint64(m), uint64(n))
			if err != nil || !rfc9162.VerifyInclusion(uint64(m), uint64(n), leaves[m], toRef(proof), root) {
				t.Fatalf("%s: inclusion %d in %d rejected (%v)", stage, m, n, err)
			}
			m++
			if m == n {
				continue
			}
			proof, err = log.ConsistencyProof(ctx, uint64(m), uint64(n))
			if err != nil || !rfc9162.VerifyConsistency(uint64(m), uint64(n), rfc9162.MTH(leaves[:m]), root, toRef(proof)) {
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
		if rfc9162.MTH(leaves[id.Start():id.End()]) != h {
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
		if rfc9162.MTH(leaves[id.Start():id.End()]) != h {
			t.Fatalf("emitted %v wrong", id)
		}
	}
	if len(got) != 37+18+9+4+2+1 {
		t.Fatalf("%d nodes emitted", len(got))
	}
}
