package sqlstore

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/audittest"
)

var testAuditKey = ed25519.NewKeyFromSeed(make([]byte, 32))

func rng0() *rand.Rand { return rand.New(rand.NewPCG(0, 0)) }

// tamperer changes audit rows with SQL, as a database administrator
// would: it first takes away the triggers that guard the tables.
type tamperer struct{ db *DB }

func newTamperer(t testing.TB, db *DB) *tamperer {
	ctx := context.Background()
	var stmts []string
	if db.dialect == SQLite {
		for _, tr := range []string{"audit_state_grows", "audit_state_kept", "audit_events_no_delete",
			"audit_events_only_redaction", "audit_tree_heads_no_update", "audit_tree_heads_no_delete", "audit_subtrees_no_update"} {
			stmts = append(stmts, "DROP TRIGGER "+tr)
		}
	} else {
		for _, tbl := range []string{"audit_state", "audit_events", "audit_tree_heads", "audit_subtrees"} {
			stmts = append(stmts, "ALTER TABLE "+tbl+" DISABLE TRIGGER USER")
		}
	}
	for _, s := range stmts {
		if _, err := db.write.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return &tamperer{db}
}

func (tp *tamperer) exec(ctx context.Context, q string, args ...any) error {
	_, err := tp.db.write.ExecContext(ctx, tp.db.sql(newQuery(q)), args...)
	return err
}

var tamperColumns = []string{"at", "request_id", "actor_kind", "actor_id", "action", "subject", "client_id",
	"public_body", "legal_basis", "attributes", "outcome", "detail", "salt", "leaf_hash", "personal_digest"}

func (tp *tamperer) SetColumn(ctx context.Context, id uint64, column string, value any) error {
	if !slices.Contains(tamperColumns, column) {
		return fmt.Errorf("no column %q", column)
	}
	return tp.exec(ctx, "UPDATE audit_events SET "+column+" = ? WHERE seq = ?", value, int64(id))
}

func (tp *tamperer) Delete(ctx context.Context, id uint64) error {
	return tp.exec(ctx, "DELETE FROM audit_events WHERE seq = ?", int64(id))
}

func (tp *tamperer) Swap(ctx context.Context, i, j uint64, withLeafHashes bool) error {
	leaves, err := tp.db.LeafHashes(ctx, i, i+1)
	if err != nil {
		return err
	}
	lj, err := tp.db.LeafHashes(ctx, j, j+1)
	if err != nil {
		return err
	}
	for _, step := range [][2]int64{{int64(i), -1}, {int64(j), int64(i)}, {-1, int64(j)}} {
		if err := tp.exec(ctx, "UPDATE audit_events SET seq = ? WHERE seq = ?", step[1], step[0]); err != nil {
			return err
		}
	}
	if withLeafHashes {
		return nil
	}
	if err := tp.SetColumn(ctx, i, "leaf_hash", leaves[0][:]); err != nil {
		return err
	}
	return tp.SetColumn(ctx, j, "leaf_hash", lj[0][:])
}

func (tp *tamperer) Insert(ctx context.Context, r *audit.Record) error {
	var personal any
	if r.PersonalDigest != nil {
		personal = r.PersonalDigest[:]
	}
	return tp.exec(ctx, "INSERT INTO audit_events ("+auditCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		int64(r.ID), r.Time.UnixMilli(), r.RequestID, r.Actor.Kind, r.Actor.ID, r.Action, r.Subject, r.ClientID,
		r.PublicBody, r.LegalBasis, strings.Join(r.Attributes, " "), r.Outcome, r.Detail, r.Salt, personal,
		r.LeafHash[:], r.Redacted)
}

func (tp *tamperer) Shift(ctx context.Context, from uint64, delta int64) error {
	const far = 1 << 40 // out of the way, so that no two rows share a number meanwhile
	if err := tp.exec(ctx, "UPDATE audit_events SET seq = seq + ? WHERE seq >= ?", far+delta, int64(from)); err != nil {
		return err
	}
	return tp.exec(ctx, "UPDATE audit_events SET seq = seq - ? WHERE seq >= ?", int64(far), int64(far/2))
}

func (tp *tamperer) SetSize(ctx context.Context, n uint64) error {
	return tp.exec(ctx, "UPDATE audit_state SET size = ?", int64(n))
}

func (tp *tamperer) SetTreeHeadRoot(ctx context.Context, size uint64, root audit.Hash) error {
	return tp.exec(ctx, "UPDATE audit_tree_heads SET root_hash = ? WHERE tree_size = ?", root[:], int64(size))
}

// TestAuditTamper runs the tampering suite on each dialect: random logs,
// random tampering with SQL, and the verifier must name what changed.
func TestAuditTamper(t *testing.T) {
	rounds := map[string]int{SQLite: 70, Postgres: 28}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			audittest.RunTamper(t, rounds[d.name], 7, func(t *testing.T) (audit.Storage, audittest.Tamperer) {
				db := openTest(t, d.url(t))
				return db, newTamperer(t, db)
			})
		})
	}
}

