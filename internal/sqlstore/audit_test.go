package sqlstore

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

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
			refused = append(refused, "TRUNCATE audit_events", "TRUNCATE audit_tree_heads", "TRUNCATE audit_state")
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
