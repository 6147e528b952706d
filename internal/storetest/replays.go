package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

// testReplayBatches covers the one-statement forms of the security
// profile's single-use checks: UseOnceAll and TakePushedRequest.
func testReplayBatches(t *testing.T, s store.Store) {
	t.Run("UseOnceAll", func(t *testing.T) { testUseOnceAll(t, s) })
	t.Run("UseOnceAllConcurrent", func(t *testing.T) { testUseOnceAllConcurrent(t, s) })
	t.Run("UseOnceAllAudit", func(t *testing.T) { testUseOnceAllAudit(t, s) })
	t.Run("TakePushedRequest", func(t *testing.T) { testTakePushedRequest(t, s) })
	t.Run("TakePushedRequestConcurrent", func(t *testing.T) { testTakePushedRequestConcurrent(t, s) })
	t.Run("RedeemCode", func(t *testing.T) { testRedeemCode(t, s) })
	t.Run("RedeemCodeConcurrent", func(t *testing.T) { testRedeemCodeConcurrent(t, s) })
	t.Run("RotateRefresh", func(t *testing.T) { testRotateRefresh(t, s) })
	t.Run("PushAuthRequest", func(t *testing.T) { testPushAuthRequest(t, s) })
}

func onceKeys(exp time.Time, names ...string) []store.OnceKey {
	ks := make([]store.OnceKey, len(names))
	for i, n := range names {
		ks[i] = store.OnceKey{Key: n, ExpiresAt: exp}
	}
	return ks
}

func wantReplays(t *testing.T, got []string, err error, want ...string) {
	t.Helper()
	ok(t, err)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("replays %q, want %q", got, want)
	}
}

func testUseOnceAll(t *testing.T, s store.Store) {
	ctx := t.Context()
	exp := t0.Add(time.Minute)
	got, err := s.UseOnceAll(ctx, onceKeys(exp, "all:a", "all:b"), t0)
	wantReplays(t, got, err)
	// Both are now recorded, for UseOnce too.
	isErr(t, s.UseOnce(ctx, "all:a", exp, t0), sqin.ErrReplay)
	isErr(t, s.UseOnce(ctx, "all:b", exp, t0), sqin.ErrReplay)
	// A replayed key is named; the new one beside it is still recorded.
	got, err = s.UseOnceAll(ctx, onceKeys(exp, "all:c", "all:a"), t0.Add(time.Second))
	wantReplays(t, got, err, "all:a")
	got, err = s.UseOnceAll(ctx, onceKeys(exp, "all:c"), t0.Add(time.Second))
	wantReplays(t, got, err, "all:c")
	// A key recorded by UseOnce is a replay here as well.
	ok(t, s.UseOnce(ctx, "all:d", exp, t0))
	got, err = s.UseOnceAll(ctx, onceKeys(exp, "all:d", "all:b"), t0)
	wantReplays(t, got, err, "all:d", "all:b")
	// A key given twice in one call is a replay the second time.
	got, err = s.UseOnceAll(ctx, onceKeys(exp, "all:e", "all:e"), t0)
	wantReplays(t, got, err, "all:e")
	isErr(t, s.UseOnce(ctx, "all:e", exp, t0), sqin.ErrReplay)
	// Expired keys no longer block and are recorded again with their new
	// expiry; a live one beside them still does.
	later := t0.Add(2 * time.Minute)
	ok(t, s.UseOnce(ctx, "all:f", later.Add(time.Minute), t0))
	got, err = s.UseOnceAll(ctx, onceKeys(later.Add(time.Minute), "all:a", "all:b", "all:f"), later)
	wantReplays(t, got, err, "all:f")
	got, err = s.UseOnceAll(ctx, onceKeys(later.Add(time.Minute), "all:a", "all:b"), later.Add(30*time.Second))
	wantReplays(t, got, err, "all:a", "all:b")
	// Many keys (beyond the prepared statements) and none.
	many := make([]string, 7)
	for i := range many {
		many[i] = "all:many-" + string(rune('0'+i))
	}
	got, err = s.UseOnceAll(ctx, onceKeys(exp, many...), t0)
	wantReplays(t, got, err)
	got, err = s.UseOnceAll(ctx, onceKeys(exp, many...), t0)
	wantReplays(t, got, err, many...)
	got, err = s.UseOnceAll(ctx, nil, t0)
	wantReplays(t, got, err)
}