// TestAuditGuards checks that the triggers refuse every change to the
// audit tables but appending and redaction.
func TestAuditGuards(t *testing.T) {
	forEach(t, t.Run, func(t *testing.T, db *DB) {
		ctx := t.Context()
		evs := []*audit.Event{audittest.RandomEvent(rng0(), 0), audittest.RandomEvent(rng0(), 1)}
		if err := db.AppendEvents(ctx, evs...); err != nil {
			t.Fatal(err)
		}
		log := audit.NewLog(db, testAuditKey)
		if _, err := log.SignTreeHead(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.SaveSubtrees(ctx, map[audit.NodeID]audit.Hash{{Level: audit.CacheLevel}: {}}); err != nil {
			t.Fatal(err)
		}
		refused := []string{
			"DELETE FROM audit_events WHERE seq = 0",
			"UPDATE audit_events SET detail = 'x' WHERE seq = 0",
			"UPDATE audit_events SET seq = 5 WHERE seq = 1",
			"UPDATE audit_events SET leaf_hash = salt WHERE seq = 0",
			// Redaction may not touch what it keeps.
			"UPDATE audit_events SET request_id = '', actor_id = '', subject = '', legal_basis = '', detail = '', salt = NULL, personal_digest = leaf_hash, redacted = ?, action = 'x.y' WHERE seq = 0",
			"UPDATE audit_state SET size = 0",
			"DELETE FROM audit_state",
			"DELETE FROM audit_tree_heads",
			"UPDATE audit_tree_heads SET root_hash = signature",
			"UPDATE audit_subtrees SET hash = hash",
		}
		if db.dialect == Postgres {
			refused = append(refused, "TRUNCATE audit_events", "TRUNCATE audit_tree_heads", "TRUNCATE audit_state",
				"TRUNCATE audit_queue")
		}
		for _, q := range refused {
			var args []any
			if strings.Contains(q, "?") {
				args = append(args, true)
			}
			if _, err := db.write.ExecContext(ctx, db.sql(newQuery(q)), args...); err == nil {
				t.Errorf("%s: allowed", q)
			}
		}
		if n, err := db.RedactEvents(ctx, audittest.T0.Add(time.Second), 10); err != nil || n != 1 {
			t.Fatalf("redaction: %d, %v", n, err)
		}
		rep, err := audit.Verify(ctx, db, audit.VerifyOptions{PublicKeys: []crypto.PublicKey{testAuditKey.Public()}})
		if err != nil || !rep.OK() || rep.Redacted != 1 {
			t.Fatalf("after the refused changes: %+v, %v", rep, err)
		}
	})
}

// TestAuditQueue: on PostgreSQL a change's events go through audit_queue.
// Two handles on one database (two server instances) writing at once give
// one gap-free log in which each transaction's events are contiguous and in
// order, with nothing left queued once the writes have returned. Events an
// instance left queued (it stopped between its commit and the sequencing)
// are not in the log, and reach it at the next round of any instance.
func TestAuditQueue(t *testing.T) {
	ctx := t.Context()
	db0, db1 := twoInstances(t)

	left := []*audit.Event{audittest.RandomEvent(rng0(), 0), audittest.RandomEvent(rng0(), 1)}
	left[0].Detail, left[1].Detail = "left/0", "left/1"
	tx, err := db0.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db0.queueEvents(ctx, tx, left); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// An event queued by a plain INSERT (as an older version queued them):
	// the round numbers and hashes what the queue holds.
	legacy := audittest.RandomEvent(rng0(), 2)
	legacy.Detail = "legacy/0"
	if err := prepareEvents([]*audit.Event{legacy}); err != nil {
		t.Fatal(err)
	}
	if _, err := db0.write.ExecContext(ctx, `INSERT INTO audit_queue (`+queueCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, legacy.Time.UnixMilli(), legacy.RequestID,
		legacy.Actor.Kind, legacy.Actor.ID, legacy.Action, legacy.Subject, legacy.ClientID, legacy.PublicBody,
		legacy.LegalBasis, strings.Join(legacy.Attributes, " "), legacy.Outcome, legacy.Detail, legacy.Salt); err != nil {
		t.Fatal(err)
	}
	if n, err := db0.AuditSize(ctx); err != nil || n != 0 {
		t.Fatalf("queued events in the log before sequencing: size %d, %v", n, err)
	}
	if n, err := db1.AuditQueued(ctx); err != nil || n != 3 {
		t.Fatalf("%d queued, %v", n, err)
	}
	if _, err := db0.write.ExecContext(ctx, "UPDATE audit_queue SET detail = 'x'"); err == nil {
		t.Fatal("a queued event was changed")
	}

	const workers, rounds = 4, 10
	var (
		mu      sync.Mutex
		batches = map[string]int{"left": 2, "legacy": 1}
		wg      sync.WaitGroup
		errs    = make(chan error, 2*workers)
	)
	for i, db := range []*DB{db0, db1} {
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					id := fmt.Sprintf("i%dw%dr%d", i, w, r)
					k := 1 + r%3
					evs := make([]audit.Event, k)
					for j := range evs {
						evs[j] = *audittest.RandomEvent(rand.New(rand.NewPCG(uint64(i), uint64(w*rounds+r))), j)
						evs[j].Detail = fmt.Sprintf("%s/%d", id, j)
					}
					s := &sqin.Session{ID: "q-" + id, ExpiresAt: time.Now().Add(time.Hour)}
					if err := db.CreateSession(audit.With(ctx, evs...), s); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					batches[id] = k
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, err := db0.AuditQueued(ctx); err != nil || n != 0 {
		t.Fatalf("%d events still queued after the writes returned, %v", n, err)
	}
	size, err := db0.AuditSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := db0.Events(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, k := range batches {
		total += k
	}
	if len(rs) != total || size != uint64(total) {
		t.Fatalf("size %d, %d events read, want %d", size, len(rs), total)
	}
	for i := 0; i < len(rs); {
		id, _, _ := strings.Cut(rs[i].Detail, "/")
		k, ok := batches[id]
		if !ok {
			t.Fatalf("event %d (%q): unknown or repeated batch", i, rs[i].Detail)
		}
		for j := range k {
			if rs[i+j].ID != uint64(i+j) || rs[i+j].Detail != fmt.Sprintf("%s/%d", id, j) {
				t.Fatalf("event %d is %d %q: batch %s not contiguous", i+j, rs[i+j].ID, rs[i+j].Detail, id)
			}
		}
		delete(batches, id)
		i += k
	}
	rep, err := audit.Verify(ctx, db1, audit.VerifyOptions{})
	if err != nil || !rep.OK() || rep.Size != uint64(total) {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	if n, err := db1.SequenceAudit(ctx); err != nil || n != 0 {
		t.Fatalf("a round with nothing queued moved %d, %v", n, err)
	}
}

// twoInstances opens a fresh PostgreSQL test database twice, as two server
// instances sharing it would; both are closed when t ends.
func twoInstances(t *testing.T) (*DB, *DB) {
	url := postgresURL(t)
	db0 := openTest(t, url)
	db1, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db1.Close() })
	return db0, db1
}
