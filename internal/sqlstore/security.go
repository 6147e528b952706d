package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

var (
	qUseOnce = newQuery(`INSERT INTO used_once (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`)
	// A row past its expiry no longer blocks: it may be replaced.
	qUseOnceExpired = newQuery(`UPDATE used_once SET expires_at = ? WHERE key = ? AND expires_at <= ?`)
	qSetLegacySub   = newQuery(`INSERT INTO legacy_subjects (sector, account_id, sub) VALUES (?, ?, ?)`)
	qGetLegacySub   = newQuery(`SELECT sub FROM legacy_subjects WHERE sector = ? AND account_id = ?`)
)

// UseOnce records key until expiresAt; a key already recorded and not yet
// expired is sqin.ErrReplay. Safe across instances: the primary key decides.
func (db *DB) UseOnce(ctx context.Context, key string, expiresAt, now time.Time) error {
	const op = "sqlstore.UseOnce"
	ok, err := db.exec(ctx, qUseOnce, key, ms(expiresAt))
	if err != nil {
		return wrap(op, err)
	}
	if ok {
		return nil
	}
	ok, err = db.exec(ctx, qUseOnceExpired, ms(expiresAt), key, ms(now))
	if err != nil {
		return wrap(op, err)
	}
	if !ok {
		return fail(op, sqin.ErrReplay, nil)
	}
	return nil
}

// SetLegacySubject records the sub a sector already used for an account; a
// second value for the pair, or a sub already given to another account of
// the sector, is sqin.ErrConflict.
func (db *DB) SetLegacySubject(ctx context.Context, sector, accountID, sub string) error {
	_, err := db.exec(ctx, qSetLegacySub, sector, accountID, sub)
	return wrap("sqlstore.SetLegacySubject", err)
}

// GetLegacySubject returns the legacy sub, or sqin.ErrNotFound.
func (db *DB) GetLegacySubject(ctx context.Context, sector, accountID string) (string, error) {
	var sub string
	err := db.read.QueryRowContext(ctx, db.sql(qGetLegacySub), sector, accountID).Scan(&sub)
	if err != nil {
		return "", wrap("sqlstore.GetLegacySubject", err)
	}
	return sub, nil
}

// useOnceAllQueries holds the UseOnceAll statement for 1 to
// len(useOnceAllQueries) keys; more keys build theirs.
var useOnceAllQueries = func() (qs [4]query) {
	for i := range qs {
		qs[i] = useOnceAllQuery(i + 1)
	}
	return qs
}()

// useOnceAllQuery inserts n keys; a key present but expired is taken over
// (the WHERE of DO UPDATE), one present and live is left alone. RETURNING
// names the keys recorded.
func useOnceAllQuery(n int) query {
	var b strings.Builder
	b.WriteString(`INSERT INTO used_once (key, expires_at) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?)")
	}
	b.WriteString(` ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
		WHERE used_once.expires_at <= ? RETURNING key`)
	return newQuery(b.String())
}

// errReplayed rolls back a UseOnceAll transaction that carries audit
// events when a key was a replay.
var errReplayed = errors.New("sqlstore: replayed key")

// UseOnceAll records the keys that are new or expired at now in one
// statement and returns the others. When ctx carries audit events they are
// committed with the keys if none is a replay; otherwise they are dropped
// and the new keys are recorded without them.
func (db *DB) UseOnceAll(ctx context.Context, keys []store.OnceKey, now time.Time) ([]string, error) {
	const op = "sqlstore.UseOnceAll"
	var replays []string
	uniq := make([]store.OnceKey, 0, len(keys))
	for _, k := range keys {
		if slices.ContainsFunc(uniq, func(u store.OnceKey) bool { return u.Key == k.Key }) {
			replays = append(replays, k.Key)
			continue
		}
		uniq = append(uniq, k)
	}
	if len(uniq) == 0 {
		return replays, nil
	}
	q := useOnceAllQuery(len(uniq))
	if len(uniq) <= len(useOnceAllQueries) {
		q = useOnceAllQueries[len(uniq)-1]
	}
	args := make([]any, 0, 2*len(uniq)+1)
	for _, k := range uniq {
		args = append(args, k.Key, ms(k.ExpiresAt))
	}
	args = append(args, ms(now))
	recorded := make([]string, 0, len(uniq))
	run := func(w interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}) error {
		recorded = recorded[:0]
		rows, err := w.QueryContext(ctx, db.sql(q), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			recorded = append(recorded, k)
		}
		return rows.Err()
	}
	var err error
	if audit.Pending(ctx) {
		err = db.inTx(ctx, func(tx *sql.Tx) error {
			if err := run(tx); err != nil {
				return err
			}
			if len(recorded) < len(uniq) || len(replays) > 0 {
				return errReplayed
			}
			return nil
		})
		if errors.Is(err, errReplayed) {
			err = run(db.write) // the events went with the rollback
		}
	} else {
		err = run(db.write)
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	for _, k := range uniq {
		if !slices.Contains(recorded, k.Key) {
			replays = append(replays, k.Key)
		}
	}
	return replays, nil
}
