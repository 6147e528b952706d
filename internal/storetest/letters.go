package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/store"
)

// testLetters: the queue of codes by mail (one waiting letter per
// account, claims that two exports never share, the export's commit,
// wrong codes, single use) and their pruning.
func testLetters(t *testing.T, s store.Store) {
	st, isSignup := s.(signup.Store)
	if !isSignup {
		t.Skip("the store does not implement signup.Store")
	}
	ctx := t.Context()
	letter := func(id, acct string, at time.Time) *signup.Letter {
		return &signup.Letter{ID: id, AccountID: acct, PersonID: "p-" + acct, Locale: "fr", RequestedAt: at}
	}

	// One waiting letter per account; the mails go in either way.
	stored, err := st.QueueLetter(ctx, letter("l-a1", "a", t0), &signup.Mail{ID: "mail-l1", To: "a@example.test", Subject: "s", Body: "b", Kind: "letter", CreatedAt: t0})
	ok(t, err)
	if !stored {
		t.Fatal("first letter not stored")
	}
	stored, err = st.QueueLetter(ctx, letter("l-a2", "a", t0.Add(time.Second)), &signup.Mail{ID: "mail-l2", To: "a@example.test", Subject: "s", Body: "b", Kind: "letter", CreatedAt: t0})
	ok(t, err)
	if stored {
		t.Fatal("a second letter was queued while one waits")
	}
	ms, err := st.ClaimMails(ctx, t0, time.Minute, 10)
	ok(t, err)
	if len(ms) != 2 {
		t.Fatalf("%d mails queued with the letters, want 2", len(ms))
	}
	for i, acct := range []string{"b", "c", "d", "e"} {
		stored, err := st.QueueLetter(ctx, letter("l-"+acct, acct, t0.Add(time.Duration(i+1)*time.Second)))
		ok(t, err)
		if !stored {
			t.Fatalf("letter of %s not stored", acct)
		}
	}
	pending, err := st.PendingLetters(ctx, "a", t0)
	ok(t, err)
	if len(pending) != 1 || pending[0].ID != "l-a1" || pending[0].Batch != "" || !pending[0].ExportedAt.IsZero() {
		t.Fatalf("pending %+v", pending)
	}

	// Two exports claim at once: every letter once.
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		claims = map[string]string{}
	)
	for _, batch := range []string{"batch-1", "batch-2"} {
		wg.Go(func() {
			ls, err := st.ClaimLetters(ctx, batch, t0.Add(time.Minute), t0, 3)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, l := range ls {
				if l.Batch != batch {
					t.Errorf("%s returned letter %s of %s", batch, l.ID, l.Batch)
				}
				if other, dup := claims[l.ID]; dup {
					t.Errorf("letter %s claimed by %s and %s", l.ID, other, batch)
				}
				claims[l.ID] = batch
			}
		})
	}
	wg.Wait()
	// A claim that lost a race may come back short (up to n letters):
	// what is left is claimed next.
	rest, err := st.ClaimLetters(ctx, "batch-x", t0.Add(time.Minute), t0, 10)
	ok(t, err)
	for _, l := range rest {
		if other, dup := claims[l.ID]; dup {
			t.Errorf("letter %s claimed by %s and batch-x", l.ID, other)
		}
		claims[l.ID] = "batch-x"
	}
	if len(claims) != 5 {
		t.Fatalf("%d letters claimed, want 5: %v", len(claims), claims)
	}
	batchOf := func(b string) []string {
		var ids []string
		for id, got := range claims {
			if got == b {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return ids
	}

	// An export that did not finish: its letters are claimed again after
	// staleBefore, and the slow export's commit is then refused.
	later := t0.Add(time.Hour)
	retaken, err := st.ClaimLetters(ctx, "batch-3", later, later.Add(-time.Minute), 10)
	ok(t, err)
	if len(retaken) != 5 {
		t.Fatalf("%d stale letters claimed again, want 5", len(retaken))
	}
	for _, b := range []string{"batch-1", "batch-2", "batch-x"} {
		if ids := batchOf(b); len(ids) > 0 {
			checkErr(t, st.LettersExported(ctx, b, map[string]string{ids[0]: "h"}, later, later.Add(24*time.Hour)), sqin.ErrConflict)
		}
	}
	done, err := st.BatchExported(ctx, "batch-3")
	ok(t, err)
	if done {
		t.Fatal("batch-3 exported before its commit")
	}
	// batch-3 prints all but l-e, which it voids.
	hashes := map[string]string{"l-a1": "hash-a", "l-b": "hash-b", "l-c": "hash-c", "l-d": "hash-d"}
	expires := later.Add(30 * 24 * time.Hour)
	ok(t, st.LettersExported(ctx, "batch-3", hashes, later, expires))
	done, err = st.BatchExported(ctx, "batch-3")
	ok(t, err)
	if !done {
		t.Fatal("batch-3 not exported after its commit")
	}
	pending, err = st.PendingLetters(ctx, "a", later)
	ok(t, err)
	if len(pending) != 1 || pending[0].CodeHash != "hash-a" || !pending[0].ExportedAt.Equal(later) || !pending[0].ExpiresAt.Equal(expires) {
		t.Fatalf("printed letter %+v", pending)
	}
	pending, err = st.PendingLetters(ctx, "e", later)
	ok(t, err)
	if len(pending) != 0 {
		t.Fatalf("a voided letter is pending: %+v", pending)
	}
	again, err := st.ClaimLetters(ctx, "batch-4", later.Add(time.Hour), later.Add(time.Hour), 10)
	ok(t, err)
	if len(again) != 0 {
		t.Fatalf("printed or voided letters claimed again: %+v", again)
	}
	// A printed letter lets a new one be queued.
	stored, err = st.QueueLetter(ctx, letter("l-a3", "a", later))
	ok(t, err)
	if !stored {
		t.Fatal("a new letter refused while the first one is printed")
	}

	// Wrong codes void the letter at the maximum.
	for want := 1; want <= 3; want++ {
		n, err := st.LetterAttempt(ctx, "l-b", 3, later)
		ok(t, err)
		if n != want {
			t.Fatalf("attempts %d, want %d", n, want)
		}
	}
	_, err = st.UseLetter(ctx, "l-b", "mail-code", later)
	checkErr(t, err, sqin.ErrNotFound)
	_, err = st.LetterAttempt(ctx, "l-b", 3, later)
	checkErr(t, err, sqin.ErrNotFound)

	// Single use, not after its expiry, not before it is printed.
	_, err = st.UseLetter(ctx, "l-c", "mail-code", expires)
	checkErr(t, err, sqin.ErrNotFound)
	_, err = st.UseLetter(ctx, "l-a3", "mail-code", later)
	checkErr(t, err, sqin.ErrNotFound)
	_, err = st.AddProof(ctx, "a", "p-a", "health-card", later)
	ok(t, err)
	proofs, err := st.UseLetter(ctx, "l-a1", "mail-code", later)
	ok(t, err)
	if !slices.Equal(proofs, []string{"health-card", "mail-code"}) {
		t.Fatalf("proofs after the letter %v", proofs)
	}
	_, err = st.UseLetter(ctx, "l-a1", "mail-code", later)
	checkErr(t, err, sqin.ErrNotFound)

	// Pruning keeps what may still be used.
	ok(t, st.PruneSignup(ctx, later, later.Add(time.Second)))
	pending, err = st.PendingLetters(ctx, "c", later)
	ok(t, err)
	if len(pending) != 1 {
		t.Fatalf("a usable letter was pruned: %+v", pending)
	}
	ok(t, st.PruneSignup(ctx, expires.Add(time.Hour), expires.Add(time.Hour)))
	pending, err = st.PendingLetters(ctx, "a", later)
	ok(t, err)
	if len(pending) != 1 || pending[0].ID != "l-a3" {
		t.Fatalf("the queued letter was pruned or the spent one kept: %+v", pending)
	}
}

// testPasswordResets: reset links expire, are spent once, spend the
// account's other links, set the password and queue their mails in one
// transaction; a given-up mail keeps no body the store hands out again.
func testPasswordResets(t *testing.T, s store.Store) {
	st, isSignup := s.(signup.Store)
	if !isSignup {
		t.Skip("the store does not implement signup.Store")
	}
	ctx := t.Context()
	ok(t, s.CreateAccount(ctx, &sqin.Account{ID: "acct-r", Email: "r@example.test", PasswordHash: "old", LoA: sqin.LoA1, CreatedAt: t0, UpdatedAt: t0}))
	ok(t, s.CreateSession(ctx, &sqin.Session{ID: "sess-r1", AccountID: "acct-r", AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	ok(t, s.CreateSession(ctx, &sqin.Session{ID: "sess-r2", AccountID: "acct-r", AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	ok(t, s.CreateSession(ctx, &sqin.Session{ID: "sess-other", AccountID: "acct-x", AMR: []string{"pwd"}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	reset := func(id string) *signup.PasswordReset {
		return &signup.PasswordReset{ID: id, AccountID: "acct-r", CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Minute)}
	}
	ok(t, st.CreatePasswordReset(ctx, reset("r1"), &signup.Mail{ID: "mail-r1", To: "r@example.test", Subject: "s", Body: "link 1", Kind: "reset", CreatedAt: t0}))
	ok(t, st.CreatePasswordReset(ctx, reset("r2")))
	checkErr(t, st.CreatePasswordReset(ctx, reset("r2")), sqin.ErrConflict)

	got, err := st.GetPasswordReset(ctx, "r1", t0)
	ok(t, err)
	if got.AccountID != "acct-r" || !got.ExpiresAt.Equal(t0.Add(30*time.Minute)) || !got.UsedAt.IsZero() {
		t.Fatalf("reset %+v", got)
	}
	_, err = st.GetPasswordReset(ctx, "r1", t0.Add(30*time.Minute))
	checkErr(t, err, sqin.ErrNotFound)
	checkErr(t, st.ResetPassword(ctx, "r1", "new", t0.Add(31*time.Minute)), sqin.ErrNotFound) // expired
	_, err = st.GetPasswordReset(ctx, "nope", t0)
	checkErr(t, err, sqin.ErrNotFound)

	ids, err := st.AccountSessions(ctx, "acct-r")
	ok(t, err)
	if !slices.Equal(ids, []string{"sess-r1", "sess-r2"}) {
		t.Fatalf("sessions %v", ids)
	}

	ok(t, st.ResetPassword(ctx, "r2", "new-hash", t0.Add(time.Minute),
		&signup.Mail{ID: "mail-changed", To: "r@example.test", Subject: "s", Body: "changed", Kind: "password_changed", CreatedAt: t0}))
	a, err := s.GetAccount(ctx, "acct-r")
	ok(t, err)
	if a.PasswordHash != "new-hash" {
		t.Fatalf("password hash %q", a.PasswordHash)
	}
	// Spent, and every other link of the account with it.
	for _, id := range []string{"r1", "r2"} {
		_, err := st.GetPasswordReset(ctx, id, t0.Add(2*time.Minute))
		checkErr(t, err, sqin.ErrNotFound)
		checkErr(t, st.ResetPassword(ctx, id, "again", t0.Add(2*time.Minute)), sqin.ErrNotFound)
	}
	a, err = s.GetAccount(ctx, "acct-r")
	ok(t, err)
	if a.PasswordHash != "new-hash" {
		t.Fatalf("a spent link changed the password: %q", a.PasswordHash)
	}

	// The mails: the link and the notice; a mail given up on is never due
	// again.
	ms, err := st.ClaimMails(ctx, t0.Add(time.Minute), time.Minute, 10)
	ok(t, err)
	if len(ms) != 2 || ms[0].Body == "" {
		t.Fatalf("mails %+v", ms)
	}
	for _, m := range ms {
		ok(t, st.MailFailed(ctx, m.ID, time.Time{}, "relay refused"))
	}
	ms, err = st.ClaimMails(ctx, t0.Add(48*time.Hour), time.Minute, 10)
	ok(t, err)
	if len(ms) != 0 {
		t.Fatalf("mails given up on are due again: %+v", ms)
	}

	// Expired links are pruned.
	ok(t, st.CreatePasswordReset(ctx, &signup.PasswordReset{ID: "r3", AccountID: "acct-r", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	ok(t, st.PruneSignup(ctx, t0.Add(2*time.Hour), t0))
	checkErr(t, st.ResetPassword(ctx, "r3", "x", t0.Add(time.Minute)), sqin.ErrNotFound)
}
