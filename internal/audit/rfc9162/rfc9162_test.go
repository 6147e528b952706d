package rfc9162

import (
	"encoding/hex"
	"testing"
)

// The reference must itself be right: the Certificate Transparency test
// vectors (RFC 6962, the same tree as RFC 9162), eight leaves and the
// roots of their prefixes, and every inclusion and consistency proof of
// those trees verifying, tampered ones not.
func TestVectors(t *testing.T) {
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
	var leaves [][32]byte
	for i, in := range inputs {
		d, _ := hex.DecodeString(in)
		leaves = append(leaves, Leaf(d))
		root := MTH(leaves)
		if got := hex.EncodeToString(root[:]); got != roots[i] {
			t.Errorf("root of %d leaves = %s, want %s", i+1, got, roots[i])
		}
	}
	if e := MTH(nil); hex.EncodeToString(e[:]) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty root %x", e)
	}
	for n := 1; n <= len(leaves); n++ {
		root := MTH(leaves[:n])
		for m := range n {
			p := Path(m, leaves[:n])
			if !VerifyInclusion(uint64(m), uint64(n), leaves[m], p, root) {
				t.Errorf("inclusion %d in %d does not verify", m, n)
			}
			if len(p) > 0 {
				p[0][0] ^= 1
				if VerifyInclusion(uint64(m), uint64(n), leaves[m], p, root) {
					t.Errorf("tampered inclusion %d in %d verifies", m, n)
				}
			}
		}
		for m := 1; m < n; m++ {
			p := Subproof(m, leaves[:n], true)
			if !VerifyConsistency(uint64(m), uint64(n), MTH(leaves[:m]), root, p) {
				t.Errorf("consistency %d to %d does not verify", m, n)
			}
			p[len(p)-1][0] ^= 1
			if VerifyConsistency(uint64(m), uint64(n), MTH(leaves[:m]), root, p) {
				t.Errorf("tampered consistency %d to %d verifies", m, n)
			}
		}
	}
}
