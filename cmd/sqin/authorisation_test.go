package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/admin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/legal"
	"github.com/sqin/sqin/internal/sqlstore"
)

func TestAuthorisationCommands(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "a.db")
	getenv := func(k string) string {
		if k == "USER" {
			return "agent7"
		}
		return ""
	}
	create := []string{"authorisation", "create", "--db", db, "--ref", "D-1234-2026", "--title", "Expérimentation allocation",
		"--purpose", "allocation-famille", "--legal-basis", "Décret 1234-2026, art. 2", "--source", "Fichier des personnes assurées",
		"--recipient", "client:svc-a", "--recipient", "body:mfa", "--attribute", "family_name,birth_date",
		"--from", "2020-12-01", "--to", "2099-04-01"}
	code, out, errOut := run(t, getenv, create...)
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	var got legal.View
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != "in force" || got.From != "2020-12-01T00:00:00-05:00" || got.To != "2099-04-01T00:00:00-04:00" ||
		!slices.Equal(got.Attributes, []string{"birth_date", "family_name"}) || !slices.Equal(got.Recipients, []string{"body:mfa", "client:svc-a"}) {
		t.Fatalf("created %+v", got)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"duplicate", create, `"D-1234-2026" already exists`},
		{"unknown attribute", replaceArg(create, "D-1234-2026", "D-2", "family_name,birth_date", "shoe_size"), `attribute "shoe_size" is not in the registry catalogue`},
		{"bare recipient", replaceArg(create, "D-1234-2026", "D-3", "client:svc-a", "svc-a"), `recipient "svc-a"`},
		{"bad date", replaceArg(create, "D-1234-2026", "D-4", "2099-04-01", "31/03/2099"), `to: "31/03/2099" is neither a date`},
		{"end before start", replaceArg(create, "D-1234-2026", "D-5", "2099-04-01", "2019-01-01"), "start before its end"},
		{"end unknown", []string{"authorisation", "end", "--db", db, "--ref", "D-404"}, `no authorisation "D-404"`},
		{"show without ref", []string{"authorisation", "show", "--db", db}, "--ref is required"},
		{"unknown subcommand", []string{"authorisation", "renew"}, `unknown subcommand "renew"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, getenv, tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "goroutine") {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
			}
		})
	}

	if code, out, errOut := run(t, getenv, "authorisation", "end", "--db", db, "--ref", "D-1234-2026", "--at", "2027-04-01"); code != 0 ||
		!strings.Contains(out, "2027-04-01T00:00:00-04:00") {
		t.Fatalf("end: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run(t, getenv, "authorisation", "end", "--db", db, "--ref", "D-1234-2026"); code != 1 || !strings.Contains(errOut, "already ended") {
		t.Fatalf("second end: %d %q", code, errOut)
	}
	code, out, _ = run(t, getenv, "authorisation", "list", "--db", db)
	var list []legal.View
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 1 || list[0].Status != "ended" ||
		list[0].To != "2027-04-01T00:00:00-04:00" {
		t.Fatalf("list after end: %d %s", code, out)
	}

	// Both changes are in the audit log, made by the operator; refused
	// commands left nothing.
	st, err := sqlstore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.AuditSize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := st.Events(t.Context(), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range rs {
		e := r.Event
		if e.LegalBasis != "D-1234-2026" || e.Actor != (audit.Actor{Kind: audit.ActorAdmin, ID: "cli:agent7"}) {
			t.Errorf("event %+v", e)
		}
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []string{admin.ActionAuthorisationCreated, admin.ActionAuthorisationEnded}) {
		t.Fatalf("audit actions %v", actions)
	}

	// The report counts the disclosures the log holds under the reference.
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	disclose := func(subject string, attrs ...string) *audit.Event {
		return &audit.Event{Time: at, Actor: audit.Actor{Kind: audit.ActorClient, ID: "svc-a"}, Action: audit.RegistryDisclosed,
			Subject: subject, ClientID: "svc-a", PublicBody: "mfa", LegalBasis: "D-1234-2026", Attributes: attrs, Outcome: audit.Success}
	}
	if err := st.AppendEvents(t.Context(), disclose("ps1.a", "family_name"), disclose("ps1.a", "family_name", "birth_date"),
		disclose("ps1.b", "family_name")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, getenv, "authorisation", "report", "--db", db, "--ref", "D-1234-2026", "--from", "2026-01-01", "--to", "2027-01-01")
	if code != 0 || out != "ref,from,to,client_id,public_body,attribute,persons,communications\n"+
		"D-1234-2026,2026-01-01T05:00:00Z,2027-01-01T05:00:00Z,svc-a,mfa,birth_date,1,1\n"+
		"D-1234-2026,2026-01-01T05:00:00Z,2027-01-01T05:00:00Z,svc-a,mfa,family_name,2,3\n" {
		t.Fatalf("report: %d %q %q", code, out, errOut)
	}
	code, out, _ = run(t, getenv, "authorisation", "report", "--db", db, "--ref", "D-1234-2026", "--format", "json")
	if code != 0 || !strings.Contains(out, `"communications": 3`) {
		t.Fatalf("json report over the whole period: %d %s", code, out)
	}
	if code, _, errOut := run(t, getenv, "authorisation", "report", "--db", db, "--ref", "D-1234-2026", "--format", "xml"); code != 1 || !strings.Contains(errOut, "csv or json") {
		t.Fatalf("bad format: %d %q", code, errOut)
	}
}

// replaceArg returns args with the values old replaced by new, pairwise.
func replaceArg(args []string, pairs ...string) []string {
	out := slices.Clone(args)
	for i := 0; i+1 < len(pairs); i += 2 {
		if j := slices.Index(out, pairs[i]); j >= 0 {
			out[j] = pairs[i+1]
		}
	}
	return out
}
