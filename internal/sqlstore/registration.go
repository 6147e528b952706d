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

const (
	iatCols = `id, hash, sector, allow_public_subject, max_uses, uses, note, created_at, expires_at, revoked_at`
	regCols = `client_id, token_hash, initial_token_id, sector, allow_public_subject, created_at, updated_at`
)

var (
	qCreateIAT = insertQuery("initial_access_tokens", iatCols)
	qGetIAT    = newQuery(`SELECT ` + iatCols + ` FROM initial_access_tokens WHERE hash = ?`)
	qGetIATID  = newQuery(`SELECT ` + iatCols + ` FROM initial_access_tokens WHERE id = ?`)
	qListIAT   = newQuery(`SELECT ` + iatCols + ` FROM initial_access_tokens ORDER BY created_at, id`)
	qRevokeIAT = newQuery(`UPDATE initial_access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0`)
	// qUseIAT counts one use of a token that is still usable; no row
	// changed means it is not.
	qUseIAT = newQuery(`UPDATE initial_access_tokens SET uses = uses + 1
		WHERE id = ? AND revoked_at = 0 AND expires_at > ? AND (max_uses = 0 OR uses < max_uses)`)

	qCreateReg = insertQuery("client_registrations", regCols)
	qGetReg    = newQuery(`SELECT ` + regCols + ` FROM client_registrations WHERE client_id = ?`)
	qRotateReg = newQuery(`UPDATE client_registrations SET token_hash = ?, updated_at = ? WHERE client_id = ? AND token_hash = ?`)

	qLegacyByAccount = newQuery(`SELECT sub FROM legacy_subjects WHERE sector = ? AND account_id = ?`)
	qLegacyBySub     = newQuery(`SELECT account_id FROM legacy_subjects WHERE sector = ? AND sub = ?`)
)

// clientColumns are the names in clientCols, in order.
var clientColumns = func() []string {
	var cols []string
	for _, c := range strings.Split(clientCols, ",") {
		cols = append(cols, strings.TrimSpace(c))
	}
	return cols
}()

// qUpdateClient sets every column of clientCols but id and created_at.
var qUpdateClient = func() query {
	var set []string
	for _, c := range clientColumns {
		if c != "id" && c != "created_at" {
			set = append(set, c+" = ?")
		}
	}
	return newQuery(`UPDATE clients SET ` + strings.Join(set, ", ") + ` WHERE id = ?`)
}()

// clientRow returns c's values in the order of clientColumns, as
// CreateClient stores them; the conformance suite's registration tests
// fail when the two drift apart.
func clientRow(op string, c *sqin.Client) (map[string]any, error) {
	var l lists
	row := map[string]any{
		"id": c.ID, "secret_hash": c.SecretHash, "name": c.Name, "redirect_uris": l.join(c.RedirectURIs),
		"post_logout_redirect_uris": l.join(c.PostLogoutRedirectURIs), "grant_types": l.join(c.GrantTypes),
		"scopes": l.join(c.Scopes), "claims": l.join(c.Claims), "auth_method": c.AuthMethod,
		"signing_alg": c.SigningAlg, "min_loa": int64(c.MinLoA), "sector": c.Sector, "jwks": blob(c.JWKS),
		"created_at": ms(c.CreatedAt), "jwks_uri": c.JWKSURI, "require_par": c.RequirePAR,
		"require_dpop": c.RequireDPoP, "profile": c.Profile, "subject_type": c.SubjectType,
		"backchannel_logout_uri": c.BackchannelLogoutURI, "frontchannel_logout_uri": c.FrontchannelLogoutURI,
		"purpose": c.Purpose,
	}
	if l.err != nil {
		return nil, l.invalid(op)
	}
	if len(row) != len(clientColumns) {
		return nil, &sqin.Error{Code: sqin.EInternal, Op: op, Message: "sqlstore: clientRow does not match clientCols"}
	}
	return row, nil
}

// clientArgs orders row's values for an INSERT (all columns) or, with
// update, for qUpdateClient.
func clientArgs(op string, row map[string]any, update bool) ([]any, error) {
	var args []any
	for _, c := range clientColumns {
		v, ok := row[c]
		if !ok {
			return nil, &sqin.Error{Code: sqin.EInternal, Op: op, Message: "sqlstore: clientRow lacks column " + c}
		}
		if update && (c == "id" || c == "created_at") {
			continue
		}
		args = append(args, v)
	}
	if update {
		args = append(args, row["id"])
	}
	return args, nil
}

func scanIAT(s scanner) (*store.InitialAccessToken, error) {
	t := new(store.InitialAccessToken)
	err := s.Scan(&t.ID, &t.Hash, &t.Sector, &t.AllowPublicSubject, &t.MaxUses, &t.Uses, &t.Note,
		millis{&t.CreatedAt}, millis{&t.ExpiresAt}, millis{&t.RevokedAt})
	return t, err
}

// CreateInitialAccessToken stores t; a taken ID or hash is
// sqin.ErrConflict.
func (db *DB) CreateInitialAccessToken(ctx context.Context, t *store.InitialAccessToken) error {
	_, err := db.writeExec(ctx, qCreateIAT, t.ID, t.Hash, t.Sector, t.AllowPublicSubject,
		int64(t.MaxUses), int64(t.Uses), t.Note, ms(t.CreatedAt), ms(t.ExpiresAt), ms(t.RevokedAt))
	return wrap("sqlstore.CreateInitialAccessToken", err)
}

// GetInitialAccessToken returns the token with that hash, usable or not,
// or sqin.ErrNotFound.
func (db *DB) GetInitialAccessToken(ctx context.Context, hash string) (*store.InitialAccessToken, error) {
	t, err := scanIAT(db.read.QueryRowContext(ctx, db.sql(qGetIAT), hash))
	if err != nil {
		return nil, wrap("sqlstore.GetInitialAccessToken", err)
	}
	return t, nil
}