// testUseOnceAllConcurrent: of concurrent calls that share a key, exactly
// one records it, whatever other keys they carry.
func testUseOnceAllConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 16
	exp := t0.Add(time.Minute)
	var wg sync.WaitGroup
	results := make([][]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			own := "race-own:" + string(rune('a'+i))
			results[i], errs[i] = s.UseOnceAll(ctx, onceKeys(exp, own, "race:shared"), t0)
		})
	}
	wg.Wait()
	wins := 0
	for i := range n {
		ok(t, errs[i])
		switch {
		case len(results[i]) == 0:
			wins++
		case !slices.Equal(results[i], []string{"race:shared"}):
			t.Fatalf("call %d: replays %q", i, results[i])
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent calls recorded the shared key, want 1", wins, n)
	}
}

// testUseOnceAllAudit: events the context carries go with the keys when
// none is a replay, and are dropped (the new keys still recorded) when one
// is.
func testUseOnceAllAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	exp := t0.Add(time.Minute)
	before, err := s.AuditSize(ctx)
	ok(t, err)
	wctx := audit.With(ctx, auditEvent("once-all"))
	got, err := s.UseOnceAll(wctx, onceKeys(exp, "aud:a", "aud:b"), t0)
	wantReplays(t, got, err)
	if audit.Pending(wctx) {
		t.Fatal("events left pending")
	}
	rs, err := s.Events(ctx, before, before+10)
	ok(t, err)
	if d := details(rs); !slices.Equal(d, []string{"once-all"}) {
		t.Fatalf("events %v", d)
	}
	wctx = audit.With(ctx, auditEvent("must not be written"))
	got, err = s.UseOnceAll(wctx, onceKeys(exp, "aud:c", "aud:a"), t0)
	wantReplays(t, got, err, "aud:a")
	if audit.Pending(wctx) {
		t.Fatal("events left pending after a replay")
	}
	isErr(t, s.UseOnce(ctx, "aud:c", exp, t0), sqin.ErrReplay)
	rs, err = s.Events(ctx, before, before+10)
	ok(t, err)
	if d := details(rs); !slices.Equal(d, []string{"once-all"}) {
		t.Fatalf("events after a replay %v", d)
	}
}

func pushedRequest(id, clientID string) *sqin.AuthRequest {
	return &sqin.AuthRequest{ID: id, ClientID: clientID, RedirectURI: "https://rp.example/cb", State: "st",
		Nonce: "n", Scopes: []string{"openid", "profile"}, Claims: `{"userinfo":{"email":null}}`,
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Prompt: []string{"consent"}, MaxAge: 300,
		ACRValues: []string{"urn:sqin:loa:2"}, DPoPJKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		Pushed: true, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
}

func testTakePushedRequest(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := pushedRequest("par-1", "rp")
	ok(t, s.CreateAuthRequest(ctx, r))
	// Another client cannot take it, nor spend it.
	_, err := s.TakePushedRequest(ctx, "par-1", "thief", t0)
	isErr(t, err, sqin.ErrNotFound)
	got, err := s.TakePushedRequest(ctx, "par-1", "rp", t0.Add(time.Second))
	ok(t, err)
	same(t, got, r)
	// Single use, and gone from the store.
	_, err = s.TakePushedRequest(ctx, "par-1", "rp", t0.Add(time.Second))
	isErr(t, err, sqin.ErrNotFound)
	_, err = s.GetAuthRequest(ctx, "par-1", t0)
	isErr(t, err, sqin.ErrNotFound)
	// Expired: refused and left to pruning.
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("par-2", "rp")))
	_, err = s.TakePushedRequest(ctx, "par-2", "rp", t0.Add(time.Minute))
	isErr(t, err, sqin.ErrNotFound)
	// Not pushed, or already carrying a session: not a request_uri.
	plain := pushedRequest("par-3", "rp")
	plain.Pushed = false
	ok(t, s.CreateAuthRequest(ctx, plain))
	_, err = s.TakePushedRequest(ctx, "par-3", "rp", t0)
	isErr(t, err, sqin.ErrNotFound)
	_, err = s.GetAuthRequest(ctx, "par-3", t0)
	ok(t, err)
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("par-4", "rp")))
	ok(t, s.SetAuthRequestSession(ctx, "par-4", "sess"))
	_, err = s.TakePushedRequest(ctx, "par-4", "rp", t0)
	isErr(t, err, sqin.ErrNotFound)
	_, err = s.TakePushedRequest(ctx, "par-missing", "rp", t0)
	isErr(t, err, sqin.ErrNotFound)
}

