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

// TestProofingScenario runs the proofing scenario, small, with the real
// `sqin registry|proofing generate|import`, on SQLite and (when it
// answers) on PostgreSQL, and writes its part of the report: every check
// of a sampled citizen must find the person and match (the bench's key
// derivation is the server's), both secrets must be timed.
func TestProofingScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs sqin")
	}
	o := &options{bin: buildSQIN(t), quietWait: 0, waits: &budget{},
		postgres: envOr("SQIN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		proofing: proofingOptions{records: 3000, callers: 4, duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond}}
	dbs := []string{"sqlite"}
	if c, err := pgx.Connect(t.Context(), o.postgres); err == nil {
		c.Close(context.Background())
		dbs = append(dbs, "postgres")
	} else if os.Getenv("CI") != "" {
		t.Fatalf("PostgreSQL unreachable: %v", err)
	}
	defer o.cleanupProofing()
	var log bytes.Buffer
	rep := &report{opts: o, machine: machine{cpus: 2}}
	for _, db := range dbs {
		r, err := runProofing(t.Context(), o, db, &log)
		if err != nil {
			t.Fatalf("%s: %v\n%s", db, err, log.String())
		}
		checks := len(r.health) + len(r.licence)
		bad := checks - r.outcomes["health-card match"] - r.outcomes["driving-licence match"]
		if r.records != 3000 || r.licences < 1500 || len(r.health) == 0 || len(r.licence) == 0 || len(r.total) != checks ||
			r.errors > 0 || bad > checks/100 {
			t.Errorf("%s: %d people, %d licences, %d+%d checks, outcomes %v, %d errors (%s)", db, r.records, r.licences,
				len(r.health), len(r.licence), r.outcomes, r.errors, r.firstErr)
		}
		rep.dbs = append(rep.dbs, &dbResult{db: db, proofing: r})
	}
	var out bytes.Buffer
	rep.writeProofing(&out)
	for _, want := range []string{"## Proofing checks (issue 7)", "check, health card (registry-held), 4 citizens",
		"check, driver's licence (delivered hash), 4 citizens", "lookup + check", "not at the target's scale", "MinDuration"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