// ListInitialAccessTokens returns every token, oldest first.
func (db *DB) ListInitialAccessTokens(ctx context.Context) ([]*store.InitialAccessToken, error) {
	const op = "sqlstore.ListInitialAccessTokens"
	rows, err := db.read.QueryContext(ctx, db.sql(qListIAT))
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ts []*store.InitialAccessToken
	for rows.Next() {
		t, err := scanIAT(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ts = append(ts, t)
	}
	return ts, wrap(op, rows.Err())
}

// RevokeInitialAccessToken revokes the token; a second revocation keeps the
// first time; a missing token is sqin.ErrNotFound.
func (db *DB) RevokeInitialAccessToken(ctx context.Context, id string, now time.Time) error {
	const op = "sqlstore.RevokeInitialAccessToken"
	changed, err := db.exec(ctx, qRevokeIAT, ms(now), id)
	if err != nil || changed {
		return wrap(op, err)
	}
	_, err = scanIAT(db.read.QueryRowContext(ctx, db.sql(qGetIATID), id))
	return wrap(op, err)
}

// RegisterClient stores c and r in one transaction and counts a use of the
// initial access token; see store.Registrations.
func (db *DB) RegisterClient(ctx context.Context, c *sqin.Client, r *store.Registration, now time.Time) error {
	const op = "sqlstore.RegisterClient"
	row, err := clientRow(op, c)
	if err != nil {
		return err
	}
	insert, err := clientArgs(op, row, false)
	if err != nil {
		return err
	}
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.sql(qUseIAT), r.InitialTokenID, ms(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			t, err := scanIAT(tx.QueryRowContext(ctx, db.sql(qGetIATID), r.InitialTokenID))
			switch {
			case err != nil:
				return err // sql.ErrNoRows: not found
			case !t.RevokedAt.IsZero() || (t.MaxUses > 0 && t.Uses >= t.MaxUses):
				return fail(op, sqin.ErrRevoked, nil)
			default:
				return fail(op, sqin.ErrExpired, nil)
			}
		}
		if _, err := tx.ExecContext(ctx, db.sql(qCreateClient), insert...); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, db.sql(qCreateReg), r.ClientID, r.TokenHash, r.InitialTokenID, r.Sector,
			r.AllowPublicSubject, ms(r.CreatedAt), ms(r.UpdatedAt))
		return err
	}))
}

// GetRegistration returns the client's registration, or sqin.ErrNotFound.
func (db *DB) GetRegistration(ctx context.Context, clientID string) (*store.Registration, error) {
	r := new(store.Registration)
	err := db.read.QueryRowContext(ctx, db.sql(qGetReg), clientID).Scan(&r.ClientID, &r.TokenHash,
		&r.InitialTokenID, &r.Sector, &r.AllowPublicSubject, millis{&r.CreatedAt}, millis{&r.UpdatedAt})
	if err != nil {
		return nil, wrap("sqlstore.GetRegistration", err)
	}
	return r, nil
}

// UpdateRegisteredClient replaces the client's settings and rotates its
// registration access token in one transaction; see store.Registrations.
func (db *DB) UpdateRegisteredClient(ctx context.Context, c *sqin.Client, oldHash, newHash string, now time.Time) error {
	const op = "sqlstore.UpdateRegisteredClient"
	row, err := clientRow(op, c)
	if err != nil {
		return err
	}
	update, err := clientArgs(op, row, true)
	if err != nil {
		return err
	}
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.sql(qRotateReg), newHash, ms(now), c.ID, oldHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err == nil {
				err = sql.ErrNoRows
			}
			return err
		}
		res, err = tx.ExecContext(ctx, db.sql(qUpdateClient), update...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err == nil {
				err = sql.ErrNoRows
			}
			return err
		}
		return nil
	}))
}

// ImportLegacySubjects records legacy subs all or nothing; see
// store.SubjectImports.
func (db *DB) ImportLegacySubjects(ctx context.Context, sector string, items []store.LegacySubject, dryRun bool) ([]store.ImportOutcome, error) {
	const op = "sqlstore.ImportLegacySubjects"
	out := make([]store.ImportOutcome, len(items))
	errAbort := errors.New("abort")
	conflict := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		accounts := make(map[string]bool, len(items))
		subs := make(map[string]bool, len(items))
		for i, it := range items {
			if accounts[it.AccountID] || subs[it.Sub] {
				out[i], conflict = store.ImportDuplicate, true
				continue
			}
			accounts[it.AccountID], subs[it.Sub] = true, true
			var have string
			err := tx.QueryRowContext(ctx, db.sql(qLegacyByAccount), sector, it.AccountID).Scan(&have)
			switch {
			case err == nil && have == it.Sub:
				out[i] = store.ImportUnchanged
				continue
			case err == nil:
				out[i], conflict = store.ImportAccountTaken, true
				continue
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			err = tx.QueryRowContext(ctx, db.sql(qLegacyBySub), sector, it.Sub).Scan(&have)
			switch {
			case err == nil:
				out[i], conflict = store.ImportSubTaken, true
				continue
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			out[i] = store.ImportImported
			if !conflict && !dryRun {
				if _, err := tx.ExecContext(ctx, db.sql(qSetLegacySub), sector, it.AccountID, it.Sub); err != nil {
					return err
				}
			}
		}
		if conflict || dryRun {
			return errAbort // roll back
		}
		return nil
	})
	switch {
	case errors.Is(err, errAbort) && conflict:
		return out, fail(op, sqin.ErrConflict, nil)
	case errors.Is(err, errAbort):
		return out, nil
	case err != nil:
		return nil, wrap(op, err)
	}
	return out, nil
}
