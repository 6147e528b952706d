package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

const codeCols = `hash, client_id, account_id, session_id, redirect_uri, nonce, scopes, claims,
	code_challenge, loa, amr, auth_time, grant_id, expires_at, used_at, dpop_jkt`

const grantCols = `id, client_id, account_id, session_id, scopes, claims, loa, amr, auth_time, offline,
	created_at, expires_at, revoked_at, dpop_jkt`

const refreshCols = `hash, grant_id, client_id, created_at, expires_at, used_at`

// grantOrEmptyCols are grantCols of a LEFT JOIN (grants g): a missing
// grant reads as an empty ID.
const grantOrEmptyCols = `COALESCE(g.id, ''), COALESCE(g.client_id, ''), COALESCE(g.account_id, ''),
	COALESCE(g.session_id, ''), COALESCE(g.scopes, ''), COALESCE(g.claims, ''), COALESCE(g.loa, 0),
	COALESCE(g.amr, ''), COALESCE(g.auth_time, 0), COALESCE(g.offline, FALSE), COALESCE(g.created_at, 0),
	COALESCE(g.expires_at, 0), COALESCE(g.revoked_at, 0), COALESCE(g.dpop_jkt, '')`

var (
	qCreateCode = insertQuery("auth_codes", codeCols)
	// qUseCode marks a usable code used: of concurrent exchanges, one
	// updates the row and the others find it used.
	qUseCode = newQuery(`UPDATE auth_codes SET used_at = ?
		WHERE hash = ? AND used_at = 0 AND (expires_at = 0 OR expires_at > ?)
		RETURNING ` + codeCols)
	qCodeState     = newQuery(`SELECT used_at, grant_id FROM auth_codes WHERE hash = ?`)
	qCreateGrant   = insertQuery("grants", grantCols)
	qGetGrant      = newQuery(`SELECT ` + grantCols + ` FROM grants WHERE id = ?`)
	qRevokeGrant   = newQuery(`UPDATE grants SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`)
	qCreateRefresh = insertQuery("refresh_tokens", refreshCols)
	qGetRefresh    = newQuery(`SELECT ` + refreshCols + ` FROM refresh_tokens WHERE hash = ?`)
	qUseRefresh    = newQuery(`UPDATE refresh_tokens SET used_at = ?
		WHERE hash = ? AND used_at = 0 AND (expires_at = 0 OR expires_at > ?)
		RETURNING ` + refreshCols)
	qRefreshState = newQuery(`SELECT used_at, grant_id FROM refresh_tokens WHERE hash = ?`)
	// qUseRefreshGrant is qUseRefresh and the grant's read in one round
	// trip, for PostgreSQL (SQLite has no UPDATE in a WITH clause, and its
	// statements cost no round trip). A missing grant reads as an empty ID.
	qUseRefreshGrant = newQuery(`WITH u AS (UPDATE refresh_tokens SET used_at = ?
		WHERE hash = ? AND used_at = 0 AND (expires_at = 0 OR expires_at > ?)
		RETURNING ` + refreshCols + `)
	SELECT ` + prefixCols("u.", refreshCols) + `, ` + grantOrEmptyCols + `
	FROM u LEFT JOIN grants g ON g.id = u.grant_id`)
	qRevokeToken  = newQuery(`INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING`)
	qTokenRevoked = newQuery(`SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?)`)
)

// CreateAuthCode stores c; a taken hash is sqin.ErrConflict.
func (db *DB) CreateAuthCode(ctx context.Context, c *sqin.AuthCode) error {
	const op = "sqlstore.CreateAuthCode"
	args, err := codeArgs(op, c)
	if err != nil {
		return err
	}
	_, err = db.writeExec(ctx, qCreateCode, args...)
	return wrap(op, err)
}

