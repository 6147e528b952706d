package storetest

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

// auditEvent is a valid event whose Detail names it.
func auditEvent(detail string) audit.Event {
	return audit.Event{Time: t0, RequestID: "req-" + detail, Actor: audit.Actor{Kind: audit.ActorCitizen, ID: "ps1.actor"},
		Action: audit.ConsentGiven, Subject: "ps1.subject", ClientID: "rp", PublicBody: "ramq",
		LegalBasis: "consent:rp", Attributes: []string{"given_name", "birthdate"}, Outcome: audit.Success, Detail: detail}
}

// isInvalid checks that err is an invalid audit event refused.
func isInvalid(t *testing.T, err error) {
	t.Helper()
	if sqin.ErrorCode(err) != sqin.EInvalid || !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("error %v, want an invalid audit event", err)
	}
}

// auditLog returns every event of the log, checking that it holds 0..n-1
// in order and that each event's fields hash to its stored leaf.
func auditLog(t *testing.T, s store.Store) []*audit.Record {
	t.Helper()
	ctx := t.Context()
	n, err := s.AuditSize(ctx)
	ok(t, err)
	end, err := s.AuditEnd(ctx)
	ok(t, err)
	rs, err := s.Events(ctx, 0, n+10)
	ok(t, err)
	if uint64(len(rs)) != n || end != n {
		t.Fatalf("%d events stored, size %d, end %d", len(rs), n, end)
	}
	for i, r := range rs {
		if r.ID != uint64(i) {
			t.Fatalf("event %d has ID %d", i, r.ID)
		}
		if h, err := r.Leaf(); err != nil || h != r.LeafHash {
			t.Fatalf("event %d: fields do not hash to the stored leaf (%v)", i, err)
		}
	}
	return rs
}

// details returns the Detail of each record.
func details(rs []*audit.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Detail)
	}
	return out
}

