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