// testTakePushedRequestConcurrent: one of concurrent redemptions gets the
// request.
func testTakePushedRequestConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateAuthRequest(ctx, pushedRequest("par-race", "rp")))
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := s.TakePushedRequest(ctx, "par-race", "rp", t0)
			errs <- err
		}()
	}
	wins := 0
	for range n {
		if err := <-errs; err == nil {
			wins++
		} else {
			isErr(t, err, sqin.ErrNotFound)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent redemptions succeeded, want 1", wins, n)
	}
}

// replayedKeys checks that err is a *store.ReplayedKeys naming want.
func replayedKeys(t *testing.T, err error, want ...string) {
	t.Helper()
	var rk *store.ReplayedKeys
	if !errors.As(err, &rk) {
		t.Fatalf("error %v, want replayed keys %q", err, want)
	}
	if errors.Is(err, sqin.ErrReplay) {
		t.Fatalf("replayed keys %v also match sqin.ErrReplay (a replayed code)", err)
	}
	wantReplays(t, rk.Keys, nil, want...)
}

// spent checks that every key is recorded (a replay for UseOnce).
func spent(t *testing.T, s store.Store, keys ...string) {
	t.Helper()
	for _, k := range keys {
		isErr(t, s.UseOnce(t.Context(), k, t0.Add(time.Minute), t0), sqin.ErrReplay)
	}
}

// redeem redeems code with the once keys named, as the token endpoint does
// (grant "g-"+code, refresh token "rt-"+code), and returns the holder seen.
func redeem(s store.Store, t *testing.T, code string, keys ...string) (store.Holder, error) {
	var seen store.Holder
	err := s.RedeemCode(t.Context(), code, t0, onceKeys(t0.Add(time.Minute), keys...), "sector-1",
		func(c *sqin.AuthCode, h store.Holder) (*sqin.Grant, *sqin.RefreshToken, error) {
			seen = h
			g, rt := issue(c, false, "rt-"+code)
			return g, rt, nil
		})
	return seen, err
}

