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

// uniqueKeys splits keys into the first of each key and the repeats, which
// are replays.
func uniqueKeys(keys []store.OnceKey) (uniq []store.OnceKey, repeats []string) {
	uniq = make([]store.OnceKey, 0, len(keys))
	for _, k := range keys {
		if slices.ContainsFunc(uniq, func(u store.OnceKey) bool { return u.Key == k.Key }) {
			repeats = append(repeats, k.Key)
			continue
		}
		uniq = append(uniq, k)
	}
	return uniq, repeats
}

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// recordOnce records the (distinct) keys that are new or expired at now in
// one statement, and returns the others.
func (db *DB) recordOnce(ctx context.Context, w querier, uniq []store.OnceKey, now time.Time) ([]string, error) {
	q, args := onceQuery(uniq, now)
	return db.recordedBy(ctx, w, q, args, uniq)
}

// onceQuery is the statement that records uniq at now, and its arguments:
// the keys in order, so that two requests sharing keys lock them in the
// same order (never a deadlock).
func onceQuery(uniq []store.OnceKey, now time.Time) (query, []any) {
	q := useOnceAllQuery(len(uniq))
	if len(uniq) <= len(useOnceAllQueries) {
		q = useOnceAllQueries[len(uniq)-1]
	}
	sorted := slices.SortedFunc(slices.Values(uniq), func(a, b store.OnceKey) int { return strings.Compare(a.Key, b.Key) })
	args := make([]any, 0, 2*len(uniq)+1)
	for _, k := range sorted {
		args = append(args, k.Key, ms(k.ExpiresAt))
	}
	return q, append(args, ms(now))
}

// recordedBy runs q, which returns the keys of uniq it recorded, and
// returns the others.
func (db *DB) recordedBy(ctx context.Context, w querier, q query, args []any, uniq []store.OnceKey) ([]string, error) {
	rows, err := w.QueryContext(ctx, db.sql(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	recorded := make([]string, 0, len(uniq))
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		recorded = append(recorded, k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return unrecorded(uniq, recorded), nil
}

// unrecorded returns the keys of uniq not in recorded: the replays.
func unrecorded(uniq []store.OnceKey, recorded []string) []string {
	var replays []string
	for _, k := range uniq {
		if !slices.Contains(recorded, k.Key) {
			replays = append(replays, k.Key)
		}
	}
	return replays
}

// UseOnceAll records the keys that are new or expired at now in one
// statement and returns the others. When ctx carries audit events they are
// committed with the keys if none is a replay; otherwise they are dropped
// and the new keys are recorded without them.
func (db *DB) UseOnceAll(ctx context.Context, keys []store.OnceKey, now time.Time) ([]string, error) {
	const op = "sqlstore.UseOnceAll"
	uniq, replays := uniqueKeys(keys)
	if len(uniq) == 0 {
		return replays, nil
	}
	var found []string
	var err error
	if audit.Pending(ctx) {
		err = db.inTx(ctx, func(tx *sql.Tx) error {
			if found, err = db.recordOnce(ctx, tx, uniq, now); err != nil {
				return err
			}
			if len(found) > 0 || len(replays) > 0 {
				return errReplayed
			}
			return nil
		})
		if errors.Is(err, errReplayed) {
			found, err = db.recordOnce(ctx, db.write, uniq, now) // the events went with the rollback
		}
	} else {
		found, err = db.recordOnce(ctx, db.write, uniq, now)
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	return append(replays, found...), nil
}

// spendTx runs change in a write transaction that first records once, a
// request's replay-cache keys (see store.Grants.RedeemCode). change
// returns whether to commit and the error to return after the commit (a
// replayed code commits its grant's revocation and fails). When a key is a
// replay the transaction is rolled back before change runs, the new keys
// are recorded alone and the error is a *store.ReplayedKeys; when change
// or the commit fails, the keys are recorded alone (the request spent
// them) and its error is returned.
func (db *DB) spendTx(ctx context.Context, op string, once []store.OnceKey, now time.Time,
	change func(*sql.Tx) (commit bool, err error)) error {
	uniq, repeats := uniqueKeys(once)
	if len(repeats) > 0 {
		audit.Take(ctx) // nothing changes
		return db.replayed(ctx, op, uniq, now, repeats)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return db.spendAlone(ctx, uniq, now, wrap(op, err))
	}
	if len(uniq) > 0 {
		replays, err := db.recordOnce(ctx, tx, uniq, now)
		if err != nil {
			db.rollback(ctx, tx)
			return db.spendAlone(ctx, uniq, now, wrap(op, err))
		}
		if len(replays) > 0 {
			db.rollback(ctx, tx)
			return db.replayed(ctx, op, uniq, now, nil)
		}
	}
	commit, err := change(tx)
	if !commit {
		db.rollback(ctx, tx)
		return db.spendAlone(ctx, uniq, now, err)
	}
	if cerr := db.commit(ctx, tx); cerr != nil {
		return db.spendAlone(ctx, uniq, now, wrap(op, cerr))
	}
	return err
}

// replayed records the new keys of a request that replayed others (known
// replays: repeats) and returns the *store.ReplayedKeys it fails with.
func (db *DB) replayed(ctx context.Context, op string, uniq []store.OnceKey, now time.Time, repeats []string) error {
	replays := repeats
	if len(uniq) > 0 {
		ctx, cancel := spendContext(ctx)
		defer cancel()
		found, err := db.recordOnce(ctx, db.write, uniq, now)
		if err != nil {
			return wrap(op, err)
		}
		replays = append(replays, found...)
	}
	return &sqin.Error{Code: sqin.EInvalid, Message: "single-use identifier already used", Op: op,
		Err: &store.ReplayedKeys{Keys: replays}}
}

// spendAlone records the keys of a request that failed with err and
// returns err (joined with the recording's error, if any).
func (db *DB) spendAlone(ctx context.Context, uniq []store.OnceKey, now time.Time, err error) error {
	if len(uniq) == 0 {
		return err
	}
	ctx, cancel := spendContext(ctx)
	defer cancel()
	if _, rerr := db.recordOnce(ctx, db.write, uniq, now); rerr != nil {
		return errors.Join(err, wrap("sqlstore: record the keys of a failed request", rerr))
	}
	return err
}

// spendContext is the context that records a failed request's keys: the
// request may have ended (a client gone, a deadline), its keys are spent
// all the same.
func spendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}