func testAuditAppend(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n, err := s.AuditSize(ctx); err != nil || n != 0 {
		t.Fatalf("empty log: size %d, %v", n, err)
	}
	if rs, err := s.Events(ctx, 0, 100); err != nil || len(rs) != 0 {
		t.Fatalf("empty log: %d events, %v", len(rs), err)
	}
	var evs []*audit.Event
	for i := range 70 { // more than one INSERT holds
		e := auditEvent(fmt.Sprint(i))
		e.Subject = fmt.Sprintf("ps1.s%d", i%3)
		if i == 5 {
			e.Time = time.Time{} // the store sets it
			e.Attributes = nil
			e.Actor = audit.Actor{Kind: audit.ActorSystem}
			e.RequestID, e.LegalBasis, e.ClientID, e.PublicBody = "", "", "", ""
		}
		evs = append(evs, &e)
	}
	before := time.Now().Add(-time.Second)
	ok(t, s.AppendEvents(ctx, evs[:1]...))
	ok(t, s.AppendEvents(ctx, evs[1:]...))
	for i, e := range evs {
		if e.ID != uint64(i) || len(e.Salt) != audit.SaltSize {
			t.Fatalf("event %d: ID %d, salt %x", i, e.ID, e.Salt)
		}
	}
	if evs[5].Time.Before(before) || evs[5].Time.Location() != time.UTC {
		t.Fatalf("time set to %v", evs[5].Time)
	}
	if slices.Equal(evs[0].Salt, evs[1].Salt) {
		t.Fatal("two events share a salt")
	}
	if !slices.Equal(evs[0].Attributes, []string{"birthdate", "given_name"}) {
		t.Fatalf("attributes not normalised: %v", evs[0].Attributes)
	}
	rs := auditLog(t, s)
	for i, r := range rs {
		same(t, &r.Event, evs[i])
		if r.LeafHash != evs[i].LeafHash() || r.Redacted || r.PersonalDigest != nil {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	part, err := s.Events(ctx, 10, 13)
	ok(t, err)
	same(t, details(part), []string{"10", "11", "12"})
	leaves, err := s.LeafHashes(ctx, 3, 7)
	ok(t, err)
	for i, h := range leaves {
		if h != rs[3+i].LeafHash {
			t.Fatalf("leaf %d differs", 3+i)
		}
	}
	if _, err := s.LeafHashes(ctx, 60, 71); err == nil {
		t.Fatal("LeafHashes past the end succeeded")
	}
	bySubject, err := s.EventsBySubject(ctx, "ps1.s1", 0, 3)
	ok(t, err)
	same(t, details(bySubject), []string{"1", "4", "7"})
	bySubject, err = s.EventsBySubject(ctx, "ps1.s1", 8, 100)
	ok(t, err)
	if len(bySubject) != 20 || bySubject[0].Detail != "10" {
		t.Fatalf("%d events from 8, first %q", len(bySubject), bySubject[0].Detail)
	}
	bySubject, err = s.EventsBySubject(ctx, "ps1.nobody", 0, 10)
	ok(t, err)
	if len(bySubject) != 0 {
		t.Fatal("events for nobody")
	}

	// An invalid event is refused, and nothing of its batch is written.
	good, bad := auditEvent("ok"), auditEvent("bad")
	bad.Action = "Not An Action"
	isInvalid(t, s.AppendEvents(ctx, &good, &bad))
	if n, _ := s.AuditSize(ctx); n != 70 {
		t.Fatalf("size %d after a refused batch", n)
	}
	ok(t, s.AppendEvents(ctx)) // nothing to append
}

// auditWrites lists store writes, each of which must commit the events its
// context carries. prepare (if any) runs first without events.
var auditWrites = []struct {
	name    string
	prepare func(context.Context, store.Store) error
	write   func(context.Context, store.Store) error
}{
	{"CreateClient", nil, func(ctx context.Context, s store.Store) error { return s.CreateClient(ctx, fullClient("w-client")) }},
	{"DeleteClient", func(ctx context.Context, s store.Store) error { return s.CreateClient(ctx, fullClient("w-del")) },
		func(ctx context.Context, s store.Store) error { return s.DeleteClient(ctx, "w-del") }},
	{"CreateAccount", nil, func(ctx context.Context, s store.Store) error {
		return s.CreateAccount(ctx, &sqin.Account{ID: "w-acct", Email: "w@example.org", LoA: sqin.LoA1, CreatedAt: t0})
	}},
	{"CreatePerson", nil, func(ctx context.Context, s store.Store) error {
		return s.CreatePerson(ctx, &sqin.Person{ID: "w-person"})
	}},
	{"CreateSession", nil, func(ctx context.Context, s store.Store) error {
		return s.CreateSession(ctx, &sqin.Session{ID: "w-sess", AccountID: "acct", LoA: sqin.LoA1, ExpiresAt: t0.Add(time.Hour)})
	}},
	{"DeleteSession", nil, func(ctx context.Context, s store.Store) error { return s.DeleteSession(ctx, "w-sess", t0) }},
	{"EndSession", nil, func(ctx context.Context, s store.Store) error {
		_, err := s.EndSession(ctx, "w-sess-2", t0, 100)
		return err
	}},
	{"CreateAuthRequest", nil, func(ctx context.Context, s store.Store) error {
		return s.CreateAuthRequest(ctx, &sqin.AuthRequest{ID: "w-req", ExpiresAt: t0.Add(time.Hour)})
	}},
	{"SetAuthRequestSession", nil, func(ctx context.Context, s store.Store) error {
		return s.SetAuthRequestSession(ctx, "w-req", "w-sess")
	}},
	{"DeleteAuthRequest", nil, func(ctx context.Context, s store.Store) error { return s.DeleteAuthRequest(ctx, "w-req") }},
	{"CreateAuthCode", nil, func(ctx context.Context, s store.Store) error {
		return s.CreateAuthCode(ctx, authCode("w-code", "w-grant", "rp", "sess"))
	}},
	{"ExchangeCode", nil, func(ctx context.Context, s store.Store) error {
		return s.ExchangeCode(ctx, "w-code", t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
			g, rt := issue(c, true, "w-rt")
			return g, rt, nil
		})
	}},
	{"RotateRefreshToken", nil, func(ctx context.Context, s store.Store) error {
		return s.RotateRefreshToken(ctx, "w-rt", t0, func(rt *sqin.RefreshToken, g *sqin.Grant) (*sqin.RefreshToken, error) {
			return &sqin.RefreshToken{Hash: "w-rt-2", GrantID: g.ID, ClientID: g.ClientID, ExpiresAt: t0.Add(time.Hour)}, nil
		})
	}},
	{"RevokeGrant", nil, func(ctx context.Context, s store.Store) error { return s.RevokeGrant(ctx, "w-grant", t0) }},
	{"RevokeAccessToken", nil, func(ctx context.Context, s store.Store) error {
		return s.RevokeAccessToken(ctx, "w-jti", t0.Add(time.Hour))
	}},
	{"SaveConsent", nil, func(ctx context.Context, s store.Store) error {
		return s.SaveConsent(ctx, &sqin.Consent{AccountID: "acct", ClientID: "rp", Scopes: []string{"openid"}, GrantedAt: t0})
	}},
	{"RevokeConsent", nil, func(ctx context.Context, s store.Store) error { return s.RevokeConsent(ctx, "acct", "rp", t0) }},
	{"AddSigningKey", nil, func(ctx context.Context, s store.Store) error {
		return s.AddSigningKey(ctx, &sqin.SigningKey{ID: "w-key", Alg: "ES256", CreatedAt: t0}, t0, time.Hour)
	}},
	{"Hit", nil, func(ctx context.Context, s store.Store) error {
		_, err := s.Hit(ctx, "w-key", time.Minute, t0)
		return err
	}},
	{"Reset", nil, func(ctx context.Context, s store.Store) error { return s.Reset(ctx, "w-key") }},
	{"UseOnce", nil, func(ctx context.Context, s store.Store) error { return s.UseOnce(ctx, "w-jti", t0.Add(time.Hour), t0) }},
	{"SetLegacySubject", nil, func(ctx context.Context, s store.Store) error {
		return s.SetLegacySubject(ctx, "saaq", "acct", "legacy-1")
	}},
	{"CreateInitialAccessToken", nil, func(ctx context.Context, s store.Store) error {
		return s.CreateInitialAccessToken(ctx, initialToken("w-iat"))
	}},
	{"RegisterClient", nil, func(ctx context.Context, s store.Store) error {
		return s.RegisterClient(ctx, fullClient("w-reg"), registration("w-reg", "w-iat"), t0)
	}},
	{"UpdateRegisteredClient", nil, func(ctx context.Context, s store.Store) error {
		c := fullClient("w-reg")
		c.Name = "renamed"
		return s.UpdateRegisteredClient(ctx, c, "rat-w-reg", "rat-w-reg-2", t0)
	}},
	{"RevokeInitialAccessToken", nil, func(ctx context.Context, s store.Store) error {
		return s.RevokeInitialAccessToken(ctx, "w-iat", t0)
	}},
	{"RedactEvents", nil, func(ctx context.Context, s store.Store) error {
		_, err := s.RedactEvents(ctx, t0.Add(time.Second), 1)
		return err
	}},
	{"SaveTreeHead", nil, func(ctx context.Context, s store.Store) error {
		return s.SaveTreeHead(ctx, &audit.TreeHead{TreeSize: 1, Timestamp: 1, KeyID: "k", Signature: []byte{1}})
	}},
}

// testAuditWithWrites checks that every write commits the events its
// context carries, once, in its own transaction.
func testAuditWithWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, w := range slices.Concat(auditWrites, authorisationWrites, adminWrites) {
		if w.prepare != nil {
			ok(t, w.prepare(ctx, s))
		}
		before, err := s.AuditSize(ctx)
		ok(t, err)
		wctx := audit.With(ctx, auditEvent(w.name), auditEvent(w.name+"-2"))
		if err := w.write(wctx, s); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if audit.Pending(wctx) {
			t.Fatalf("%s left its events pending", w.name)
		}
		rs, err := s.Events(ctx, before, before+10)
		ok(t, err)
		if got := details(rs); !slices.Equal(got, []string{w.name, w.name + "-2"}) {
			t.Fatalf("%s wrote events %v", w.name, got)
		}
	}
	// Events added inside a store callback go with its transaction.
	ok(t, s.CreateAuthCode(ctx, authCode("w-code-cb", "w-grant-cb", "rp", "sess")))
	cctx := audit.Recorder(ctx)
	ok(t, s.ExchangeCode(cctx, "w-code-cb", t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
		audit.Add(cctx, auditEvent("issued in callback"))
		g, rt := issue(c, false, "")
		return g, rt, nil
	}))
	rs := auditLog(t, s)
	if last := rs[len(rs)-1]; last.Detail != "issued in callback" {
		t.Fatalf("last event %q", last.Detail)
	}
}

