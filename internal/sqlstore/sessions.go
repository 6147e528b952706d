package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/sqin/sqin"
)

const sessionCols = `id, account_id, loa, amr, auth_time, created_at, expires_at`

var (
	qCreateSession = insertQuery("sessions", sessionCols)
	qGetSession    = newQuery(`SELECT ` + sessionCols + ` FROM sessions
		WHERE id = ? AND (expires_at = 0 OR expires_at > ?)`)
	qDeleteSession       = newQuery(`DELETE FROM sessions WHERE id = ?`)
	qRevokeSessionGrants = newQuery(`UPDATE grants SET revoked_at = ?
		WHERE session_id = ? AND NOT offline AND revoked_at = 0`)
)

// CreateSession stores s; a taken ID is sqin.ErrConflict.
func (db *DB) CreateSession(ctx context.Context, s *sqin.Session) error {
	const op = "sqlstore.CreateSession"
	var l lists
	amr := l.join(s.AMR)
	if l.err != nil {
		return l.invalid(op)
	}
	_, err := db.writeExec(ctx, qCreateSession, s.ID, s.AccountID, int64(s.LoA), amr,
		ms(s.AuthTime), ms(s.CreatedAt), ms(s.ExpiresAt))
	return wrap(op, err)
}

// GetSession returns sqin.ErrNotFound for a missing or expired session.
func (db *DB) GetSession(ctx context.Context, id string, now time.Time) (*sqin.Session, error) {
	s := new(sqin.Session)
	err := db.read.QueryRowContext(ctx, db.sql(qGetSession), id, ms(now)).Scan(&s.ID, &s.AccountID,
		num(&s.LoA), strs{&s.AMR}, millis{&s.AuthTime}, millis{&s.CreatedAt}, millis{&s.ExpiresAt})
	if err != nil {
		return nil, wrap("sqlstore.GetSession", err)
	}
	return s, nil
}

// DeleteSession ends the session and revokes the grants tied to it that
// are not offline, in one transaction. The grants are revoked even when the
// session itself is already gone (expired and pruned): signing out never
// fails for want of a session.
func (db *DB) DeleteSession(ctx context.Context, id string, now time.Time) error {
	return wrap("sqlstore.DeleteSession", db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.sql(qDeleteSession), id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.sql(qRevokeSessionGrants), ms(now), id)
		return err
	}))
}

const authRequestCols = `id, client_id, redirect_uri, state, nonce, scopes, claims, code_challenge, prompt,
	max_age, login_hint, ui_locale, acr_values, response_mode, session_id, created_at, expires_at, dpop_jkt, pushed`

var (
	qCreateAuthRequest = insertQuery("auth_requests", authRequestCols)
	qGetAuthRequest    = newQuery(`SELECT ` + authRequestCols + ` FROM auth_requests
		WHERE id = ? AND (expires_at = 0 OR expires_at > ?)`)
	qSetAuthRequestSession = newQuery(`UPDATE auth_requests SET session_id = ? WHERE id = ?`)
	qDeleteAuthRequest     = newQuery(`DELETE FROM auth_requests WHERE id = ?`)
)

// CreateAuthRequest stores r; a taken ID is sqin.ErrConflict.
func (db *DB) CreateAuthRequest(ctx context.Context, r *sqin.AuthRequest) error {
	const op = "sqlstore.CreateAuthRequest"
	args, err := authRequestArgs(op, r)
	if err != nil {
		return err
	}
	_, err = db.writeExec(ctx, qCreateAuthRequest, args...)
	return wrap(op, err)
}

// GetAuthRequest returns sqin.ErrNotFound for a missing or expired request.
func (db *DB) GetAuthRequest(ctx context.Context, id string, now time.Time) (*sqin.AuthRequest, error) {
	r := new(sqin.AuthRequest)
	err := db.read.QueryRowContext(ctx, db.sql(qGetAuthRequest), id, ms(now)).Scan(&r.ID, &r.ClientID,
		&r.RedirectURI, &r.State, &r.Nonce, strs{&r.Scopes}, &r.Claims, &r.CodeChallenge, strs{&r.Prompt},
		num(&r.MaxAge), &r.LoginHint, &r.UILocale, strs{&r.ACRValues}, &r.ResponseMode, &r.SessionID,
		millis{&r.CreatedAt}, millis{&r.ExpiresAt}, &r.DPoPJKT, &r.Pushed)
	if err != nil {
		return nil, wrap("sqlstore.GetAuthRequest", err)
	}
	return r, nil
}

// SetAuthRequestSession records the signed-in session on the request; a
// missing request is sqin.ErrNotFound.
func (db *DB) SetAuthRequestSession(ctx context.Context, id, sessionID string) error {
	const op = "sqlstore.SetAuthRequestSession"
	ok, err := db.exec(ctx, qSetAuthRequestSession, sessionID, id)
	if err == nil && !ok {
		return fail(op, sqin.ErrNotFound, nil)
	}
	return wrap(op, err)
}

// DeleteAuthRequest deletes the request; deleting a missing one is not an
// error.
func (db *DB) DeleteAuthRequest(ctx context.Context, id string) error {
	_, err := db.exec(ctx, qDeleteAuthRequest, id)
	return wrap("sqlstore.DeleteAuthRequest", err)
}
