package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

// testSessionConsent: GetSessionConsent reads what GetSession and
// GetConsent read, in one statement.
func testSessionConsent(t *testing.T, s store.Store) {
	ctx := t.Context()
	sess := &sqin.Session{ID: "sc-1", AccountID: "acct-sc", LoA: sqin.LoA2, AMR: []string{"pwd"},
		AuthTime: t0.Add(-time.Minute), CreatedAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(time.Hour)}
	ok(t, s.CreateSession(ctx, sess))
	con := &sqin.Consent{AccountID: "acct-sc", ClientID: "rp", Scopes: []string{"openid", "profile"},
		Claims: []string{"family_name", "given_name"}, GrantedAt: t0.Add(-time.Hour)}
	ok(t, s.SaveConsent(ctx, con))
	ok(t, s.SaveConsent(ctx, &sqin.Consent{AccountID: "acct-other", ClientID: "rp2", Scopes: []string{"openid"}, GrantedAt: t0}))

	got, gotCon, err := s.GetSessionConsent(ctx, "sc-1", "rp", t0)
	ok(t, err)
	same(t, got, sess)
	same(t, gotCon, con)
	// No consent to that client (another account's does not count).
	got, gotCon, err = s.GetSessionConsent(ctx, "sc-1", "rp2", t0)
	ok(t, err)
	same(t, got, sess)
	if gotCon != nil {
		t.Fatalf("consent %+v, want none", gotCon)
	}
	_, _, err = s.GetSessionConsent(ctx, "sc-1", "rp", sess.ExpiresAt)
	isErr(t, err, sqin.ErrNotFound)
	_, _, err = s.GetSessionConsent(ctx, "sc-missing", "rp", t0)
	isErr(t, err, sqin.ErrNotFound)
}

// testIssueCode: the code and the end of the request it answers in one
// write; without the request, no code.
func testIssueCode(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := func(hash string) *sqin.AuthCode { return authCode(hash, "g-"+hash, "rp", "sess") }
	exchange := func(hash string) error {
		return s.ExchangeCode(ctx, hash, t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
			g, rt := issue(c, false, "")
			return g, rt, nil
		})
	}

	// A pushed request (request_uri) answered on an SSO session.
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("ic-par", "rp")))
	ok(t, s.IssueCode(ctx, code("ic-1"), "ic-par", true, t0))
	_, err := s.GetAuthRequest(ctx, "ic-par", t0)
	isErr(t, err, sqin.ErrNotFound)
	ok(t, exchange("ic-1"))
	// Single use: the request is gone, so is the second code.
	isErr(t, s.IssueCode(ctx, code("ic-2"), "ic-par", true, t0), sqin.ErrNotFound)
	isErr(t, exchange("ic-2"), sqin.ErrNotFound)

	// A stored request, signed in by the code's session.
	stored := pushedRequest("ic-stored", "rp")
	stored.Pushed = false
	ok(t, s.CreateAuthRequest(ctx, stored))
	ok(t, s.SetAuthRequestSession(ctx, "ic-stored", "sess"))
	ok(t, s.IssueCode(ctx, code("ic-3"), "ic-stored", false, t0))
	isErr(t, s.IssueCode(ctx, code("ic-4"), "ic-stored", false, t0), sqin.ErrNotFound)
	ok(t, exchange("ic-3"))

	// Requests that a code may not answer: of another client, expired,
	// pushed but already carrying a session, stored but of another
	// session, or not what the caller says it is; none is deleted.
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("ic-other", "rp2")))
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("ic-old", "rp")))
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("ic-signed", "rp")))
	ok(t, s.SetAuthRequestSession(ctx, "ic-signed", "sess"))
	mine := pushedRequest("ic-mine", "rp")
	mine.Pushed = false
	ok(t, s.CreateAuthRequest(ctx, mine))
	ok(t, s.SetAuthRequestSession(ctx, "ic-mine", "sess-other"))
	for _, tc := range []struct {
		name, id string
		pushed   bool
		now      time.Time
	}{
		{"another client's", "ic-other", true, t0},
		{"expired", "ic-old", true, t0.Add(time.Minute)},
		{"pushed with a session", "ic-signed", true, t0},
		{"stored, of another session", "ic-mine", false, t0},
		{"stored, said pushed", "ic-mine", true, t0},
		{"pushed, said stored", "ic-other", false, t0},
		{"missing", "ic-missing", true, t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hash := "ic-code-" + tc.name
			isErr(t, s.IssueCode(ctx, code(hash), tc.id, tc.pushed, tc.now), sqin.ErrNotFound)
			isErr(t, exchange(hash), sqin.ErrNotFound)
		})
	}
	for _, id := range []string{"ic-other", "ic-old", "ic-signed", "ic-mine"} {
		if _, err := s.GetAuthRequest(ctx, id, t0); err != nil {
			t.Fatalf("request %s: %v", id, err)
		}
	}

	// Audit events commit with the code, and go with a refusal.
	before, err := s.AuditSize(ctx)
	ok(t, err)
	isErr(t, s.IssueCode(audit.With(ctx, auditEvent("no code")), code("ic-5"), "ic-par", true, t0), sqin.ErrNotFound)
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("ic-par-2", "rp")))
	wctx := audit.With(ctx, auditEvent("code"))
	ok(t, s.IssueCode(wctx, code("ic-6"), "ic-par-2", true, t0))
	rs, err := s.Events(ctx, before, before+10)
	ok(t, err)
	same(t, details(rs), []string{"code"})
}

// testIssueCodeConcurrent: of concurrent answers to one request, one
// stores its code.
func testIssueCodeConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("icc", "rp")))
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			h := "icc-" + string(rune('a'+i))
			errs[i] = s.IssueCode(ctx, authCode(h, "g-"+h, "rp", "sess"), "icc", true, t0)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else {
			isErr(t, err, sqin.ErrNotFound)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d answers to one request stored a code, want 1", wins, n)
	}
}
