//go:build !race

package registry

import (
	"testing"

	"github.com/sqin/sqin"
)

// Two allocations per person: the Person and the string behind its
// generated fields; a few more per call.
func TestGenerateAllocations(t *testing.T) {
	synthTables()
	const n = 1000
	allocs := testing.AllocsPerRun(5, func() {
		_ = Generate(1, n, func(p *sqin.Person) error { sink = p; return nil })
	})
	if allocs > 2*n+10 {
		t.Fatalf("%v allocations for %d people", allocs, n)
	}
}