// testRedeemCode: RedeemCode records the request's keys in the exchange's
// transaction: a replayed key leaves the code unused, and the keys are
// spent whatever the outcome; the holder is read for issue.
func testRedeemCode(t *testing.T, s store.Store) {
	ctx := t.Context()
	acct := &sqin.Account{ID: "acct-redeem", Email: "redeem@example.test", EmailVerified: true, LoA: sqin.LoA2,
		PasswordHash: "$argon2id$h", PersonID: "p-redeem", Locale: "fr", CreatedAt: t0, UpdatedAt: t0}
	ok(t, s.CreateAccount(ctx, acct))
	acct.PasswordHash = "" // no token needs it: the holder is read without it
	ok(t, s.SetLegacySubject(ctx, "sector-1", acct.ID, "legacy-redeem"))
	code := func(hash, accountID string) {
		c := authCode(hash, "g-"+hash, "rp", "sess")
		c.AccountID = accountID
		ok(t, s.CreateAuthCode(ctx, c))
	}

	code("rc-1", acct.ID)
	h, err := redeem(s, t, "rc-1", "rc:a1", "rc:d1")
	ok(t, err)
	same(t, h, store.Holder{Account: acct, Legacy: "legacy-redeem"})
	spent(t, s, "rc:a1", "rc:d1")
	if _, err := s.GetGrant(ctx, "g-rc-1"); err != nil {
		t.Fatalf("grant of a redeemed code: %v", err)
	}

	// A replayed key: nothing happens to the code, the new key is spent.
	code("rc-2", acct.ID)
	_, err = redeem(s, t, "rc-2", "rc:a1", "rc:d2")
	replayedKeys(t, err, "rc:a1")
	spent(t, s, "rc:d2")
	_, err = s.GetGrant(ctx, "g-rc-2")
	isErr(t, err, sqin.ErrNotFound)
	// A key given twice in one request is a replay too.
	_, err = redeem(s, t, "rc-2", "rc:twice", "rc:twice")
	replayedKeys(t, err, "rc:twice")
	spent(t, s, "rc:twice")
	// The code is still good for a request with fresh keys.
	_, err = redeem(s, t, "rc-2", "rc:a2", "rc:d3")
	ok(t, err)

	// Any other failure spends the keys too: a missing code, an error of
	// issue (nothing written), a replayed code (its grant revoked).
	_, err = redeem(s, t, "rc-missing", "rc:a3")
	isErr(t, err, sqin.ErrNotFound)
	spent(t, s, "rc:a3")
	code("rc-3", "acct-missing")
	refused := errors.New("refused by issue")
	err = s.RedeemCode(ctx, "rc-3", t0, onceKeys(t0.Add(time.Minute), "rc:a4"), "sector-1",
		func(c *sqin.AuthCode, h store.Holder) (*sqin.Grant, *sqin.RefreshToken, error) {
			if h.Account != nil || h.Legacy != "" {
				t.Errorf("holder of a missing account: %+v", h)
			}
			return nil, nil, refused
		})
	if !errors.Is(err, refused) {
		t.Fatalf("error of issue: %v", err)
	}
	spent(t, s, "rc:a4")
	_, err = s.GetGrant(ctx, "g-rc-3")
	isErr(t, err, sqin.ErrNotFound)
	_, err = redeem(s, t, "rc-3", "rc:a5")
	ok(t, err)
	_, err = redeem(s, t, "rc-1", "rc:a6")
	isErr(t, err, sqin.ErrReplay)
	spent(t, s, "rc:a6")
	g, err := s.GetGrant(ctx, "g-rc-1")
	ok(t, err)
	if g.RevokedAt.IsZero() {
		t.Fatal("a replayed code left its grant alive")
	}
	// A replayed key wins over a replayed code: the grant is not revoked
	// by a request that fails client authentication.
	_, err = redeem(s, t, "rc-2", "rc:a2")
	replayedKeys(t, err, "rc:a2")
	g, err = s.GetGrant(ctx, "g-rc-2")
	ok(t, err)
	if !g.RevokedAt.IsZero() {
		t.Fatal("a request with a replayed key revoked a grant")
	}
	// Without keys, and a holder whose sector has no legacy sub.
	code("rc-4", acct.ID)
	err = s.RedeemCode(ctx, "rc-4", t0, nil, "sector-2",
		func(c *sqin.AuthCode, h store.Holder) (*sqin.Grant, *sqin.RefreshToken, error) {
			same(t, h, store.Holder{Account: acct})
			g, rt := issue(c, false, "")
			return g, rt, nil
		})
	ok(t, err)

	// Audit events commit with the redemption, and go with a replay.
	before, err := s.AuditSize(ctx)
	ok(t, err)
	code("rc-5", acct.ID)
	wctx := audit.With(ctx, auditEvent("redeem refused"))
	err = s.RedeemCode(wctx, "rc-5", t0, onceKeys(t0.Add(time.Minute), "rc:a1"), "sector-1",
		func(c *sqin.AuthCode, h store.Holder) (*sqin.Grant, *sqin.RefreshToken, error) {
			t.Error("issue called despite a replayed key")
			return nil, nil, nil
		})
	replayedKeys(t, err, "rc:a1")
	wctx = audit.With(ctx, auditEvent("redeemed"))
	err = s.RedeemCode(wctx, "rc-5", t0, onceKeys(t0.Add(time.Minute), "rc:a7"), "sector-1",
		func(c *sqin.AuthCode, h store.Holder) (*sqin.Grant, *sqin.RefreshToken, error) {
			g, rt := issue(c, false, "")
			return g, rt, nil
		})
	ok(t, err)
	if audit.Pending(wctx) {
		t.Fatal("events left pending")
	}
	rs, err := s.Events(ctx, before, before+10)
	ok(t, err)
	if d := details(rs); !slices.Equal(d, []string{"redeemed"}) {
		t.Fatalf("events %v", d)
	}
}

