package sqlstore

import (
	"context"
	"time"

	"github.com/sqin/sqin/internal/store"
)

const adminTokenCols = `id, hash, note, created_at, expires_at, revoked_at`

var (
	qCreateAdminToken = insertQuery("admin_tokens", adminTokenCols)
	qGetAdminToken    = newQuery(`SELECT ` + adminTokenCols + ` FROM admin_tokens WHERE hash = ?`)
	qGetAdminTokenID  = newQuery(`SELECT ` + adminTokenCols + ` FROM admin_tokens WHERE id = ?`)
	qListAdminTokens  = newQuery(`SELECT ` + adminTokenCols + ` FROM admin_tokens ORDER BY created_at, id`)
	qRevokeAdminToken = newQuery(`UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0`)
)

func scanAdminToken(s scanner) (*store.AdminToken, error) {
	t := new(store.AdminToken)
	err := s.Scan(&t.ID, &t.Hash, &t.Note, millis{&t.CreatedAt}, millis{&t.ExpiresAt}, millis{&t.RevokedAt})
	return t, err
}

// CreateAdminToken stores t; a taken ID or hash is sqin.ErrConflict.
func (db *DB) CreateAdminToken(ctx context.Context, t *store.AdminToken) error {
	_, err := db.writeExec(ctx, qCreateAdminToken, t.ID, t.Hash, t.Note, ms(t.CreatedAt), ms(t.ExpiresAt), ms(t.RevokedAt))
	return wrap("sqlstore.CreateAdminToken", err)
}

// GetAdminToken returns the token with that hash, usable or not, or
// sqin.ErrNotFound.
func (db *DB) GetAdminToken(ctx context.Context, hash string) (*store.AdminToken, error) {
	t, err := scanAdminToken(db.read.QueryRowContext(ctx, db.sql(qGetAdminToken), hash))
	if err != nil {
		return nil, wrap("sqlstore.GetAdminToken", err)
	}
	return t, nil
}

// ListAdminTokens returns every token, oldest first.
func (db *DB) ListAdminTokens(ctx context.Context) ([]*store.AdminToken, error) {
	const op = "sqlstore.ListAdminTokens"
	rows, err := db.read.QueryContext(ctx, db.sql(qListAdminTokens))
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ts []*store.AdminToken
	for rows.Next() {
		t, err := scanAdminToken(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ts = append(ts, t)
	}
	return ts, wrap(op, rows.Err())
}

// RevokeAdminToken revokes the token; a second revocation keeps the first
// time; a missing token is sqin.ErrNotFound.
func (db *DB) RevokeAdminToken(ctx context.Context, id string, now time.Time) error {
	const op = "sqlstore.RevokeAdminToken"
	changed, err := db.exec(ctx, qRevokeAdminToken, ms(now), id)
	if err != nil || changed {
		return wrap(op, err)
	}
	_, err = scanAdminToken(db.read.QueryRowContext(ctx, db.sql(qGetAdminTokenID), id))
	return wrap(op, err)
}
