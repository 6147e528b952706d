package storetest

import (
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
