package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/store"
)

// testSignup: registration flows, the claimed-identity lookup, proofs, the
// one-account-per-person link and the mail outbox's leases.
func testSignup(t *testing.T, s store.Store) {
	st, isSignup := s.(signup.Store)
	if !isSignup {
		t.Skip("the store does not implement signup.Store")
	}
	ctx := t.Context()
	ok(t, s.CreatePerson(ctx, &sqin.Person{ID: "p-cote", FamilyName: "Côté", GivenName: "Marie-Ève", BirthDate: "1984-02-29", UpdatedAt: t0}))
	ok(t, s.CreatePerson(ctx, &sqin.Person{ID: "p-cote2", FamilyName: "Cote", GivenName: "Marie-Ève", BirthDate: "1984-02-29", UpdatedAt: t0}))
	for _, tc := range []struct{ family, given, birth, want string }{
		{"CÔTÉ", "marie-ève", "1984-02-29", "p-cote"},
		{" Côté ", "Marie-Ève", "1984-02-29", "p-cote"},
		{"Cote", "Marie-Eve", "1984-02-29", ""}, // accents count
		{"Cote", "Marie-Ève", "1984-02-29", "p-cote2"},
		{"Côté", "Marie-Ève", "1984-03-01", ""},
	} {
		id, err := st.FindPersonByNameAndBirthDate(ctx, tc.family, tc.given, tc.birth)
		if tc.want == "" {
			checkErr(t, err, sqin.ErrNotFound)
			continue
		}
		ok(t, err)
		if id != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.family, tc.given, id, tc.want)
		}
	}

	// A flow and its mail, then the account it creates, once.
	f := &signup.Flow{ID: "flow-1", Email: "a@example.test", PasswordHash: "$argon2id$x", Locale: "fr", CodeHash: "h",
		CodeExpiresAt: t0.Add(15 * time.Minute), TermsAcceptedAt: t0, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	ok(t, st.CreateSignupFlow(ctx, f, &signup.Mail{ID: "mail-1", To: f.Email, Subject: "s", Body: "b", Kind: "code", CreatedAt: t0}))
	got, err := st.GetSignupFlow(ctx, "flow-1", t0)
	ok(t, err)
	if got.Email != f.Email || got.CodeHash != "h" || !got.CodeExpiresAt.Equal(f.CodeExpiresAt) || got.Duplicate {
		t.Fatalf("flow %+v", got)
	}
	_, err = st.GetSignupFlow(ctx, "flow-1", t0.Add(time.Hour))
	checkErr(t, err, sqin.ErrNotFound)
	for want := 1; want <= 2; want++ {
		n, err := st.CountSignupCodeAttempt(ctx, "flow-1", t0)
		ok(t, err)
		if n != want {
			t.Fatalf("attempts %d, want %d", n, want)
		}
	}
	acct := &sqin.Account{ID: "acct-new", Email: f.Email, EmailVerified: true, LoA: sqin.LoA1, Locale: "fr", CreatedAt: t0, UpdatedAt: t0}
	checkErr(t, st.CompleteSignup(ctx, "flow-1", acct, t0.Add(20*time.Minute)), sqin.ErrNotFound) // code expired
	ok(t, st.CompleteSignup(ctx, "flow-1", acct, t0))
	checkErr(t, st.CompleteSignup(ctx, "flow-1", &sqin.Account{ID: "acct-again", Email: "b@example.test", CreatedAt: t0, UpdatedAt: t0}, t0), sqin.ErrNotFound)
	ok(t, st.CreateSignupFlow(ctx, &signup.Flow{ID: "flow-2", Email: f.Email, CodeHash: "h", CodeExpiresAt: t0.Add(time.Hour),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	checkErr(t, st.CompleteSignup(ctx, "flow-2", &sqin.Account{ID: "acct-dup", Email: f.Email, CreatedAt: t0, UpdatedAt: t0}, t0), sqin.ErrConflict)

	// Proofs count per person; the link is made once per person.
	_, err = st.AddProof(ctx, "acct-new", "p-cote", "health-card", t0)
	ok(t, err)
	p, err := st.AddProof(ctx, "acct-new", "p-cote", "sin", t0)
	ok(t, err)
	_, err = st.AddProof(ctx, "acct-new", "p-cote2", "sin", t0)
	ok(t, err)
	if len(p) != 2 || p[0] != "health-card" || p[1] != "sin" {
		t.Fatalf("proofs %v", p)
	}
	ok(t, s.CreateAccount(ctx, &sqin.Account{ID: "acct-b", Email: "b@example.test", LoA: sqin.LoA1, CreatedAt: t0, UpdatedAt: t0}))
	ok(t, s.CreateAccount(ctx, &sqin.Account{ID: "acct-c", Email: "c@example.test", LoA: sqin.LoA1, CreatedAt: t0, UpdatedAt: t0}))
	var wg sync.WaitGroup
	results := make([]signup.Proved, 3)
	errs := make([]error, 3)
	for i, id := range []string{"acct-new", "acct-b", "acct-c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = st.ProveAccount(ctx, id, "p-cote", sqin.LoA2, "secrets:health-card,sin", t0,
				func(other *sqin.Account) *signup.Mail {
					return &signup.Mail{ID: "taken-" + id, To: other.Email, Kind: "person_taken", Subject: "s", Body: "b", CreatedAt: t0}
				})
		}()
	}
	wg.Wait()
	linked := 0
	for i := range results {
		ok(t, errs[i])
		if results[i].OtherAccount == "" {
			linked++
			if results[i].LoA != sqin.LoA2 {
				t.Errorf("linked at %d", results[i].LoA)
			}
		} else if results[i].LoA != sqin.LoA1 {
			t.Errorf("refused account at %d", results[i].LoA)
		}
	}
	if linked != 1 {
		t.Fatalf("%d accounts linked to one person", linked)
	}

	// Leases: two claimers never hold the same mail; a sent mail is done.
	var claimed sync.Map
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms, err := st.ClaimMails(ctx, t0, time.Minute, 10)
			if err != nil {
				t.Error(err)
			}
			for _, m := range ms {
				if _, dup := claimed.LoadOrStore(m.ID, true); dup {
					t.Errorf("mail %s claimed twice", m.ID)
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	claimed.Range(func(k, _ any) bool {
		n++
		ok(t, st.MailSent(ctx, k.(string), t0))
		return true
	})
	if n != 3 { // the code and two "person taken" mails
		t.Fatalf("%d mails claimed, want 3", n)
	}
	ms, err := st.ClaimMails(ctx, t0.Add(time.Hour), time.Minute, 10)
	if err != nil || len(ms) != 0 {
		t.Fatalf("sent mails claimed again: %d %v", len(ms), err)
	}

	// Pruning: expired flows go; sent mails go after the given time.
	ok(t, st.PruneSignup(ctx, t0.Add(2*time.Hour), t0))
	_, err = st.GetSignupFlow(ctx, "flow-2", t0)
	checkErr(t, err, sqin.ErrNotFound)
	again := &signup.Mail{ID: "mail-1", To: "a@example.test", Subject: "s", Body: "b", Kind: "code", CreatedAt: t0}
	checkErr(t, st.QueueMail(ctx, again), sqin.ErrConflict) // still there
	ok(t, st.PruneSignup(ctx, t0, t0.Add(time.Minute)))
	ok(t, st.QueueMail(ctx, again)) // the sent mail's row is gone
}
