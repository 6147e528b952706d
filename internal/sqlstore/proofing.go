package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/store"
)

var (
	qPutSecret = newQuery(`INSERT INTO proofing_secrets (secret_type, person_id, hash, delivered_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (secret_type, person_id) DO UPDATE SET hash = excluded.hash, delivered_at = excluded.delivered_at`)
	qGetSecret = newQuery(`SELECT hash FROM proofing_secrets WHERE secret_type = ? AND person_id = ?`)
)

// PutLocalSecrets stores delivered secret hashes in one transaction,
// replacing a person's previous hash of the same type.
func (db *DB) PutLocalSecrets(ctx context.Context, secrets []store.LocalSecret, now time.Time) error {
	const op = "sqlstore.PutLocalSecrets"
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, db.sql(qPutSecret))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, s := range secrets {
			if _, err := stmt.ExecContext(ctx, s.SecretType, s.PersonID, s.Hash, ms(now)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// LocalSecretHash returns the hash delivered for the person, or
// sqin.ErrNotFound.
func (db *DB) LocalSecretHash(ctx context.Context, secretType, personID string) ([]byte, error) {
	var h []byte
	if err := db.read.QueryRowContext(ctx, db.sql(qGetSecret), secretType, personID).Scan(&h); err != nil {
		return nil, wrap("sqlstore.LocalSecretHash", err)
	}
	return h, nil
}

// Secret deliveries (proofing.ImportSecrets, sqin proofing import).

var (
	qDeliveries = newQuery(`SELECT sequence, kind, sha256, status FROM proofing_deliveries
		WHERE source = ? AND secret_type = ?`)
	qBeginDelivery = newQuery(`INSERT INTO proofing_deliveries (source, secret_type, sequence, kind, sha256, records, status, started_at)
		VALUES (?, ?, ?, ?, ?, ?, 'running', ?)
		ON CONFLICT (source, secret_type, sequence) DO UPDATE SET kind = excluded.kind, sha256 = excluded.sha256,
			records = excluded.records, status = 'running', reason = '', started_at = excluded.started_at, finished_at = 0`)
	qDeleteSecret  = newQuery(`DELETE FROM proofing_secrets WHERE secret_type = ? AND person_id = ?`)
	qDropPrevious  = newQuery(`DELETE FROM proofing_secrets WHERE secret_type = ? AND source = ? AND sequence < ?`)
	qFinishDeliver = newQuery(`UPDATE proofing_deliveries SET status = 'done', stored = ?, removed = ?, dropped = ?, unknown = ?,
		rejected = ?, finished_at = ? WHERE source = ? AND secret_type = ? AND sequence = ? AND status = 'running'`)
	qRefuseDeliver = newQuery(`UPDATE proofing_deliveries SET status = 'refused', reason = ?, finished_at = ?
		WHERE source = ? AND secret_type = ? AND sequence = ?`)
)

// BeginSecretDelivery records d as running after proofing.NextDelivery
// allowed it against the source's deliveries of that type, in one
// transaction (a second importer waits for the first's decision).
func (db *DB) BeginSecretDelivery(ctx context.Context, d *proofing.SecretDelivery, now time.Time) (bool, error) {
	const op = "sqlstore.BeginSecretDelivery"
	done := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if db.dialect == Postgres {
			// Serialise importers of one source and type (no row to lock
			// before the first delivery).
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "proofing-delivery:"+d.Source+":"+d.SecretType); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, db.sql(qDeliveries), d.Source, d.SecretType)
		if err != nil {
			return err
		}
		var earlier []proofing.SecretDelivery
		for rows.Next() {
			var e proofing.SecretDelivery
			if err := rows.Scan(&e.Sequence, &e.Kind, &e.SHA256, &e.Status); err != nil {
				rows.Close()
				return err
			}
			earlier = append(earlier, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if done, err = proofing.NextDelivery(earlier, d); err != nil {
			return &sqin.Error{Code: sqin.EConflict, Message: err.Error(), Op: op, Err: err}
		}
		if done {
			return nil
		}
		_, err = tx.ExecContext(ctx, db.sql(qBeginDelivery), d.Source, d.SecretType, d.Sequence, d.Kind, d.SHA256, d.Records, ms(now))
		return err
	})
	return done, wrap(op, err)
}

// PersonsByHealthNumber matches health numbers to persons (not removed),
// as FindPersonByHealthNumber does one at a time.
func (db *DB) PersonsByHealthNumber(ctx context.Context, nams []string) (map[string]string, error) {
	const op = "sqlstore.PersonsByHealthNumber"
	out := make(map[string]string, len(nams))
	for len(nams) > 0 {
		n := min(len(nams), 500)
		chunk := nams[:n]
		nams = nams[n:]
		q := newQuery(`SELECT health_no, id FROM persons WHERE removed_import = 0 AND health_no IN (` +
			strings.TrimSuffix(strings.Repeat("?,", n), ",") + `) ORDER BY id`)
		args := make([]any, n)
		for i, s := range chunk {
			args[i] = s
		}
		rows, err := db.read.QueryContext(ctx, db.sql(q), args...)
		if err != nil {
			return nil, wrap(op, err)
		}
		for rows.Next() {
			var nam, id string
			if err := rows.Scan(&nam, &id); err != nil {
				rows.Close()
				return nil, wrap(op, err)
			}
			if _, seen := out[nam]; !seen { // the lowest id, as FindPersonByHealthNumber
				out[nam] = id
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, wrap(op, err)
		}
	}
	return out, nil
}

// ApplySecrets stores and removes one batch of a delivery in one
// transaction, in multi-row statements.
func (db *DB) ApplySecrets(ctx context.Context, d *proofing.SecretDelivery, put []store.LocalSecret, remove []string, now time.Time) error {
	const op = "sqlstore.ApplySecrets"
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		const per = 400 // rows per statement (6 parameters each)
		for len(put) > 0 {
			n := min(len(put), per)
			q := newQuery(`INSERT INTO proofing_secrets (secret_type, person_id, hash, delivered_at, source, sequence) VALUES ` +
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?),", n), ",") +
				` ON CONFLICT (secret_type, person_id) DO UPDATE SET hash = excluded.hash, delivered_at = excluded.delivered_at,
					source = excluded.source, sequence = excluded.sequence`)
			args := make([]any, 0, 6*n)
			for _, s := range put[:n] {
				args = append(args, s.SecretType, s.PersonID, s.Hash, ms(now), d.Source, d.Sequence)
			}
			if _, err := tx.ExecContext(ctx, db.sql(q), args...); err != nil {
				return err
			}
			put = put[n:]
		}
		for _, pid := range remove {
			if _, err := tx.ExecContext(ctx, db.sql(qDeleteSecret), d.SecretType, pid); err != nil {
				return err
			}
		}
		return nil
	}))
}

