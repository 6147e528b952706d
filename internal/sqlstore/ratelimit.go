package sqlstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqin/sqin"
)

// Rate limits count events in buckets of 1/buckets of the window, one row
// per key and bucket. A window counts every bucket it overlaps, so an event
// may count for up to one bucket longer than the window, never shorter: the
// limit errs on the strict side. Use each key with one window only.
const buckets = 30

var (
	// qHit adds one to the current bucket and returns it with the sum of
	// the window's older buckets, in one statement.
	qHit = newQuery(`INSERT INTO rate_limits (key, bucket, hits, expires_at) VALUES (?, ?, 1, ?)
		ON CONFLICT (key, bucket) DO UPDATE SET hits = rate_limits.hits + 1
		RETURNING hits, (SELECT COALESCE(SUM(r.hits), 0) FROM rate_limits r
			WHERE r.key = ? AND r.bucket > ? AND r.bucket < ?)`)
	// qHitDrop is qHit that also drops the key's buckets older than the
	// window when it starts a bucket, in one statement (PostgreSQL: SQLite
	// has no DELETE in a WITH clause).
	qHitDrop = newQuery(`WITH up AS (INSERT INTO rate_limits (key, bucket, hits, expires_at) VALUES (?, ?, 1, ?)
			ON CONFLICT (key, bucket) DO UPDATE SET hits = rate_limits.hits + 1 RETURNING hits),
		gone AS (DELETE FROM rate_limits WHERE key = ? AND bucket <= ? AND (SELECT hits FROM up) = 1)
		SELECT (SELECT hits FROM up), (SELECT COALESCE(SUM(r.hits), 0) FROM rate_limits r
			WHERE r.key = ? AND r.bucket > ? AND r.bucket < ?)`)
	qCountHits = newQuery(`SELECT COALESCE(SUM(hits), 0) FROM rate_limits
		WHERE key = ? AND bucket > ? AND bucket <= ?`)
	qDropBuckets = newQuery(`DELETE FROM rate_limits WHERE key = ? AND bucket <= ?`)
	qResetHits   = newQuery(`DELETE FROM rate_limits WHERE key = ?`)
)

// window returns, in milliseconds, the start of the bucket that holds now,
// the start at or below which buckets are out of the window ending at now,
// and the size of the buckets.
func window(op string, d time.Duration, now time.Time) (bucket, start, size int64, err error) {
	if d <= 0 {
		return 0, 0, 0, &sqin.Error{Code: sqin.EInvalid, Op: op, Message: "rate limit window must be positive"}
	}
	size = max(d.Milliseconds()/buckets, 1)
	t := ms(now)
	return t - t%size, t - d.Milliseconds() - size, size, nil
}

// hit records one event for key through w and returns how many the window
// ending at now holds, this one included. The first hit of a bucket drops
// the key's buckets that have left the window.
func (db *DB) hit(ctx context.Context, w sqlWriter, key string, d time.Duration, now time.Time) (int, error) {
	const op = "sqlstore.Hit"
	bucket, start, size, err := window(op, d, now)
	if err != nil {
		return 0, err
	}
	var current, older int64
	if db.dialect == Postgres {
		err := w.QueryRowContext(ctx, db.sql(qHitDrop), hitDropArgs(key, bucket, start, size, d)...).Scan(&current, &older)
		return int(current + older), wrap(op, err)
	}
	err = w.QueryRowContext(ctx, db.sql(qHit), key, bucket, bucket+size+d.Milliseconds(),
		key, start, bucket).Scan(&current, &older)
	if err != nil {
		return 0, wrap(op, err)
	}
	if current == 1 {
		if _, err := w.ExecContext(ctx, db.sql(qDropBuckets), key, start); err != nil {
			return 0, wrap(op, err)
		}
	}
	return int(current + older), nil
}

// Count returns the events in the window ending at now.
func (db *DB) Count(ctx context.Context, key string, d time.Duration, now time.Time) (int, error) {
	const op = "sqlstore.Count"
	_, start, _, err := window(op, d, now)
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.read.QueryRowContext(ctx, db.sql(qCountHits), key, start, ms(now)).Scan(&n)
	return int(n), wrap(op, err)
}

// Reset forgets the key's events.
func (db *DB) Reset(ctx context.Context, key string) error {
	_, err := db.writeExec(ctx, qResetHits, key)
	return wrap("sqlstore.Reset", err)
}

// hitDropArgs are qHitDrop's arguments.
func hitDropArgs(key string, bucket, start, size int64, d time.Duration) []any {
	return []any{key, bucket, bucket + size + d.Milliseconds(), key, start, key, start, bucket}
}

// pgHitAll is HitAll on PostgreSQL in one round trip: one pipeline of
// BEGIN, one qHitDrop per key and COMMIT, an implicit transaction either
// way (a failed statement rolls the whole pipeline back).
func (db *DB) pgHitAll(ctx context.Context, keys []string, d time.Duration, now time.Time) ([]int, error) {
	bucket, start, size, err := window("sqlstore.Hit", d, now)
	if err != nil {
		return nil, err
	}
	counts := make([]int, len(keys))
	err = db.withPgConn(ctx, func(c *pgx.Conn) error {
		b := new(pgx.Batch)
		b.BeginTx(pgx.TxOptions{})
		for i, k := range keys {
			b.Queue(db.sql(qHitDrop), hitDropArgs(k, bucket, start, size, d)...).QueryRow(func(r pgx.Row) error {
				var current, older int64
				if err := r.Scan(&current, &older); err != nil {
					return err
				}
				counts[i] = int(current + older)
				return nil
			})
		}
		b.Queue("commit")
		return c.SendBatch(ctx, b).Close()
	})
	return counts, err
}