// codeArgs are the arguments of qCreateCode.
func codeArgs(op string, c *sqin.AuthCode) ([]any, error) {
	var l lists
	args := []any{c.Hash, c.ClientID, c.AccountID, c.SessionID, c.RedirectURI, c.Nonce, l.join(c.Scopes),
		c.Claims, c.CodeChallenge, int64(c.LoA), l.join(c.AMR), ms(c.AuthTime), c.GrantID,
		ms(c.ExpiresAt), ms(c.UsedAt), c.DPoPJKT}
	if l.err != nil {
		return nil, l.invalid(op)
	}
	return args, nil
}

// ExchangeCode redeems a code in one transaction. A missing code is
// sqin.ErrNotFound; a code already used has its grant revoked (committed)
// and returns sqin.ErrReplay, even when it has also expired; an expired one
// is sqin.ErrExpired. Otherwise the code is marked used and passed to issue
// (with UsedAt set), and the grant and optional refresh token it returns are
// stored; the grant's ID must be the code's GrantID and the token's GrantID
// the grant's. An error from issue is returned as it is, and nothing is
// written.
func (db *DB) ExchangeCode(ctx context.Context, codeHash string, now time.Time,
	issue func(*sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error)) error {
	return db.exchange(ctx, "sqlstore.ExchangeCode", codeHash, now, nil, false, "",
		func(c *sqin.AuthCode, _ store.Holder) (*sqin.Grant, *sqin.RefreshToken, error) { return issue(c) })
}

// RedeemCode is ExchangeCode that first records once and reads the code's
// holder (account and legacy sub of sector) for issue, in the same
// transaction; see store.Grants.RedeemCode.
func (db *DB) RedeemCode(ctx context.Context, codeHash string, now time.Time, once []store.OnceKey, sector string,
	issue func(*sqin.AuthCode, store.Holder) (*sqin.Grant, *sqin.RefreshToken, error)) error {
	return db.exchange(ctx, "sqlstore.RedeemCode", codeHash, now, once, true, sector, issue)
}

// holderCols are an account's columns (accounts a) but its password hash,
// which no token needs, and the legacy sub (legacy_subjects l) of a LEFT
// JOIN: a missing account reads as an empty ID, a missing legacy sub as
// "".
const holderCols = `COALESCE(a.id, ''), COALESCE(a.email, ''), COALESCE(a.email_verified, FALSE),
	'', COALESCE(a.loa, 0), COALESCE(a.person_id, ''), COALESCE(a.locale, ''),
	COALESCE(a.locked, FALSE), COALESCE(a.created_at, 0), COALESCE(a.updated_at, 0), COALESCE(l.sub, '')`

var (
	// qUseCodeHolder is qUseCode with the code's holder, in one round trip
	// on PostgreSQL (SQLite has no UPDATE in a WITH clause).
	qUseCodeHolder = newQuery(`WITH u AS (UPDATE auth_codes SET used_at = ?
		WHERE hash = ? AND used_at = 0 AND (expires_at = 0 OR expires_at > ?)
		RETURNING ` + codeCols + `)
	SELECT ` + prefixCols("u.", codeCols) + `, ` + holderCols + `
	FROM u LEFT JOIN accounts a ON a.id = u.account_id
	LEFT JOIN legacy_subjects l ON l.sector = ? AND l.account_id = u.account_id`)
	// qHolder reads an account's holder columns in the write transaction
	// (SQLite; PostgreSQL when its claim failed).
	qHolder = newQuery(`SELECT ` + holderCols + ` FROM (SELECT 1) LEFT JOIN accounts a ON a.id = ?
	LEFT JOIN legacy_subjects l ON l.sector = ? AND l.account_id = a.id`)
)

// holderDest returns the scan destinations of holderCols and a function
// that builds the holder once scanned.
func holderDest() ([]any, func() store.Holder) {
	a := new(sqin.Account)
	var legacy string
	dest := []any{&a.ID, &a.Email, &a.EmailVerified, &a.PasswordHash, num(&a.LoA), &a.PersonID, &a.Locale,
		&a.Locked, millis{&a.CreatedAt}, millis{&a.UpdatedAt}, &legacy}
	return dest, func() store.Holder {
		h := store.Holder{Legacy: legacy}
		if a.ID != "" {
			h.Account = a
		}
		return h
	}
}