// FinishSecretDelivery ends a running delivery (a snapshot first drops
// the source's older secrets of its type) with the events of ctx.
func (db *DB) FinishSecretDelivery(ctx context.Context, d *proofing.SecretDelivery, c proofing.DeliveryCounts, now time.Time) (int64, error) {
	const op = "sqlstore.FinishSecretDelivery"
	var dropped int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if d.Kind == proofing.DeliverySnapshot {
			res, err := tx.ExecContext(ctx, db.sql(qDropPrevious), d.SecretType, d.Source, d.Sequence)
			if err != nil {
				return err
			}
			if dropped, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, db.sql(qFinishDeliver), c.Stored, c.Removed, dropped, c.Unknown, c.Rejected, ms(now),
			d.Source, d.SecretType, d.Sequence)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return cmp.Or(err, fail(op, sqin.ErrConflict, errors.New("the delivery is not running (another import finished it?)")))
		}
		return nil
	})
	return dropped, wrap(op, err)
}

// RefuseSecretDelivery marks a delivery refused.
func (db *DB) RefuseSecretDelivery(ctx context.Context, d *proofing.SecretDelivery, reason string, now time.Time) error {
	const op = "sqlstore.RefuseSecretDelivery"
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.sql(qRefuseDeliver), reason, ms(now), d.Source, d.SecretType, d.Sequence)
		return err
	}))
}