// testAuditRollback checks that a write that fails drops its events, and
// that they are not written by the next write either.
func testAuditRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateClient(ctx, fullClient("rb")))
	ok(t, s.CreateAuthCode(ctx, authCode("rb-code", "rb-grant", "rb", "sess")))
	errIssue := errors.New("issue failed")
	fails := []struct {
		name  string
		write func(context.Context) error
		want  error
	}{
		{"duplicate client", func(ctx context.Context) error { return s.CreateClient(ctx, fullClient("rb")) }, sqin.ErrConflict},
		{"missing client", func(ctx context.Context) error { return s.DeleteClient(ctx, "rb-missing") }, sqin.ErrNotFound},
		{"missing grant", func(ctx context.Context) error { return s.RevokeGrant(ctx, "rb-missing", t0) }, sqin.ErrNotFound},
		{"missing auth request", func(ctx context.Context) error { return s.SetAuthRequestSession(ctx, "rb-missing", "s") }, sqin.ErrNotFound},
		{"missing code", func(ctx context.Context) error {
			return s.ExchangeCode(ctx, "rb-missing", t0, func(*sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				return nil, nil, errIssue
			})
		}, sqin.ErrNotFound},
		{"issue fails", func(ctx context.Context) error {
			return s.ExchangeCode(ctx, "rb-code", t0, func(*sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				audit.Add(ctx, auditEvent("added in a callback that fails"))
				return nil, nil, errIssue
			})
		}, errIssue},
		{"replayed single-use key", func(ctx context.Context) error {
			if err := s.UseOnce(context.Background(), "rb-jti", t0.Add(time.Hour), t0); err != nil {
				return err
			}
			return s.UseOnce(ctx, "rb-jti", t0.Add(time.Hour), t0)
		}, sqin.ErrReplay},
	}
	for _, f := range fails {
		wctx := audit.With(ctx, auditEvent("must not be written: "+f.name))
		checkErr(t, f.write(wctx), f.want)
		if audit.Pending(wctx) {
			t.Fatalf("%s: events still pending after a failed write", f.name)
		}
		ok(t, s.CreateSession(wctx, &sqin.Session{ID: "rb-" + f.name, ExpiresAt: t0.Add(time.Hour)}))
	}
	// An invalid event fails the write it goes with: no change without its
	// event.
	bad := auditEvent("bad")
	bad.Outcome = "maybe"
	isInvalid(t, s.CreateClient(audit.With(ctx, bad), fullClient("rb-2")))
	_, err := s.GetClient(ctx, "rb-2")
	isErr(t, err, sqin.ErrNotFound)
	isInvalid(t, s.AddSigningKey(audit.With(ctx, bad), &sqin.SigningKey{ID: "rb-key", Alg: "ES256"}, t0, time.Hour))
	keys, err := s.ListSigningKeys(ctx, t0)
	ok(t, err)
	if len(keys) != 0 {
		t.Fatal("a key was added without its event")
	}
	if rs := auditLog(t, s); len(rs) != 0 {
		t.Fatalf("events written: %v", details(rs))
	}
}

