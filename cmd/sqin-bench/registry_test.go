package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestRegistryScenario runs the registry scenario, small, with the real
// `sqin registry generate|import`, on SQLite and (when it answers) on
// PostgreSQL, and writes its part of the report.
func TestRegistryScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs sqin")
	}
	o := &options{bin: buildSQIN(t), quietWait: 0, waits: &budget{},
		postgres: envOr("SQIN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		registry: registryOptions{records: 3000, readers: 4, duration: 200 * time.Millisecond}}
	dbs := []string{"sqlite"}
	if c, err := pgx.Connect(t.Context(), o.postgres); err == nil {
		c.Close(context.Background())
		dbs = append(dbs, "postgres")
	} else if os.Getenv("CI") != "" {
		t.Fatalf("PostgreSQL unreachable: %v", err)
	}
	var log bytes.Buffer
	defer o.cleanupRegistry(&log)
	rep := &report{opts: o, machine: machine{cpus: 2}}
	for _, db := range dbs {
		r, err := runRegistry(t.Context(), o, db, &log)
		if err != nil {
			t.Fatalf("%s: %v\n%s", db, err, log.String())
		}
		if r.records != 3000 || r.snapshot.wall <= 0 || r.delta.wall <= 0 || r.snapRSS <= 0 || len(r.lookups) == 0 ||
			r.misses > len(r.lookups)/20 {
			t.Errorf("%s: %d records, snapshot %s, delta %s, RSS %d KiB, %d lookups of which %d found nobody", db, r.records,
				r.snapshot.wall, r.delta.wall, r.snapRSS, len(r.lookups), r.misses)
		}
		if len(r.one) == 0 || r.lookupCPU() <= 0 || r.runQueue.max < 1 {
			t.Errorf("%s: one reader %d lookups, CPU %s/lookup, run queue %+v", db, len(r.one), r.lookupCPU(), r.runQueue)
		}
		if !strings.Contains(r.summary, "created 3000") {
			t.Errorf("%s: import summary %q", db, r.summary)
		}
		if (db == "postgres") != (r.copyFloor.wall > 0) {
			t.Errorf("%s: bare COPY %s", db, r.copyFloor.wall)
		}
		rep.dbs = append(rep.dbs, &dbResult{db: db, registry: r})
	}
	if d := o.registry.delivery; d == nil || d.deltaRecords == 0 || len(d.nams) == 0 {
		t.Fatalf("delivery %+v", d)
	}
	var out bytes.Buffer
	rep.writeRegistry(&out)
	for _, want := range []string{"## Registry import (RAIG)", "generate (once, CSV)", "import snapshot, empty registry",
		"delta of", "lookup by health number, 4 readers", "9 M ≈", "/lookup, so a mean of at least", "run queue", "one reader alone"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(out.String(), "PASS**") + strings.Count(out.String(), "MISS**"); n != 3*len(dbs) {
		t.Errorf("%d verdicts, want %d:\n%s", n, 3*len(dbs), out.String())
	}
}
