package legal

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/audit"
)

func TestReport(t *testing.T) {
	a := sample(t) // D-1234-2026: birth_date, family_name, given_names
	from, to := mustWhen(t, "2027-01-01"), mustWhen(t, "2027-02-01")
	in := mustWhen(t, "2027-01-15")
	ev := func(client, subject string, at time.Time, basis, outcome string, attrs ...string) *audit.Event {
		return &audit.Event{Time: at, ClientID: client, PublicBody: "mfa", Subject: subject, LegalBasis: basis,
			Outcome: outcome, Action: audit.RegistryDisclosed, Attributes: attrs}
	}
	rp := NewReporter(a, from, to)
	for _, e := range []*audit.Event{
		ev("svc-a", "ps1.p1", in, a.Ref, audit.Success, "family_name", "birth_date"),
		ev("svc-a", "ps1.p1", in, a.Ref, audit.Success, "family_name"),            // same person again
		ev("svc-a", "ps1.p2", in, a.Ref, audit.Success, "family_name", "address"), // address: not covered
		ev("svc-b", "ps1.p1", in, a.Ref, audit.Success, "given_names"),
		ev("svc-a", "ps1.p3", in, a.Ref, audit.Denied, "family_name"),                           // withheld: not a communication
		ev("svc-a", "ps1.p3", in, "consent:c-1", audit.Success, "family_name"),                  // other basis
		ev("svc-a", "ps1.p4", from.Add(-time.Millisecond), a.Ref, audit.Success, "family_name"), // before
		ev("svc-a", "ps1.p4", to, a.Ref, audit.Success, "family_name"),                          // at the end: after
		ev("svc-a", "ps1.p5", from, a.Ref, audit.Success, "address"),                            // nothing covered
	} {
		rp.Add(e)
	}
	r := rp.Report()
	want := []ReportRow{
		{"svc-a", "mfa", "birth_date", 1, 1},
		{"svc-a", "mfa", "family_name", 2, 3},
		{"svc-b", "mfa", "given_names", 1, 1},
	}
	if r.Events != 4 || len(r.Rows) != len(want) {
		t.Fatalf("report %+v", r)
	}
	for i := range want {
		if r.Rows[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, r.Rows[i], want[i])
		}
	}
	var csvOut, jsonOut bytes.Buffer
	if err := r.WriteCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csvOut.String()), "\n")
	if len(lines) != 4 || lines[0] != "ref,from,to,client_id,public_body,attribute,persons,communications" ||
		lines[2] != "D-1234-2026,2027-01-01T05:00:00Z,2027-02-01T05:00:00Z,svc-a,mfa,family_name,2,3" {
		t.Fatalf("csv:\n%s", csvOut.String())
	}
	if err := r.WriteJSON(&jsonOut); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(jsonOut.Bytes(), &back); err != nil || len(back.Rows) != 3 || back.Rows[1].Communications != 3 {
		t.Fatalf("json: %v\n%s", err, jsonOut.String())
	}
}