func codeDest(c *sqin.AuthCode) []any {
	return []any{&c.Hash, &c.ClientID, &c.AccountID, &c.SessionID, &c.RedirectURI, &c.Nonce, strs{&c.Scopes},
		&c.Claims, &c.CodeChallenge, num(&c.LoA), strs{&c.AMR}, millis{&c.AuthTime}, &c.GrantID,
		millis{&c.ExpiresAt}, millis{&c.UsedAt}, &c.DPoPJKT}
}

// exchange is ExchangeCode and RedeemCode: once recorded first, the holder
// read when withHolder.
func (db *DB) exchange(ctx context.Context, op, codeHash string, now time.Time, once []store.OnceKey,
	withHolder bool, sector string, issue func(*sqin.AuthCode, store.Holder) (*sqin.Grant, *sqin.RefreshToken, error)) error {
	at := ms(now)
	if uniq, repeats := uniqueKeys(once); db.dialect == Postgres && len(repeats) == 0 {
		c := new(sqin.AuthCode)
		claim, args, dest, holder := claimWithHolder(withHolder, sector, qUseCode, qUseCodeHolder,
			[]any{at, codeHash, at}, codeDest(c))
		err := db.pgSpend(ctx, op, uniq, now, claim, args, dest, func() ([]pgWrite, bool, error) {
			g, rt, err := issue(c, holder())
			if err == nil {
				err = checkIssued(op, c, g, rt)
			}
			if err != nil {
				return nil, false, err
			}
			args, err := grantArgs(op, g)
			if err != nil {
				return nil, false, err
			}
			if rt != nil {
				return []pgWrite{{db.sql(qCreateGrantRefresh), append(args, refreshArgs(rt)...)}}, true, nil
			}
			return []pgWrite{{db.sql(qCreateGrant), args}}, true, nil
		})
		if !errors.Is(err, errUnclaimed) {
			return err
		}
		// Missing, used or expired: the general path tells which.
	}
	return db.spendTx(ctx, op, once, now, func(tx *sql.Tx) (bool, error) {
		// PostgreSQL comes here only when the claim fails (pgSpend).
		c := new(sqin.AuthCode)
		var h store.Holder
		err := tx.QueryRowContext(ctx, db.sql(qUseCode), at, codeHash, at).Scan(codeDest(c)...)
		if err == nil && withHolder {
			hd, holder := holderDest()
			err = tx.QueryRowContext(ctx, db.sql(qHolder), c.AccountID, sector).Scan(hd...)
			h = holder()
		}
		if errors.Is(err, sql.ErrNoRows) {
			return db.unusable(ctx, tx, op, qCodeState, codeHash, at)
		}
		if err != nil {
			return false, wrap(op, err)
		}
		g, rt, err := issue(c, h)
		if err == nil {
			err = checkIssued(op, c, g, rt)
		}
		if err != nil {
			return false, err
		}
		if err := db.createGrant(ctx, tx, op, g); err != nil {
			return false, wrap(op, err)
		}
		if rt != nil {
			if err := db.createRefresh(ctx, tx, rt); err != nil {
				return false, wrap(op, err)
			}
		}
		return true, nil
	})
}

// claimWithHolder is pgSpend's claim: plain with args and dest, or, when
// withHolder, withH, which also reads the holder for sector, and the
// holder once scanned (empty without).
func claimWithHolder(withHolder bool, sector string, plain, withH query, args, dest []any) (query, []any, []any, func() store.Holder) {
	if !withHolder {
		return plain, args, dest, func() store.Holder { return store.Holder{} }
	}
	hd, holder := holderDest()
	return withH, append(args, sector), append(dest, hd...), holder
}

