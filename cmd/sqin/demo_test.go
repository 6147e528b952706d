package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/sqlstore"
)

// serveDemo runs `sqin serve --demo` on dataDir and db with users demo
// accounts until it answers /readyz, stops it, and returns what it
// printed and how long it took to become ready.
func serveDemo(t *testing.T, dataDir, db string, users int) (string, time.Duration) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		done <- Main(ctx, []string{"serve", "--demo", "--demo-users", fmt.Sprint(users), "--demo-rp-addr", "", "--addr", addr,
			"--db", db, "--data-dir", dataDir, "--log-level", "error"}, out, errb, func(string) string { return "" })
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-done:
			t.Fatalf("serve --demo exited with %d: %s", code, errb.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(out.String(), "Stop with Ctrl-C") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve --demo not ready: %s", errb.String())
		}
	}
	ready := time.Since(start)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve --demo: exit status %d: %s", code, errb.String())
	}
	return out.String(), ready
}

// demoAccounts returns the person each demo account 1..n is linked to,
// checking the demo contract (docs/ARCHITECTURE.md): the account exists,
// its email is verified, it is at level 2, and its person is in the
// registry.
func demoAccounts(t *testing.T, st *sqlstore.DB, n int) []*sqin.Person {
	t.Helper()
	var ps []*sqin.Person
	for i := 1; i <= n; i++ {
		a, err := st.GetAccountByEmail(t.Context(), demoEmail(i))
		if err != nil {
			t.Fatalf("%s: %v", demoEmail(i), err)
		}
		if a.LoA != sqin.LoA2 || !a.EmailVerified || a.PersonID == "" {
			t.Fatalf("%s: level %v, email verified %v, person %q", demoEmail(i), a.LoA, a.EmailVerified, a.PersonID)
		}
		p, err := st.GetPerson(t.Context(), a.PersonID)
		if err != nil {
			t.Fatalf("%s: person: %v", demoEmail(i), err)
		}
		ps = append(ps, p)
	}
	if _, err := st.GetAccountByEmail(t.Context(), demoEmail(n+1)); err == nil {
		t.Fatalf("%s exists", demoEmail(n+1))
	}
	return ps
}

// TestDemoSeedsThroughDelivery: a fresh demo gets its people from a
// registry delivery (generated, then imported as in production); a restart
// changes nothing, one with more accounts imports a larger snapshot that
// keeps the same people, one with fewer finds them there.
func TestDemoSeedsThroughDelivery(t *testing.T) {
	for name, dbURL := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			dataDir, db := t.TempDir(), dbURL(t)
			out, ready := serveDemo(t, dataDir, db, 3)
			t.Logf("fresh demo ready in %s", ready.Round(time.Millisecond))
			for i := 1; i <= 3; i++ {
				if want := fmt.Sprintf("  %-32s password: %s\n", demoEmail(i), demoPassword); !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			st, err := sqlstore.Open(t.Context(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			first := demoAccounts(t, st, 3)
			seen := map[string]bool{}
			for i, p := range first {
				e, err := st.GetRegistryEntry(t.Context(), p.ID)
				if err != nil || e.Source != demoSource || registry.PersonID(demoSource, e.SourceRef) != p.ID {
					t.Fatalf("%s: person %s not imported from %s: %+v %v", demoEmail(i+1), p.ID, demoSource, e, err)
				}
				if p.BirthDate > demoBornBy || seen[p.ID] {
					t.Errorf("%s: person born %s, already linked %v", demoEmail(i+1), p.BirthDate, seen[p.ID])
				}
				seen[p.ID] = true
			}
			digest := func() string {
				t.Helper()
				d, err := st.RegistryDigest(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			before, accounts := digest(), 3

			for _, tc := range []struct {
				users   int
				changes bool // the registry grows
			}{
				{3, false}, // restart: the delivery is already imported
				{40, true}, // 2×40+20 > 64: a larger snapshot, same first people
				{2, false}, // its people are in the larger snapshot
			} {
				out, ready := serveDemo(t, dataDir, db, tc.users)
				t.Logf("restart with %d accounts ready in %s", tc.users, ready.Round(time.Millisecond))
				if !strings.Contains(out, demoEmail(min(tc.users, 10))) {
					t.Errorf("%d accounts: output:\n%s", tc.users, out)
				}
				accounts = max(accounts, tc.users) // accounts stay
				ps := demoAccounts(t, st, accounts)
				for i := range first {
					if ps[i].ID != first[i].ID {
						t.Fatalf("%d accounts: %s is now linked to another person", tc.users, demoEmail(i+1))
					}
				}
				if d := digest(); (d != before) != tc.changes {
					t.Errorf("%d accounts: registry changed %v, want %v", tc.users, d != before, tc.changes)
				}
				before = digest()
				distinct := map[string]bool{}
				for i, p := range ps {
					if e, err := st.GetRegistryEntry(t.Context(), p.ID); err != nil || e.Source != demoSource || distinct[p.ID] {
						t.Fatalf("%s: person %s: %+v %v (already linked: %v)", demoEmail(i+1), p.ID, e, err, distinct[p.ID])
					}
					distinct[p.ID] = true
				}
			}
		})
	}
}

// TestDemoExistingDatabase: a demo database made when the demo inserted
// its people directly ("p_…" identifiers) keeps working unchanged: no
// delivery is imported into it (its citizens would get twins), its
// accounts keep their people, and more accounts are seeded as before.
func TestDemoExistingDatabase(t *testing.T) {
	dataDir := t.TempDir()
	db := "sqlite://" + dataDir + "/sqin.db"
	st, err := sqlstore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	// What the demo used to write: the first adult of registry.Generate's
	// population for the demo seed, and its account.
	var old *sqin.Person
	err = registry.Generate(demoSeed, 20, func(p *sqin.Person) error {
		if old == nil && p.BirthDate <= time.Now().AddDate(-14, 0, 0).Format(time.DateOnly) {
			old = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.CreatePerson(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(t.Context(), &sqin.Account{ID: "acct-demo-0001", Email: demoEmail(1), EmailVerified: true,
		PasswordHash: "x", LoA: sqin.LoA2, PersonID: old.ID, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}

	out, _ := serveDemo(t, dataDir, db, 2)
	if !strings.Contains(out, demoEmail(2)) {
		t.Errorf("output:\n%s", out)
	}
	ps := demoAccounts(t, st, 2)
	if ps[0].ID != old.ID || !strings.HasPrefix(ps[1].ID, "p_") {
		t.Fatalf("accounts linked to %s and %s, want %s and a person inserted as before", ps[0].ID, ps[1].ID, old.ID)
	}
	if id, err := st.FindPersonByHealthNumber(t.Context(), old.HealthNo); err != nil || id != old.ID {
		t.Fatalf("health number of the existing citizen: %q %v (a twin?)", id, err)
	}
	if _, imported, err := st.RegistrySeeded(t.Context(), demoSource); err != nil || imported {
		t.Fatalf("a demo delivery was imported into an existing demo database: %v %v", imported, err)
	}
}