// testRedeemCodeConcurrent: of concurrent redemptions of different codes
// that share a key (one client assertion sent with several codes), one
// succeeds and the others leave their code unused.
func testRedeemCodeConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 16
	for i := range n {
		ok(t, s.CreateAuthCode(ctx, authCode("rcc-"+string(rune('a'+i)), "g-rcc-"+string(rune('a'+i)), "rp", "sess")))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = redeem(s, t, "rcc-"+string(rune('a'+i)), "rcc:shared", "rcc:own-"+string(rune('a'+i)))
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		if err == nil {
			wins++
			continue
		}
		replayedKeys(t, err, "rcc:shared")
		_, gerr := s.GetGrant(ctx, "g-rcc-"+string(rune('a'+i)))
		isErr(t, gerr, sqin.ErrNotFound)
	}
	if wins != 1 {
		t.Fatalf("%d of %d redemptions sharing a key succeeded, want 1", wins, n)
	}
}

// testRotateRefresh: RotateRefresh records the keys in the rotation's
// transaction and reads the holder; a replayed key leaves the token as it
// is.
func testRotateRefresh(t *testing.T, s store.Store) {
	ctx := t.Context()
	acct := &sqin.Account{ID: "acct-rot", Email: "rot@example.test", LoA: sqin.LoA1, Locale: "en", PasswordHash: "$argon2id$r",
		CreatedAt: t0, UpdatedAt: t0}
	ok(t, s.CreateAccount(ctx, acct))
	acct.PasswordHash = ""
	ok(t, s.SetLegacySubject(ctx, "sector-1", acct.ID, "legacy-rot"))
	c := authCode("rr-code", "g-rr", "rp", "sess")
	c.AccountID = acct.ID
	ok(t, s.CreateAuthCode(ctx, c))
	ok(t, s.ExchangeCode(ctx, "rr-code", t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
		g, rt := issue(c, true, "rr-1")
		return g, rt, nil
	}))
	rotate := func(token, next, sector string, keys ...string) (store.Holder, *sqin.Grant, error) {
		var h store.Holder
		var g *sqin.Grant
		err := s.RotateRefresh(ctx, token, t0.Add(time.Second), onceKeys(t0.Add(time.Minute), keys...), sector,
			func(rt *sqin.RefreshToken, gr *sqin.Grant, hd store.Holder) (*sqin.RefreshToken, error) {
				h, g = hd, gr
				return &sqin.RefreshToken{Hash: next, GrantID: gr.ID, ClientID: rt.ClientID, CreatedAt: t0, ExpiresAt: gr.ExpiresAt}, nil
			})
		return h, g, err
	}
	h, g, err := rotate("rr-1", "rr-2", "sector-1", "rr:a1", "rr:d1")
	ok(t, err)
	same(t, h, store.Holder{Account: acct, Legacy: "legacy-rot"})
	if g.ID != "g-rr" || g.AccountID != acct.ID {
		t.Fatalf("grant %+v", g)
	}
	spent(t, s, "rr:a1", "rr:d1")
	// A replayed key: the token is not rotated (nor its grant revoked).
	_, _, err = rotate("rr-2", "rr-3", "sector-1", "rr:a1", "rr:d2")
	replayedKeys(t, err, "rr:a1")
	spent(t, s, "rr:d2")
	_, err = s.GetRefreshToken(ctx, "rr-3")
	isErr(t, err, sqin.ErrNotFound)
	h, _, err = rotate("rr-2", "rr-3", "sector-2", "rr:a2")
	ok(t, err)
	same(t, h, store.Holder{Account: acct})
	// A rotation whose write fails (the next token's hash is taken) is
	// rolled back whole: the token stays unused; its keys are spent.
	if _, _, err = rotate("rr-3", "rr-1", "sector-1", "rr:a6"); err == nil {
		t.Fatal("a rotation to a taken hash succeeded")
	}
	spent(t, s, "rr:a6")
	if rt, err := s.GetRefreshToken(ctx, "rr-3"); err != nil || !rt.UsedAt.IsZero() {
		t.Fatalf("after a failed rotation: %+v, %v", rt, err)
	}
	// Failures spend the keys: an unknown token, a rotated one (reuse
	// revokes the grant).
	_, _, err = rotate("rr-missing", "x", "sector-1", "rr:a3")
	isErr(t, err, sqin.ErrNotFound)
	_, _, err = rotate("rr-1", "x", "sector-1", "rr:a4")
	isErr(t, err, sqin.ErrReplay)
	spent(t, s, "rr:a3", "rr:a4")
	_, _, err = rotate("rr-3", "rr-4", "sector-1", "rr:a5")
	isErr(t, err, sqin.ErrRevoked)
	spent(t, s, "rr:a5")
}