// checkIssued checks that what a code's issue returned belongs to the code.
func checkIssued(op string, c *sqin.AuthCode, g *sqin.Grant, rt *sqin.RefreshToken) error {
	if g == nil || g.ID != c.GrantID || (rt != nil && rt.GrantID != g.ID) {
		return &sqin.Error{Code: sqin.EInternal, Op: op, Message: "issue returned a grant or token that does not belong to the code"}
	}
	return nil
}

// qCreateGrantRefresh is qCreateGrant and qCreateRefresh in one statement
// (PostgreSQL).
var qCreateGrantRefresh = newQuery(`WITH g AS (INSERT INTO grants (` + grantCols + `) VALUES (` + marks(grantCols) + `))
	INSERT INTO refresh_tokens (` + refreshCols + `) VALUES (` + marks(refreshCols) + `)`)

// unusable explains why a code or refresh token could not be marked used:
// missing, already used (then its grant is revoked, to be committed), or
// else expired. It returns whether to commit and the error.
func (db *DB) unusable(ctx context.Context, tx *sql.Tx, op string, state query, hash string, now int64) (bool, error) {
	var usedAt int64
	var grantID string
	err := tx.QueryRowContext(ctx, db.sql(state), hash).Scan(&usedAt, &grantID)
	switch {
	case err != nil:
		return false, wrap(op, err)
	case usedAt != 0:
		if _, err := tx.ExecContext(ctx, db.sql(qRevokeGrant), now, grantID); err != nil {
			return false, wrap(op, err)
		}
		return true, fail(op, sqin.ErrReplay, nil)
	}
	return false, fail(op, sqin.ErrExpired, nil)
}

// grantArgs are the arguments of qCreateGrant.
func grantArgs(op string, g *sqin.Grant) ([]any, error) {
	var l lists
	args := []any{g.ID, g.ClientID, g.AccountID, g.SessionID, l.join(g.Scopes), g.Claims, int64(g.LoA),
		l.join(g.AMR), ms(g.AuthTime), g.Offline, ms(g.CreatedAt), ms(g.ExpiresAt), ms(g.RevokedAt), g.DPoPJKT}
	if l.err != nil {
		return nil, l.invalid(op)
	}
	return args, nil
}

// refreshArgs are the arguments of qCreateRefresh.
func refreshArgs(t *sqin.RefreshToken) []any {
	return []any{t.Hash, t.GrantID, t.ClientID, ms(t.CreatedAt), ms(t.ExpiresAt), ms(t.UsedAt)}
}

func (db *DB) createGrant(ctx context.Context, tx *sql.Tx, op string, g *sqin.Grant) error {
	args, err := grantArgs(op, g)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, db.sql(qCreateGrant), args...)
	return err
}

func (db *DB) createRefresh(ctx context.Context, tx *sql.Tx, t *sqin.RefreshToken) error {
	_, err := tx.ExecContext(ctx, db.sql(qCreateRefresh), refreshArgs(t)...)
	return err
}

func scanGrant(s scanner) (*sqin.Grant, error) {
	g := new(sqin.Grant)
	return g, s.Scan(grantDest(g)...)
}

func scanRefresh(s scanner) (*sqin.RefreshToken, error) {
	t := new(sqin.RefreshToken)
	return t, s.Scan(refreshDest(t)...)
}

// RotateRefreshToken replaces a refresh token in one transaction. A missing
// token is sqin.ErrNotFound; a token already rotated revokes its grant
// (committed) and returns sqin.ErrReplay, even when it has also expired; an
// expired token is sqin.ErrExpired; a revoked or expired grant is
// sqin.ErrRevoked. Otherwise the token is marked used (UsedAt set when next
// sees it) and the token next returns, of the same grant, is stored. An
// error from next is returned as it is, and nothing is written.
func (db *DB) RotateRefreshToken(ctx context.Context, tokenHash string, now time.Time,
	next func(*sqin.RefreshToken, *sqin.Grant) (*sqin.RefreshToken, error)) error {
	return db.rotate(ctx, "sqlstore.RotateRefreshToken", tokenHash, now, nil, false, "",
		func(t *sqin.RefreshToken, g *sqin.Grant, _ store.Holder) (*sqin.RefreshToken, error) {
			return next(t, g)
		})
}