// testAuditConcurrent appends from many goroutines, alone and with other
// writes: the log holds 0..n-1 without gaps, every event once, and the
// events of one transaction next to each other.
func testAuditConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, rounds = 8, 12
	var mu sync.Mutex
	batches := map[string]int{} // first detail of a batch -> its length
	var seq atomic.Int64        // unique batch ids across workers
	errs := concurrently(workers, func() error {
		for r := range rounds {
			id := fmt.Sprintf("b%d", seq.Add(1))
			k := 1 + r%4
			var evs []*audit.Event
			for j := range k {
				e := auditEvent(fmt.Sprintf("%s/%d", id, j))
				evs = append(evs, &e)
			}
			var err error
			if r%2 == 0 {
				err = s.AppendEvents(ctx, evs...)
			} else {
				vals := make([]audit.Event, k)
				for j, e := range evs {
					vals[j] = *e
				}
				err = s.CreateSession(audit.With(ctx, vals...), &sqin.Session{ID: "conc-" + id, ExpiresAt: t0.Add(time.Hour)})
			}
			if err != nil {
				return err
			}
			mu.Lock()
			batches[id] = k
			mu.Unlock()
		}
		return nil
	})
	for _, err := range errs {
		ok(t, err)
	}
	// A store that queues a change's events (sqlstore on PostgreSQL) has
	// sequenced them by the time the change returns.
	if q, isQueue := s.(interface {
		AuditQueued(context.Context) (int64, error)
	}); isQueue {
		n, err := q.AuditQueued(ctx)
		ok(t, err)
		if n != 0 {
			t.Fatalf("%d events still queued after every write returned", n)
		}
	}
	rs := auditLog(t, s)
	total := 0
	for _, k := range batches {
		total += k
	}
	if len(rs) != total {
		t.Fatalf("%d events, want %d", len(rs), total)
	}
	for i := 0; i < len(rs); {
		id, _, _ := cut(rs[i].Detail)
		k := batches[id]
		for j := range k {
			if got := rs[i+j].Detail; got != fmt.Sprintf("%s/%d", id, j) {
				t.Fatalf("event %d is %q: batch %s not contiguous", i+j, got, id)
			}
		}
		delete(batches, id)
		i += k
	}
	if len(batches) != 0 {
		t.Fatalf("batches missing: %v", batches)
	}
}