// testPushAuthRequest: the pushed request and the pushing request's keys
// in one transaction.
func testPushAuthRequest(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := pushedRequest("push-1", "rp")
	ok(t, s.PushAuthRequest(ctx, r, onceKeys(t0.Add(time.Minute), "push:a1", "push:d1"), t0))
	got, err := s.GetAuthRequest(ctx, "push-1", t0)
	ok(t, err)
	same(t, got, r)
	spent(t, s, "push:a1", "push:d1")
	// A replayed key: nothing is stored but the new key.
	err = s.PushAuthRequest(ctx, pushedRequest("push-2", "rp"), onceKeys(t0.Add(time.Minute), "push:d2", "push:a1"), t0)
	replayedKeys(t, err, "push:a1")
	spent(t, s, "push:d2")
	_, err = s.GetAuthRequest(ctx, "push-2", t0)
	isErr(t, err, sqin.ErrNotFound)
	// A taken ID fails and still spends the keys.
	isErr(t, s.PushAuthRequest(ctx, pushedRequest("push-1", "rp"), onceKeys(t0.Add(time.Minute), "push:a3"), t0), sqin.ErrConflict)
	spent(t, s, "push:a3")
	// Only pushed requests.
	plain := pushedRequest("push-3", "rp")
	plain.Pushed = false
	if err := s.PushAuthRequest(ctx, plain, nil, t0); sqin.ErrorCode(err) != sqin.EInvalid {
		t.Fatalf("a request that is not pushed: %v", err)
	}
	// Without keys.
	ok(t, s.PushAuthRequest(ctx, pushedRequest("push-4", "rp"), nil, t0))
	_, err = s.TakePushedRequest(ctx, "push-4", "rp", t0)
	ok(t, err)
}