// RotateRefresh is RotateRefreshToken that first records once and reads the
// grant's holder (account and legacy sub of sector) for next, in the same
// transaction; see store.Grants.RotateRefresh.
func (db *DB) RotateRefresh(ctx context.Context, tokenHash string, now time.Time, once []store.OnceKey, sector string,
	next func(*sqin.RefreshToken, *sqin.Grant, store.Holder) (*sqin.RefreshToken, error)) error {
	return db.rotate(ctx, "sqlstore.RotateRefresh", tokenHash, now, once, true, sector, next)
}

var (
	// qUseRefreshGrantHolder is qUseRefreshGrant with the grant's holder.
	qUseRefreshGrantHolder = newQuery(`WITH u AS (UPDATE refresh_tokens SET used_at = ?
		WHERE hash = ? AND used_at = 0 AND (expires_at = 0 OR expires_at > ?)
		RETURNING ` + refreshCols + `)
	SELECT ` + prefixCols("u.", refreshCols) + `, ` + grantOrEmptyCols + `, ` + holderCols + `
	FROM u LEFT JOIN grants g ON g.id = u.grant_id
	LEFT JOIN accounts a ON a.id = g.account_id
	LEFT JOIN legacy_subjects l ON l.sector = ? AND l.account_id = g.account_id`)
	// qGetGrantHolder is qGetGrant with the grant's holder (SQLite).
	qGetGrantHolder = newQuery(`SELECT ` + prefixCols("g.", grantCols) + `, ` + holderCols + `
	FROM grants g LEFT JOIN accounts a ON a.id = g.account_id
	LEFT JOIN legacy_subjects l ON l.sector = ? AND l.account_id = g.account_id
	WHERE g.id = ?`)
)

func grantDest(g *sqin.Grant) []any {
	return []any{&g.ID, &g.ClientID, &g.AccountID, &g.SessionID, strs{&g.Scopes}, &g.Claims, num(&g.LoA),
		strs{&g.AMR}, millis{&g.AuthTime}, &g.Offline, millis{&g.CreatedAt}, millis{&g.ExpiresAt},
		millis{&g.RevokedAt}, &g.DPoPJKT}
}

func refreshDest(t *sqin.RefreshToken) []any {
	return []any{&t.Hash, &t.GrantID, &t.ClientID, millis{&t.CreatedAt}, millis{&t.ExpiresAt}, millis{&t.UsedAt}}
}