func cut(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func testAuditTreeHeads(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.LatestTreeHead(ctx)
	isErr(t, err, sqin.ErrNotFound)
	heads, err := s.TreeHeads(ctx)
	ok(t, err)
	if len(heads) != 0 {
		t.Fatal("heads in an empty store")
	}
	mk := func(size uint64, sig byte) *audit.TreeHead {
		return &audit.TreeHead{TreeSize: size, Timestamp: 1767225600000 + int64(size), RootHash: audit.LeafHash([]byte{sig}),
			KeyID: "0011223344556677", Signature: []byte{sig, 2, 3}}
	}
	a, b, c := mk(10, 1), mk(0, 2), mk(1<<40, 3)
	for _, th := range []*audit.TreeHead{a, b, c} {
		ok(t, s.SaveTreeHead(ctx, th))
	}
	ok(t, s.SaveTreeHead(ctx, mk(10, 9))) // same size: the first stays
	latest, err := s.LatestTreeHead(ctx)
	ok(t, err)
	same(t, latest, c)
	heads, err = s.TreeHeads(ctx)
	ok(t, err)
	same(t, heads, []*audit.TreeHead{b, a, c})
}

func testAuditSubtrees(t *testing.T, s store.Store) {
	ctx := t.Context()
	f, err := s.SubtreeFrontier(ctx, audit.CacheLevel)
	ok(t, err)
	if f != 0 {
		t.Fatalf("frontier %d in an empty cache", f)
	}
	nodes := map[audit.NodeID]audit.Hash{}
	for i := range 40 {
		nodes[audit.NodeID{Level: audit.CacheLevel, Index: uint64(i)}] = audit.LeafHash([]byte{byte(i)})
	}
	nodes[audit.NodeID{Level: audit.CacheLevel + 1, Index: 3}] = audit.LeafHash([]byte("l9"))
	nodes[audit.NodeID{Level: 40, Index: 1<<50 + 7}] = audit.LeafHash([]byte("high"))
	ok(t, s.SaveSubtrees(ctx, nodes))
	ok(t, s.SaveSubtrees(ctx, map[audit.NodeID]audit.Hash{{Level: audit.CacheLevel, Index: 0}: {}})) // kept: first wins
	var ids []audit.NodeID
	for id := range nodes {
		ids = append(ids, id)
	}
	ids = append(ids, audit.NodeID{Level: audit.CacheLevel, Index: 999}, audit.NodeID{Level: 9, Index: 0})
	got, err := s.Subtrees(ctx, ids)
	ok(t, err)
	same(t, got, nodes)
	for level, want := range map[uint8]uint64{audit.CacheLevel: 40, audit.CacheLevel + 1: 4, 40: 1<<50 + 8, 12: 0} {
		f, err := s.SubtreeFrontier(ctx, level)
		ok(t, err)
		if f != want {
			t.Errorf("frontier at level %d = %d, want %d", level, f, want)
		}
	}
}

func testAuditRedact(t *testing.T, s store.Store) {
	ctx := t.Context()
	var evs []*audit.Event
	for i := range 10 {
		e := auditEvent(fmt.Sprint(i))
		e.Time = t0.Add(time.Duration(i) * time.Minute)
		evs = append(evs, &e)
	}
	ok(t, s.AppendEvents(ctx, evs...))
	retention := auditEvent("retention")
	retention.Actor, retention.Action = audit.Actor{Kind: audit.ActorSystem, ID: "retention"}, "audit.redacted"
	retention.Time = t0.Add(time.Hour)
	n, err := s.RedactEvents(audit.With(ctx, retention), t0.Add(5*time.Minute), 3)
	ok(t, err)
	if n != 3 {
		t.Fatalf("redacted %d, want 3 (the limit)", n)
	}
	n, err = s.RedactEvents(ctx, t0.Add(5*time.Minute), 100)
	ok(t, err)
	if n != 2 {
		t.Fatalf("redacted %d, want the 2 left before the time", n)
	}
	nothing := audit.With(ctx, retention)
	n, err = s.RedactEvents(nothing, t0.Add(5*time.Minute), 100)
	ok(t, err)
	if n != 0 || audit.Pending(nothing) {
		t.Fatalf("redacted %d again, events pending %v", n, audit.Pending(nothing))
	}
	rs := auditLog(t, s) // leaves still check
	if len(rs) != 11 || rs[10].Detail != "retention" || rs[10].Redacted {
		t.Fatalf("the retention event is not the last: %v", details(rs))
	}
	for i, r := range rs[:10] {
		redacted := i < 5
		if r.Redacted != redacted {
			t.Fatalf("event %d redacted = %v", i, r.Redacted)
		}
		if !redacted {
			continue
		}
		if r.RequestID != "" || r.Actor.ID != "" || r.Subject != "" || r.LegalBasis != "" || r.Detail != "" || r.Salt != nil {
			t.Fatalf("event %d keeps personal fields: %+v", i, r)
		}
		if r.PersonalDigest == nil || *r.PersonalDigest != evs[i].PersonalDigest() {
			t.Fatalf("event %d: personal digest not kept", i)
		}
		if r.Action != evs[i].Action || !slices.Equal(r.Attributes, evs[i].Attributes) || r.ClientID != "rp" || !r.Time.Equal(evs[i].Time) {
			t.Fatalf("event %d lost what it keeps: %+v", i, r)
		}
	}
	bySubject, err := s.EventsBySubject(ctx, "ps1.subject", 0, 100)
	ok(t, err)
	if len(bySubject) != 6 {
		t.Fatalf("%d events still found by subject, want 6", len(bySubject))
	}
}

// testAuditLog runs the log over the store: signed heads, proofs, the
// verifier.
func testAuditLog(t *testing.T, s store.Store) {
	ctx := t.Context()
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	log := audit.NewLog(s, key)
	th, err := log.SignTreeHead(ctx)
	ok(t, err)
	if th.TreeSize != 0 || th.RootHash != audit.EmptyRoot {
		t.Fatalf("empty head %+v", th)
	}
	var heads []*audit.TreeHead
	for round := range 4 {
		var evs []*audit.Event
		for i := range 150 * (round + 1) {
			e := auditEvent(fmt.Sprintf("%d-%d", round, i))
			evs = append(evs, &e)
		}
		ok(t, s.AppendEvents(ctx, evs...))
		th, err := log.SignTreeHead(ctx)
		ok(t, err)
		ok(t, th.Verify(key.Public()))
		heads = append(heads, th)
	}
	again, err := log.SignTreeHead(ctx)
	ok(t, err)
	same(t, again, heads[3])
	last := heads[3]
	for _, id := range []uint64{0, 255, 256, 700, last.TreeSize - 1} {
		p, err := log.Prove(ctx, id)
		ok(t, err)
		if err := audit.VerifyInclusion(p.Record.LeafHash, id, last.TreeSize, p.Hashes, last.RootHash); err != nil {
			t.Fatalf("inclusion of %d: %v", id, err)
		}
	}
	for i := range heads {
		for j := i; j < len(heads); j++ {
			a, b := heads[i], heads[j]
			p, err := log.ConsistencyProof(ctx, a.TreeSize, b.TreeSize)
			ok(t, err)
			if err := audit.VerifyConsistency(a.TreeSize, b.TreeSize, a.RootHash, b.RootHash, p); err != nil {
				t.Fatalf("consistency %d to %d: %v", a.TreeSize, b.TreeSize, err)
			}
		}
	}
	_, err = log.Prove(ctx, last.TreeSize)
	isErr(t, err, sqin.ErrNotFound)
	rep, err := audit.Verify(ctx, s, audit.VerifyOptions{PublicKeys: []crypto.PublicKey{key.Public()}, External: heads[:1], Chunk: 100})
	ok(t, err)
	if !rep.OK() || rep.TreeHeads != 6 || rep.Size != last.TreeSize || *rep.Root != last.RootHash {
		t.Fatalf("report %+v", rep)
	}
}
