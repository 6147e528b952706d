package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

func initialToken(id string) *store.InitialAccessToken {
	return &store.InitialAccessToken{ID: id, Hash: "hash-" + id, Sector: "saaq", AllowPublicSubject: true,
		MaxUses: 2, Note: "Intégrateur « permis » — ticket 42", CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
}

func testInitialAccessTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := initialToken("iat-a")
	b := &store.InitialAccessToken{ID: "iat-b", Hash: "hash-b", CreatedAt: t0.Add(time.Second),
		ExpiresAt: t0.Add(time.Hour)}
	ok(t, s.CreateInitialAccessToken(ctx, a))
	ok(t, s.CreateInitialAccessToken(ctx, b))
	got, err := s.GetInitialAccessToken(ctx, "hash-iat-a")
	ok(t, err)
	same(t, got, a)
	_, err = s.GetInitialAccessToken(ctx, "hash-missing")
	isErr(t, err, sqin.ErrNotFound)
	isErr(t, s.CreateInitialAccessToken(ctx, initialToken("iat-a")), sqin.ErrConflict)
	dupHash := initialToken("iat-c")
	dupHash.Hash = "hash-b"
	isErr(t, s.CreateInitialAccessToken(ctx, dupHash), sqin.ErrConflict)

	all, err := s.ListInitialAccessTokens(ctx)
	ok(t, err)
	same(t, all, []*store.InitialAccessToken{a, b})

	ok(t, s.RevokeInitialAccessToken(ctx, "iat-a", t0.Add(time.Minute)))
	ok(t, s.RevokeInitialAccessToken(ctx, "iat-a", t0.Add(time.Hour))) // keeps the first time
	got, err = s.GetInitialAccessToken(ctx, "hash-iat-a")
	ok(t, err)
	a.RevokedAt = t0.Add(time.Minute)
	same(t, got, a)
	if got.Usable(t0.Add(2 * time.Minute)) {
		t.Fatal("a revoked token is usable")
	}
	isErr(t, s.RevokeInitialAccessToken(ctx, "iat-missing", t0), sqin.ErrNotFound)
}

// registration returns a registration of client id made with token.
func registration(id, token string) *store.Registration {
	return &store.Registration{ClientID: id, TokenHash: "rat-" + id, InitialTokenID: token, Sector: "saaq",
		AllowPublicSubject: true, CreatedAt: t0, UpdatedAt: t0}
}

func testRegisterClient(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateInitialAccessToken(ctx, initialToken("iat"))) // two uses
	full := fullClient("rp-1")
	ok(t, s.RegisterClient(ctx, full, registration("rp-1", "iat"), t0))
	got, err := s.GetClient(ctx, "rp-1")
	ok(t, err)
	same(t, got, full)
	reg, err := s.GetRegistration(ctx, "rp-1")
	ok(t, err)
	same(t, reg, registration("rp-1", "iat"))

	// A taken client ID writes nothing, not even the use.
	isErr(t, s.RegisterClient(ctx, fullClient("rp-1"), registration("rp-1", "iat"), t0), sqin.ErrConflict)
	tok, err := s.GetInitialAccessToken(ctx, "hash-iat")
	ok(t, err)
	if tok.Uses != 1 {
		t.Fatalf("uses = %d after one registration and one conflict, want 1", tok.Uses)
	}
	// The second use is the last.
	ok(t, s.RegisterClient(ctx, &sqin.Client{ID: "rp-2", AuthMethod: sqin.AuthNone}, registration("rp-2", "iat"), t0))
	isErr(t, s.RegisterClient(ctx, fullClient("rp-3"), registration("rp-3", "iat"), t0), sqin.ErrRevoked)
	_, err = s.GetClient(ctx, "rp-3")
	isErr(t, err, sqin.ErrNotFound)

	expired := initialToken("iat-expired")
	ok(t, s.CreateInitialAccessToken(ctx, expired))
	isErr(t, s.RegisterClient(ctx, fullClient("rp-4"), registration("rp-4", "iat-expired"), expired.ExpiresAt), sqin.ErrExpired)
	revoked := initialToken("iat-revoked")
	ok(t, s.CreateInitialAccessToken(ctx, revoked))
	ok(t, s.RevokeInitialAccessToken(ctx, "iat-revoked", t0))
	isErr(t, s.RegisterClient(ctx, fullClient("rp-5"), registration("rp-5", "iat-revoked"), t0), sqin.ErrRevoked)
	isErr(t, s.RegisterClient(ctx, fullClient("rp-6"), registration("rp-6", "iat-missing"), t0), sqin.ErrNotFound)
	for _, id := range []string{"rp-4", "rp-5", "rp-6"} {
		_, err = s.GetClient(ctx, id)
		isErr(t, err, sqin.ErrNotFound)
	}

	// Clients made from the CLI have no registration; deleting a
	// registered client deletes its registration.
	ok(t, s.CreateClient(ctx, fullClient("rp-cli")))
	_, err = s.GetRegistration(ctx, "rp-cli")
	isErr(t, err, sqin.ErrNotFound)
	ok(t, s.DeleteClient(ctx, "rp-1"))
	_, err = s.GetRegistration(ctx, "rp-1")
	isErr(t, err, sqin.ErrNotFound)
	// A client created again with that ID is not managed by the old token.
	ok(t, s.CreateClient(ctx, fullClient("rp-1")))
	_, err = s.GetRegistration(ctx, "rp-1")
	isErr(t, err, sqin.ErrNotFound)
}

func testRegisterClientConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := initialToken("iat")
	tok.MaxUses = 1
	ok(t, s.CreateInitialAccessToken(ctx, tok))
	const n = 8
	var next int
	ids := make(chan string, n)
	for range n {
		next++
		ids <- fmt.Sprintf("rp-%d", next)
	}
	errs := concurrently(n, func() error {
		id := <-ids
		return s.RegisterClient(ctx, fullClient(id), registration(id, "iat"), t0)
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, sqin.ErrRevoked):
			t.Fatalf("concurrent registration: %v, want success or ErrRevoked", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent registrations with a one-use token succeeded, want 1", wins, n)
	}
}

func testUpdateRegisteredClient(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateInitialAccessToken(ctx, initialToken("iat")))
	before := &sqin.Client{ID: "rp", SecretHash: "old", Name: "old", AuthMethod: sqin.AuthSecretBasic,
		GrantTypes: []string{sqin.GrantClientCredentials}, MinLoA: sqin.LoA1, CreatedAt: t0.Add(-time.Hour)}
	ok(t, s.RegisterClient(ctx, before, registration("rp", "iat"), t0))

	// Every setting changes but the creation time.
	after := fullClient("rp")
	after.CreatedAt = t0.Add(time.Hour)
	now := t0.Add(time.Minute)
	ok(t, s.UpdateRegisteredClient(ctx, after, "rat-rp", "rat-rp-2", now))
	got, err := s.GetClient(ctx, "rp")
	ok(t, err)
	after.CreatedAt = before.CreatedAt
	same(t, got, after)
	reg, err := s.GetRegistration(ctx, "rp")
	ok(t, err)
	want := registration("rp", "iat")
	want.TokenHash, want.UpdatedAt = "rat-rp-2", now
	same(t, reg, want)

	// The old token no longer matches: nothing is written.
	stale := fullClient("rp")
	stale.Name = "stale"
	isErr(t, s.UpdateRegisteredClient(ctx, stale, "rat-rp", "rat-rp-3", now), sqin.ErrNotFound)
	got, err = s.GetClient(ctx, "rp")
	ok(t, err)
	same(t, got, after)
	isErr(t, s.UpdateRegisteredClient(ctx, fullClient("rp-missing"), "x", "y", now), sqin.ErrNotFound)

	// Of concurrent updates with one token, one wins.
	errs := concurrently(6, func() error {
		return s.UpdateRegisteredClient(ctx, fullClient("rp"), "rat-rp-2", "rat-rp-"+rand8(), now)
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, sqin.ErrNotFound):
			t.Fatalf("concurrent update: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent updates with one token succeeded, want 1", wins)
	}
}

var counter atomic.Int64

// rand8 returns a distinct string per call.
func rand8() string { return fmt.Sprintf("%08d", counter.Add(1)) }

func testImportLegacySubjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.SetLegacySubject(ctx, "saaq", "acct-1", "old-1"))
	ok(t, s.SetLegacySubject(ctx, "saaq", "acct-2", "old-2"))
	items := []store.LegacySubject{
		{AccountID: "acct-1", Sub: "old-1"}, // unchanged
		{AccountID: "acct-3", Sub: "new-3"},
		{AccountID: "acct-2", Sub: "other"},  // the account has another sub
		{AccountID: "acct-4", Sub: "old-2"},  // the sub belongs to acct-2
		{AccountID: "acct-3", Sub: "new-33"}, // acct-3 named twice
		{AccountID: "acct-5", Sub: "new-3"},  // new-3 named twice
	}
	out, err := s.ImportLegacySubjects(ctx, "saaq", items, false)
	isErr(t, err, sqin.ErrConflict)
	same(t, out, []store.ImportOutcome{store.ImportUnchanged, store.ImportImported, store.ImportAccountTaken,
		store.ImportSubTaken, store.ImportDuplicate, store.ImportDuplicate})
	_, err = s.GetLegacySubject(ctx, "saaq", "acct-3")
	isErr(t, err, sqin.ErrNotFound) // all or nothing

	good := []store.LegacySubject{{AccountID: "acct-1", Sub: "old-1"}, {AccountID: "acct-3", Sub: "new-3"},
		{AccountID: "acct-4", Sub: "new-4"}}
	out, err = s.ImportLegacySubjects(ctx, "saaq", good, true) // dry run
	ok(t, err)
	same(t, out, []store.ImportOutcome{store.ImportUnchanged, store.ImportImported, store.ImportImported})
	_, err = s.GetLegacySubject(ctx, "saaq", "acct-3")
	isErr(t, err, sqin.ErrNotFound)

	out, err = s.ImportLegacySubjects(ctx, "saaq", good, false)
	ok(t, err)
	same(t, out, []store.ImportOutcome{store.ImportUnchanged, store.ImportImported, store.ImportImported})
	for _, it := range good {
		sub, err := s.GetLegacySubject(ctx, "saaq", it.AccountID)
		ok(t, err)
		same(t, sub, it.Sub)
	}
	// Another sector is independent; an empty import does nothing.
	out, err = s.ImportLegacySubjects(ctx, "ramq", []store.LegacySubject{{AccountID: "acct-1", Sub: "new-3"}}, false)
	ok(t, err)
	same(t, out, []store.ImportOutcome{store.ImportImported})
	out, err = s.ImportLegacySubjects(ctx, "ramq", nil, false)
	ok(t, err)
	same(t, out, []store.ImportOutcome{})
}