// rotate is RotateRefreshToken and RotateRefresh: once recorded first, the
// holder read when withHolder.
func (db *DB) rotate(ctx context.Context, op, tokenHash string, now time.Time, once []store.OnceKey,
	withHolder bool, sector string, next func(*sqin.RefreshToken, *sqin.Grant, store.Holder) (*sqin.RefreshToken, error)) error {
	at := ms(now)
	if uniq, repeats := uniqueKeys(once); db.dialect == Postgres && len(repeats) == 0 {
		t, g := new(sqin.RefreshToken), new(sqin.Grant)
		claim, args, dest, holder := claimWithHolder(withHolder, sector, qUseRefreshGrant, qUseRefreshGrantHolder,
			[]any{at, tokenHash, at}, append(refreshDest(t), grantDest(g)...))
		err := db.pgSpend(ctx, op, uniq, now, claim, args, dest, func() ([]pgWrite, bool, error) {
			if err := usableGrant(op, g, at); err != nil {
				return nil, false, err
			}
			nt, err := next(t, g, holder())
			if err == nil {
				err = checkRotated(op, g, nt)
			}
			if err != nil {
				return nil, false, err
			}
			return []pgWrite{{db.sql(qCreateRefresh), refreshArgs(nt)}}, true, nil
		})
		if !errors.Is(err, errUnclaimed) {
			return err
		}
		// Missing, used or expired: the general path tells which.
	}
	return db.spendTx(ctx, op, once, now, func(tx *sql.Tx) (bool, error) {
		// PostgreSQL comes here only when the claim fails (pgSpend).
		g := new(sqin.Grant)
		var h store.Holder
		t, err := scanRefresh(tx.QueryRowContext(ctx, db.sql(qUseRefresh), at, tokenHash, at))
		if err == nil {
			if withHolder {
				hd, holder := holderDest()
				err = tx.QueryRowContext(ctx, db.sql(qGetGrantHolder), sector, t.GrantID).Scan(append(grantDest(g), hd...)...)
				h = holder()
			} else {
				g, err = scanGrant(tx.QueryRowContext(ctx, db.sql(qGetGrant), t.GrantID))
			}
			if errors.Is(err, sql.ErrNoRows) {
				return false, fail(op, sqin.ErrRevoked, nil)
			}
		}
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return db.unusable(ctx, tx, op, qRefreshState, tokenHash, at)
		case err != nil:
			return false, wrap(op, err)
		}
		if err := usableGrant(op, g, at); err != nil {
			return false, err
		}
		nt, err := next(t, g, h)
		if err == nil {
			err = checkRotated(op, g, nt)
		}
		if err != nil {
			return false, err
		}
		if err := db.createRefresh(ctx, tx, nt); err != nil {
			return false, wrap(op, err)
		}
		return true, nil
	})
}

// usableGrant fails with sqin.ErrRevoked when the grant of a claimed
// refresh token is gone (an empty ID), revoked or expired at now.
func usableGrant(op string, g *sqin.Grant, now int64) error {
	if g.ID == "" || !g.RevokedAt.IsZero() || expired(ms(g.ExpiresAt), now) {
		return fail(op, sqin.ErrRevoked, nil)
	}
	return nil
}

// checkRotated checks that next returned a token of the grant.
func checkRotated(op string, g *sqin.Grant, nt *sqin.RefreshToken) error {
	if nt == nil || nt.GrantID != g.ID {
		return &sqin.Error{Code: sqin.EInternal, Op: op, Message: "next returned no token or one of another grant"}
	}
	return nil
}

// GetRefreshToken returns a refresh token even when used or expired.
func (db *DB) GetRefreshToken(ctx context.Context, tokenHash string) (*sqin.RefreshToken, error) {
	t, err := scanRefresh(db.read.QueryRowContext(ctx, db.sql(qGetRefresh), tokenHash))
	if err != nil {
		return nil, wrap("sqlstore.GetRefreshToken", err)
	}
	return t, nil
}

// GetGrant returns a grant even when revoked.
func (db *DB) GetGrant(ctx context.Context, id string) (*sqin.Grant, error) {
	g, err := scanGrant(db.read.QueryRowContext(ctx, db.sql(qGetGrant), id))
	if err != nil {
		return nil, wrap("sqlstore.GetGrant", err)
	}
	return g, nil
}

// RevokeGrant revokes the grant; one already revoked keeps its first
// RevokedAt, a missing one is sqin.ErrNotFound.
func (db *DB) RevokeGrant(ctx context.Context, id string, now time.Time) error {
	const op = "sqlstore.RevokeGrant"
	ok, err := db.exec(ctx, qRevokeGrant, ms(now), id)
	if err == nil && !ok {
		return fail(op, sqin.ErrNotFound, nil)
	}
	return wrap(op, err)
}

// RevokeAccessToken records a revoked access token identifier until
// expiresAt (zero: for ever); revoking it again changes nothing.
func (db *DB) RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) error {
	_, err := db.exec(ctx, qRevokeToken, jti, ms(expiresAt))
	return wrap("sqlstore.RevokeAccessToken", err)
}

