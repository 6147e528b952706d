package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

// backchannelClient is a full client that registered only a back-channel
// URI when front is false, and both URIs otherwise.
func backchannelClient(id string, front bool) *sqin.Client {
	c := fullClient(id)
	if !front {
		c.FrontchannelLogoutURI = ""
	}
	return c
}

func testEndSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	both := fullClient("rp-both")
	front := fullClient("rp-front")
	front.BackchannelLogoutURI = ""
	plain := fullClient("rp-plain")
	plain.BackchannelLogoutURI, plain.FrontchannelLogoutURI = "", ""
	elsewhere := fullClient("rp-elsewhere")
	for _, c := range []*sqin.Client{both, front, plain, elsewhere} {
		ok(t, s.CreateClient(ctx, c))
	}
	ok(t, s.CreateSession(ctx, &sqin.Session{ID: "sess", AccountID: "acct", ExpiresAt: t0.Add(time.Hour)}))
	online := issueGrant(t, s, "code-1", "grant-online", "rp-both", "sess", false)
	offline := issueGrant(t, s, "code-2", "grant-offline", "rp-both", "sess", true)
	issueGrant(t, s, "code-3", "grant-front", "rp-front", "sess", false)
	issueGrant(t, s, "code-4", "grant-plain", "rp-plain", "sess", false)
	other := issueGrant(t, s, "code-5", "grant-other", "rp-elsewhere", "sess-other", false)
	// A grant already revoked still tells which services knew the session.
	ok(t, s.RevokeGrant(ctx, "grant-front", t0))

	now := t0.Add(time.Minute)
	ended, err := s.EndSession(ctx, "sess", now, 0)
	ok(t, err)
	same(t, ended.Clients, []*sqin.Client{both, front, plain})
	if len(ended.Enqueued) != 1 || ended.Enqueued[0].ID == 0 {
		t.Fatalf("enqueued %+v, want one delivery with an ID", ended.Enqueued)
	}
	want := &store.LogoutDelivery{ID: ended.Enqueued[0].ID, ClientID: "rp-both", AccountID: "acct",
		SessionID: "sess", CreatedAt: now, NextAttemptAt: now}
	same(t, ended.Enqueued[0], want)
	same(t, ended.Evicted, 0)

	// As DeleteSession: the session is gone, its online grants revoked.
	_, err = s.GetSession(ctx, "sess", t0)
	isErr(t, err, sqin.ErrNotFound)
	for _, tc := range []struct {
		grant   *sqin.Grant
		revoked time.Time
	}{
		{online, now},
		{offline, time.Time{}},
		{other, time.Time{}},
	} {
		g, err := s.GetGrant(ctx, tc.grant.ID)
		ok(t, err)
		same(t, g.RevokedAt, tc.revoked)
	}

	// Ending it again while the delivery waits adds none.
	again, err := s.EndSession(ctx, "sess", now.Add(time.Second), 0)
	ok(t, err)
	same(t, again.Clients, []*sqin.Client{both, front, plain})
	same(t, again.Enqueued, []*store.LogoutDelivery(nil))
	n, err := s.CountLogouts(ctx)
	ok(t, err)
	same(t, n, 1)

	// Once delivered, a later end of the same session is told again.
	claimed, err := s.ClaimLogouts(ctx, now, time.Minute, 10)
	ok(t, err)
	same(t, len(claimed), 1)
	ok(t, s.CompleteLogout(ctx, claimed[0].ID, claimed[0].Attempts))
	again, err = s.EndSession(ctx, "sess", now.Add(2*time.Second), 0)
	ok(t, err)
	same(t, len(again.Enqueued), 1)

	// Unknown sessions end without error and without deliveries.
	none, err := s.EndSession(ctx, "sess-unknown", now, 0)
	ok(t, err)
	same(t, none, &store.EndedSession{})
	_, err = s.EndSession(ctx, "", now, 0)
	if sqin.ErrorCode(err) != sqin.EInvalid {
		t.Fatalf("EndSession with no ID: %v, want an invalid error", err)
	}
}

// endSessions gives each session a grant of client and ends it at t0+i s.
func endSessions(t *testing.T, s store.Store, client string, limit int, sessions ...string) []*store.EndedSession {
	t.Helper()
	var out []*store.EndedSession
	for i, sess := range sessions {
		issueGrant(t, s, "code-"+client+"-"+sess, "grant-"+client+"-"+sess, client, sess, false)
		ended, err := s.EndSession(t.Context(), sess, t0.Add(time.Duration(i)*time.Second), limit)
		ok(t, err)
		out = append(out, ended)
	}
	return out
}

// queuedSessions claims every delivery due by far (its lease is short) and
// returns their session IDs, sorted.
func queuedSessions(t *testing.T, s store.Store) []string {
	t.Helper()
	ds, err := s.ClaimLogouts(t.Context(), t0.Add(24*time.Hour), time.Millisecond, 1000)
	ok(t, err)
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.SessionID+"@"+d.ClientID)
	}
	slices.Sort(ids)
	return ids
}

func testLogoutQueueLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateClient(ctx, backchannelClient("rp-1", false)))
	ok(t, s.CreateClient(ctx, backchannelClient("rp-2", false)))
	const limit = 3
	for _, e := range endSessions(t, s, "rp-1", limit, "s1", "s2", "s3") {
		same(t, e.Evicted, 0)
	}
	// Full: the oldest delivery makes room for the new one.
	e := endSessions(t, s, "rp-1", limit, "s4")[0]
	same(t, e.Evicted, 1)
	same(t, len(e.Enqueued), 1)
	n, err := s.CountLogouts(ctx)
	ok(t, err)
	same(t, n, limit)

	// A session known to two services takes two places.
	issueGrant(t, s, "code-s5", "grant-s5", "rp-2", "s5", false)
	e = endSessions(t, s, "rp-1", limit, "s5")[0]
	same(t, e.Evicted, 2)
	same(t, len(e.Enqueued), 2)
	same(t, queuedSessions(t, s), []string{"s4@rp-1", "s5@rp-1", "s5@rp-2"})

	// Without a limit, nothing is evicted.
	e = endSessions(t, s, "rp-1", 0, "s6")[0]
	same(t, e.Evicted, 0)
	n, err = s.CountLogouts(ctx)
	ok(t, err)
	same(t, n, limit+1)
}

func testClaimLogouts(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateClient(ctx, backchannelClient("rp", false)))
	ended := endSessions(t, s, "rp", 0, "s1", "s2") // due at t0 and t0+1s
	d1, d2 := ended[0].Enqueued[0], ended[1].Enqueued[0]
	const lease = time.Minute

	got, err := s.ClaimLogouts(ctx, t0, lease, 10)
	ok(t, err)
	want := *d1
	want.Attempts, want.NextAttemptAt = 1, t0.Add(lease)
	same(t, got, []*store.LogoutDelivery{&want})

	// The leased one is not claimed again; the other has fallen due.
	got, err = s.ClaimLogouts(ctx, t0.Add(2*time.Second), lease, 10)
	ok(t, err)
	if len(got) != 1 || got[0].ID != d2.ID || got[0].Attempts != 1 {
		t.Fatalf("second claim: %+v, want %d only", got, d2.ID)
	}

	// A failure makes it due again later, with its reason.
	isErr(t, s.RetryLogout(ctx, d1.ID, 0, t0.Add(10*time.Second), "stale"), sqin.ErrNotFound)
	ok(t, s.RetryLogout(ctx, d1.ID, 1, t0.Add(10*time.Second), "HTTP 503"))
	got, err = s.ClaimLogouts(ctx, t0.Add(5*time.Second), lease, 10)
	ok(t, err)
	same(t, len(got), 0)
	got, err = s.ClaimLogouts(ctx, t0.Add(10*time.Second), lease, 10)
	ok(t, err)
	want.Attempts, want.NextAttemptAt, want.LastError = 2, t0.Add(10*time.Second+lease), "HTTP 503"
	same(t, got, []*store.LogoutDelivery{&want})

	// Only the current claim completes.
	isErr(t, s.CompleteLogout(ctx, d1.ID, 1), sqin.ErrNotFound)
	ok(t, s.CompleteLogout(ctx, d1.ID, 2))
	isErr(t, s.CompleteLogout(ctx, d1.ID, 2), sqin.ErrNotFound)

	// A lease that runs out lets another claimer take the delivery; the
	// first claimer's late answer then changes nothing.
	got, err = s.ClaimLogouts(ctx, t0.Add(2*time.Second+lease), lease, 10)
	ok(t, err)
	if len(got) != 1 || got[0].ID != d2.ID || got[0].Attempts != 2 {
		t.Fatalf("claim after the lease: %+v", got)
	}
	isErr(t, s.CompleteLogout(ctx, d2.ID, 1), sqin.ErrNotFound)
	isErr(t, s.RetryLogout(ctx, d2.ID, 1, t0, "late"), sqin.ErrNotFound)
	ok(t, s.CompleteLogout(ctx, d2.ID, 2))
	n, err := s.CountLogouts(ctx)
	ok(t, err)
	same(t, n, 0)

	got, err = s.ClaimLogouts(ctx, t0.Add(time.Hour), lease, 0)
	ok(t, err)
	same(t, len(got), 0)
}

func testClaimLogoutsConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 40
	for i := range n {
		id := fmt.Sprintf("rp-%02d", i)
		ok(t, s.CreateClient(ctx, backchannelClient(id, false)))
		issueGrant(t, s, "code-"+id, "grant-"+id, id, "sess", false)
	}
	ended, err := s.EndSession(ctx, "sess", t0, 0)
	ok(t, err)
	same(t, len(ended.Enqueued), n)

	var mu sync.Mutex
	seen := map[int64]int{}
	claim := func() error {
		ds, err := s.ClaimLogouts(ctx, t0, time.Minute, 3)
		mu.Lock()
		defer mu.Unlock()
		for _, d := range ds {
			seen[d.ID]++
		}
		return err
	}
	for _, err := range concurrently(concurrency, claim) {
		ok(t, err)
	}
	for len(seen) < n { // claimers may have skipped rows others held
		before := len(seen)
		ok(t, claim())
		if len(seen) == before {
			break
		}
	}
	if len(seen) != n {
		t.Fatalf("%d deliveries claimed, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("delivery %d claimed %d times", id, k)
		}
	}
}
