package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

// qTakePushed redeems a pushed request: the DELETE is its own single-use
// check, so a request_uri costs one write at the authorization endpoint.
var qTakePushed = newQuery(`DELETE FROM auth_requests WHERE id = ? AND client_id = ? AND pushed = ? AND session_id = ''
	AND (expires_at = 0 OR expires_at > ?) RETURNING ` + authRequestCols)

// authRequestArgs are the arguments of qCreateAuthRequest.
func authRequestArgs(op string, r *sqin.AuthRequest) ([]any, error) {
	var l lists
	args := []any{r.ID, r.ClientID, r.RedirectURI, r.State, r.Nonce, l.join(r.Scopes), r.Claims,
		r.CodeChallenge, l.join(r.Prompt), int64(r.MaxAge), r.LoginHint, r.UILocale, l.join(r.ACRValues),
		r.ResponseMode, r.SessionID, ms(r.CreatedAt), ms(r.ExpiresAt), r.DPoPJKT, r.Pushed}
	if l.err != nil {
		return nil, l.invalid(op)
	}
	return args, nil
}

// PushAuthRequest stores a pushed request and records once, the pushing
// request's replay-cache keys, in one transaction (see
// store.Grants.RedeemCode for what a replay does); a taken ID is
// sqin.ErrConflict.
func (db *DB) PushAuthRequest(ctx context.Context, r *sqin.AuthRequest, once []store.OnceKey, now time.Time) error {
	const op = "sqlstore.PushAuthRequest"
	if !r.Pushed {
		return &sqin.Error{Code: sqin.EInvalid, Op: op, Message: "the request is not a pushed one"}
	}
	args, err := authRequestArgs(op, r)
	if err != nil {
		return err
	}
	if uniq, repeats := uniqueKeys(once); db.dialect == Postgres && len(repeats) == 0 && !audit.Pending(ctx) {
		return db.pushOne(ctx, op, uniq, now, args)
	}
	return db.spendTx(ctx, op, once, now, func(tx *sql.Tx) (bool, error) {
		if _, err := tx.ExecContext(ctx, db.sql(qCreateAuthRequest), args...); err != nil {
			return false, wrap(op, err)
		}
		return true, nil
	})
}

// TakePushedRequest deletes and returns the pushed request id of clientID
// when it is unexpired at now and has no session; anything else is
// sqin.ErrNotFound and deletes nothing.
func (db *DB) TakePushedRequest(ctx context.Context, id, clientID string, now time.Time) (*sqin.AuthRequest, error) {
	const op = "sqlstore.TakePushedRequest"
	r := new(sqin.AuthRequest)
	scan := func(row *sql.Row) error {
		return row.Scan(&r.ID, &r.ClientID, &r.RedirectURI, &r.State, &r.Nonce, strs{&r.Scopes}, &r.Claims,
			&r.CodeChallenge, strs{&r.Prompt}, num(&r.MaxAge), &r.LoginHint, &r.UILocale, strs{&r.ACRValues},
			&r.ResponseMode, &r.SessionID, millis{&r.CreatedAt}, millis{&r.ExpiresAt}, &r.DPoPJKT, &r.Pushed)
	}
	args := []any{id, clientID, true, ms(now)}
	var err error
	if audit.Pending(ctx) {
		err = db.inTx(ctx, func(tx *sql.Tx) error { return scan(tx.QueryRowContext(ctx, db.sql(qTakePushed), args...)) })
	} else {
		err = scan(db.write.QueryRowContext(ctx, db.sql(qTakePushed), args...))
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	return r, nil
}

// pushOnceQueries hold pushOne's statement for 0 to 2 keys.
var pushOnceQueries = func() (qs [3]query) {
	for i := range qs {
		qs[i] = pushOnceQuery(i)
	}
	return qs
}()

// pushOnceQuery records n keys as UseOnceAll does and inserts the pushed
// request only when all n were recorded, in one statement (PostgreSQL:
// data-modifying WITH); it returns the keys recorded.
func pushOnceQuery(n int) query {
	if n == 0 {
		return newQuery(`INSERT INTO auth_requests (` + authRequestCols + `) VALUES (` + marks(authRequestCols) + `)`)
	}
	once := useOnceAllQuery(n).sqlite
	return newQuery(`WITH k AS (` + once + `),
	r AS (INSERT INTO auth_requests (` + authRequestCols + `) SELECT ` + marks(authRequestCols) + `
		WHERE (SELECT COUNT(*) FROM k) = ?)
	SELECT key FROM k`)
}

// pushOne is PushAuthRequest in one statement, without a transaction
// (PostgreSQL, no audit events): a replayed key leaves only the new keys
// recorded, as spendTx does.
func (db *DB) pushOne(ctx context.Context, op string, uniq []store.OnceKey, now time.Time, req []any) error {
	if len(uniq) == 0 {
		_, err := db.write.ExecContext(ctx, db.sql(pushOnceQueries[0]), req...)
		return wrap(op, err)
	}
	q := pushOnceQuery(len(uniq))
	if len(uniq) < len(pushOnceQueries) {
		q = pushOnceQueries[len(uniq)]
	}
	args := make([]any, 0, 2*len(uniq)+2+len(req))
	for _, k := range uniq {
		args = append(args, k.Key, ms(k.ExpiresAt))
	}
	args = append(args, ms(now))
	args = append(append(args, req...), int64(len(uniq)))
	replays, err := db.recordedBy(ctx, db.write, q, args, uniq)
	if err != nil {
		return db.spendAlone(ctx, uniq, now, wrap(op, err))
	}
	if len(replays) > 0 {
		return &sqin.Error{Code: sqin.EInvalid, Message: "single-use identifier already used", Op: op,
			Err: &store.ReplayedKeys{Keys: replays}}
	}
	return nil
}
