package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
	"github.com/sqin/sqin/internal/store"
)

// TestDurableBySequencer: when no sequencing round can be waited for (here
// the caller's context has ended), a change committed without waiting for
// the disk is made durable by a durable commit of its own: the WAL is
// flushed past everything written before the call returns.
func TestDurableBySequencer(t *testing.T) {
	db := openTest(t, postgresURL(t))
	ctx := t.Context()
	if _, err := db.execUnflushed(ctx, newQuery(`INSERT INTO used_once (key, expires_at) VALUES (?, ?)`),
		"durable-test", int64(1)); err != nil {
		t.Fatal(err)
	}
	var written string
	if err := db.read.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&written); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.durableBySequencer(done); err != nil {
		t.Fatal(err)
	}
	var flushed bool
	if err := db.read.QueryRowContext(ctx, `SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn`, written).Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	if !flushed {
		t.Fatalf("the WAL is not flushed past %s", written)
	}
}

// pipelineGrant makes an account, a code and its grant with refresh token rt.
func pipelineGrant(t *testing.T, db *DB, code, rt string) {
	ctx := t.Context()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	acct := &sqin.Account{ID: "acct-" + code, Email: code + "@example.test", LoA: sqin.LoA1, Locale: "en",
		PasswordHash: "$x", CreatedAt: t0, UpdatedAt: t0}
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	c := &sqin.AuthCode{Hash: code, ClientID: "rp", AccountID: acct.ID, SessionID: "s", RedirectURI: "https://rp/cb",
		Scopes: []string{"openid"}, CodeChallenge: "x", LoA: sqin.LoA1, AuthTime: t0, GrantID: "g-" + code,
		ExpiresAt: time.Now().Add(time.Hour)}
	if err := db.CreateAuthCode(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := db.ExchangeCode(ctx, code, time.Now(), func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
		g := &sqin.Grant{ID: c.GrantID, ClientID: c.ClientID, AccountID: c.AccountID, SessionID: c.SessionID,
			Scopes: c.Scopes, LoA: c.LoA, AuthTime: c.AuthTime, CreatedAt: t0, ExpiresAt: time.Now().Add(time.Hour)}
		return g, &sqin.RefreshToken{Hash: rt, GrantID: g.ID, ClientID: c.ClientID, CreatedAt: t0, ExpiresAt: g.ExpiresAt}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Concurrent rotations of one refresh token from two instances: one wins,
// every other one is a replay and the grant ends revoked; the log verifies.
func TestPipelineConcurrentRotations(t *testing.T) {
	ctx := t.Context()
	db0, db1 := twoInstances(t)
	for round := range 5 {
		code := "rv-code-" + string(rune('a'+round))
		rt := "rv-rt-" + string(rune('a'+round))
		pipelineGrant(t, db0, code, rt)
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			db := []*DB{db0, db1}[i%2]
			wg.Go(func() {
				<-start
				ev := audittest.RandomEvent(rng0(), i)
				ev.Time = time.Time{}
				ev.Salt = nil
				wctx := audit.With(ctx, *ev)
				errs[i] = db.RotateRefresh(wctx, rt, time.Now(), []store.OnceKey{{Key: rt + "-k" + string(rune('a'+i)), ExpiresAt: time.Now().Add(time.Hour)}}, "sec",
					func(r *sqin.RefreshToken, g *sqin.Grant, h store.Holder) (*sqin.RefreshToken, error) {
						return &sqin.RefreshToken{Hash: rt + "-next-" + string(rune('a'+i)), GrantID: g.ID, ClientID: r.ClientID,
							CreatedAt: time.Now(), ExpiresAt: g.ExpiresAt}, nil
					})
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, sqin.ErrReplay):
			default:
				t.Errorf("unexpected error %v", err)
			}
		}
		if wins != 1 {
			t.Errorf("%d wins", wins)
		}
		g, err := db0.GetGrant(ctx, "g-"+code)
		if err != nil || g.RevokedAt.IsZero() {
			t.Errorf("grant not revoked after reuse: %+v %v", g, err)
		}
	}
	if q, _ := db0.AuditQueued(ctx); q != 0 {
		t.Errorf("%d still queued", q)
	}
	rep, err := audit.Verify(ctx, db0, audit.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify %+v %v", rep, err)
	}
}

// TestPipelineCancelInDecide: a request whose context ends between the
// two pipelines commits nothing, leaves no connection in a transaction,
// and still spends its single-use keys; the token stays usable.
func TestPipelineCancelInDecide(t *testing.T) {
	ctx := t.Context()
	db := openTest(t, postgresURL(t))
	pipelineGrant(t, db, "cx-code0", "cx-rt0")
	for i := range 10 {
		key := fmt.Sprintf("cx-k%d", i)
		cctx, cancel := context.WithCancel(ctx)
		wctx := audit.With(cctx, *audittest.RandomEvent(rng0(), i))
		err := db.RotateRefresh(wctx, "cx-rt0", time.Now(), []store.OnceKey{{Key: key, ExpiresAt: time.Now().Add(time.Hour)}}, "sec",
			func(r *sqin.RefreshToken, g *sqin.Grant, h store.Holder) (*sqin.RefreshToken, error) {
				cancel()
				return &sqin.RefreshToken{Hash: "cx-next", GrantID: g.ID, ClientID: r.ClientID, CreatedAt: time.Now(), ExpiresAt: g.ExpiresAt}, nil
			})
		cancel()
		if err == nil {
			t.Fatalf("round %d: a rotation cancelled before its commit succeeded", i)
		}
		if err := db.UseOnce(ctx, key, time.Now().Add(time.Hour), time.Now()); !errors.Is(err, sqin.ErrReplay) {
			t.Fatalf("round %d: the cancelled request's key was not spent: %v", i, err)
		}
	}
	var inTx int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE state LIKE 'idle in transaction%' AND datname = current_database()`).Scan(&inTx); err != nil {
		t.Fatal(err)
	}
	if inTx != 0 {
		t.Errorf("%d connections idle in transaction", inTx)
	}
	if err := db.RotateRefresh(ctx, "cx-rt0", time.Now(), nil, "sec",
		func(r *sqin.RefreshToken, g *sqin.Grant, h store.Holder) (*sqin.RefreshToken, error) {
			return &sqin.RefreshToken{Hash: "cx-next2", GrantID: g.ID, ClientID: r.ClientID, CreatedAt: time.Now(), ExpiresAt: g.ExpiresAt}, nil
		}); err != nil {
		t.Fatalf("the token after cancelled rotations: %v", err)
	}
}

// More than sequenceBatch queued transactions, sequenced while standalone
// batches are appended: everything moves, contiguous, and verifies.
func TestSequenceManyQueued(t *testing.T) {
	ctx := t.Context()
	db, db1 := twoInstances(t)
	for i := range 1300 {
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		evs := []*audit.Event{audittest.RandomEvent(rng0(), i), audittest.RandomEvent(rng0(), i+1)}
		if err := db.queueEvents(ctx, tx, evs); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := db1.AppendEvents(ctx, audittest.RandomEvent(rng0(), i), audittest.RandomEvent(rng0(), i+1)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	n, err := db.SequenceAudit(ctx)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := db.AuditQueued(ctx); q != 0 || n != 2600 {
		t.Errorf("queued %d moved %d", q, n)
	}
	rep, err := audit.Verify(ctx, db, audit.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("verify %+v %v", rep, err)
	}
}
