package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestAuditScenario runs the audit scenario, small, on SQLite with the
// real `sqin audit verify`, and writes its part of the report.
func TestAuditScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs sqin")
	}
	o := &options{bin: buildSQIN(t), quietWait: 0, waits: &budget{},
		audit: auditOptions{events: 3000, batch: 500, callers: 4, duration: 300 * time.Millisecond, proofs: 50}}
	var log bytes.Buffer
	a, err := runAudit(t.Context(), o, "sqlite", &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if a.fill.Events != 3000 || a.fill.Batches != 6 || a.batched == 0 || a.size < 3000+uint64(a.batched) {
		t.Errorf("appended %d in %d batches, %d through the batcher; head of %d", a.fill.Events, a.fill.Batches, a.batched, a.size)
	}
	if a.verify.wall <= 0 || a.verifyIn <= 0 || a.verifyIn > a.verify.wall {
		t.Errorf("verify: wall %s, reported %s", a.verify.wall, a.verifyIn)
	}
	if len(a.proof) != 50 || len(a.prove) != 50 {
		t.Errorf("%d proofs, %d proves", len(a.proof), len(a.prove))
	}
	if est := a.verifyEstimate(auditVerifyEvents); est <= a.verify.wall {
		t.Errorf("10 M estimate %s", est)
	}
	rep := &report{opts: o, machine: machine{cpus: 2}, dbs: []*dbResult{{db: "sqlite", audit: a}}}
	var out bytes.Buffer
	rep.writeAudit(&out)
	for _, want := range []string{"## Audit log", "`AppendEvents` batches of 500", "`Batcher`, 4 concurrent callers", "`sqin audit verify`", "inclusion proof", "extrapolated"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(out.String(), "PASS**") + strings.Count(out.String(), "MISS**"); n != 4 {
		t.Errorf("%d verdicts, want 4:\n%s", n, out.String())
	}
}