// HitAll records one event under each key in one transaction and returns
// each key's count in the window (proofing.MultiCounter): one commit for
// the prover's four limits. Callers give keys in one fixed order, so two
// transactions never wait on each other's rows crosswise. On SQLite,
// concurrent callers share a transaction (hitQueue); on PostgreSQL the
// transaction is one round trip (pgHitAll).
func (db *DB) HitAll(ctx context.Context, keys []string, d time.Duration, now time.Time) ([]int, error) {
	switch {
	case audit.Pending(ctx):
	case db.dialect == Postgres:
		counts, err := db.pgHitAll(ctx, keys, d, now)
		return counts, wrap("sqlstore.HitAll", err)
	default:
		counts, err := db.hits.do(ctx, db, keys, d, now)
		return counts, wrap("sqlstore.HitAll", err)
	}
	counts := make([]int, len(keys))
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		return db.hitKeys(ctx, tx, keys, d, now, counts)
	})
	return counts, wrap("sqlstore.HitAll", err)
}

// hitKeys records one event under each key in tx, each key's count in
// counts.
func (db *DB) hitKeys(ctx context.Context, tx *sql.Tx, keys []string, d time.Duration, now time.Time, counts []int) error {
	for i, k := range keys {
		n, err := db.hit(ctx, tx, k, d, now)
		if err != nil {
			return err
		}
		counts[i] = n
	}
	return nil
}

// hitQueue is SQLite's group commit of HitAll. SQLite has one writer: with
// 32 citizens each checking a secret, every check waited for the commits
// of all the checks queued before it (p99 27-34 ms in BenchmarkLocalCheck).
// Callers queue their keys; one goroutine takes everything queued, records
// it in one transaction in arrival order, commits once and answers each
// caller, then takes what queued meanwhile. Each caller's counts are what
// it would have seen alone after the callers before it, and its events
// commit before it gets them, as with a transaction of its own. When the
// shared transaction fails, each caller of the batch runs alone, so that
// one's error is not another's.
type hitQueue struct {
	mu      sync.Mutex
	queue   []*hitCall
	running bool
}

type hitCall struct {
	ctx    context.Context
	keys   []string
	d      time.Duration
	now    time.Time
	counts []int
	err    error
	done   chan struct{}
}

// hitBatchMax bounds the callers of one transaction (and so the wait of
// the first of them).
const hitBatchMax = 64

func (q *hitQueue) do(ctx context.Context, db *DB, keys []string, d time.Duration, now time.Time) ([]int, error) {
	c := &hitCall{ctx: ctx, keys: keys, d: d, now: now, counts: make([]int, len(keys)), done: make(chan struct{})}
	q.mu.Lock()
	q.queue = append(q.queue, c)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		// Not the caller's context: it may carry a recorder whose later
		// events commit must not take.
		go q.run(context.Background(), db)
	}
	select {
	case <-c.done:
		return c.counts, c.err
	case <-ctx.Done():
		// The events may still be recorded: an attempt that was made
		// counts.
		return nil, ctx.Err()
	}
}

// run commits batches until the queue is empty.
func (q *hitQueue) run(ctx context.Context, db *DB) {
	for {
		q.mu.Lock()
		n := min(len(q.queue), hitBatchMax)
		if n == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		batch := q.queue[:n:n]
		q.queue = q.queue[n:]
		if len(q.queue) == 0 {
			q.queue = nil
		}
		q.mu.Unlock()
		db.hitBatch(ctx, batch)
	}
}

// hitBatch records the batch's callers still waiting in one transaction,
// or, when it fails, each in a transaction of its own.
func (db *DB) hitBatch(ctx context.Context, batch []*hitCall) {
	live := batch[:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := spendContext(ctx)
	defer cancel()
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		for _, c := range live {
			if err := db.hitKeys(ctx, tx, c.keys, c.d, c.now, c.counts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(live) > 1 {
		for _, c := range live {
			c.err = db.inTx(ctx, func(tx *sql.Tx) error {
				return db.hitKeys(ctx, tx, c.keys, c.d, c.now, c.counts)
			})
			close(c.done)
		}
		return
	}
	for _, c := range live {
		c.err = err
		close(c.done)
	}
}
