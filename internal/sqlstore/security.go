package sqlstore

import (
	"context"
	"time"

	"github.com/sqin/sqin"
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