// AccessTokenRevoked reports whether jti was revoked (and not pruned since).
func (db *DB) AccessTokenRevoked(ctx context.Context, jti string) (bool, error) {
	var revoked bool
	err := db.read.QueryRowContext(ctx, db.sql(qTokenRevoked), jti).Scan(&revoked)
	return revoked, wrap("sqlstore.AccessTokenRevoked", err)
}

// qTokenState reads a token's revocation, its grant, the grant's account
// (but its password hash) and the account's person in one statement (one
// round trip on PostgreSQL): the account and person columns are COALESCEd
// so that a missing row reads as an empty ID.
var qTokenState = newQuery(`SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?), ` +
	prefixCols("g.", grantCols) + `,
	COALESCE(a.id, ''), COALESCE(a.email, ''), COALESCE(a.email_verified, FALSE), '',
	COALESCE(a.loa, 0), COALESCE(a.person_id, ''), COALESCE(a.locale, ''), COALESCE(a.locked, FALSE),
	COALESCE(a.created_at, 0), COALESCE(a.updated_at, 0),
	COALESCE(p.id, ''), COALESCE(p.family_name, ''), COALESCE(p.given_name, ''), COALESCE(p.birth_date, ''),
	COALESCE(p.sex, ''), COALESCE(p.health_no, ''), COALESCE(p.civic_number, ''), COALESCE(p.street, ''),
	COALESCE(p.unit, ''), COALESCE(p.municipality, ''), COALESCE(p.province, ''), COALESCE(p.postal_code, ''),
	COALESCE(p.country, ''), COALESCE(p.language, ''), COALESCE(p.death_date, ''), COALESCE(p.updated_at, 0)
	FROM grants g
	LEFT JOIN accounts a ON a.id = g.account_id
	LEFT JOIN persons p ON p.id = a.person_id
	WHERE g.id = ?`)

// prefixCols qualifies a comma-separated column list with a table alias.
func prefixCols(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// GetTokenState reads in one statement whether jti was revoked and, when
// grantID is not empty, the grant with its account and person.
func (db *DB) GetTokenState(ctx context.Context, jti, grantID string) (*store.TokenState, error) {
	const op = "sqlstore.GetTokenState"
	st := new(store.TokenState)
	if grantID == "" {
		err := db.read.QueryRowContext(ctx, db.sql(qTokenRevoked), jti).Scan(&st.Revoked)
		if err != nil {
			return nil, wrap(op, err)
		}
		return st, nil
	}
	g, a, p := new(sqin.Grant), new(sqin.Account), new(sqin.Person)
	ad := &p.Address
	err := db.read.QueryRowContext(ctx, db.sql(qTokenState), jti, grantID).Scan(&st.Revoked,
		&g.ID, &g.ClientID, &g.AccountID, &g.SessionID, strs{&g.Scopes}, &g.Claims, num(&g.LoA),
		strs{&g.AMR}, millis{&g.AuthTime}, &g.Offline, millis{&g.CreatedAt}, millis{&g.ExpiresAt},
		millis{&g.RevokedAt}, &g.DPoPJKT,
		&a.ID, &a.Email, &a.EmailVerified, &a.PasswordHash, num(&a.LoA), &a.PersonID, &a.Locale,
		&a.Locked, millis{&a.CreatedAt}, millis{&a.UpdatedAt},
		&p.ID, &p.FamilyName, &p.GivenName, &p.BirthDate, &p.Sex, &p.HealthNo, &ad.CivicNumber, &ad.Street,
		&ad.Unit, &ad.Municipality, &ad.Province, &ad.PostalCode, &ad.Country, &p.Language, &p.DeathDate,
		millis{&p.UpdatedAt})
	if err != nil {
		return nil, wrap(op, err)
	}
	st.Grant = g
	if a.ID != "" {
		st.Account = a
		if p.ID != "" {
			st.Person = p
		}
	}
	return st, nil
}
