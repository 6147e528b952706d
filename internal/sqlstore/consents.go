package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/sqin/sqin"
)

const consentCols = `account_id, client_id, scopes, claims, granted_at`

var (
	qSaveConsent = newQuery(`INSERT INTO consents (` + consentCols + `) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account_id, client_id) DO UPDATE
		SET scopes = excluded.scopes, claims = excluded.claims, granted_at = excluded.granted_at`)
	qGetConsent          = newQuery(`SELECT ` + consentCols + ` FROM consents WHERE account_id = ? AND client_id = ?`)
	qListConsents        = newQuery(`SELECT ` + consentCols + ` FROM consents WHERE account_id = ? ORDER BY client_id`)
	qDeleteConsent       = newQuery(`DELETE FROM consents WHERE account_id = ? AND client_id = ?`)
	qRevokeConsentGrants = newQuery(`UPDATE grants SET revoked_at = ?
		WHERE account_id = ? AND client_id = ? AND revoked_at = 0`)
)

// SaveConsent records a consent, replacing the previous one.
func (db *DB) SaveConsent(ctx context.Context, c *sqin.Consent) error {
	const op = "sqlstore.SaveConsent"
	var l lists
	scopes, claims := l.join(c.Scopes), l.join(c.Claims)
	if l.err != nil {
		return l.invalid(op)
	}
	_, err := db.writeExec(ctx, qSaveConsent, c.AccountID, c.ClientID, scopes, claims, ms(c.GrantedAt))
	return wrap(op, err)
}

func scanConsent(s scanner) (*sqin.Consent, error) {
	c := new(sqin.Consent)
	err := s.Scan(&c.AccountID, &c.ClientID, strs{&c.Scopes}, strs{&c.Claims}, millis{&c.GrantedAt})
	return c, err
}

// GetConsent returns the account's consent to the client, or sqin.ErrNotFound.
func (db *DB) GetConsent(ctx context.Context, accountID, clientID string) (*sqin.Consent, error) {
	c, err := scanConsent(db.read.QueryRowContext(ctx, db.sql(qGetConsent), accountID, clientID))
	if err != nil {
		return nil, wrap("sqlstore.GetConsent", err)
	}
	return c, nil
}

// ListConsents returns the account's consents, ordered by client ID.
func (db *DB) ListConsents(ctx context.Context, accountID string) ([]*sqin.Consent, error) {
	const op = "sqlstore.ListConsents"
	rows, err := db.read.QueryContext(ctx, db.sql(qListConsents), accountID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var cs []*sqin.Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		cs = append(cs, c)
	}
	return cs, wrap(op, rows.Err())
}

// RevokeConsent deletes the consent and revokes the account's grants to
// the client, in one transaction. The grants are revoked even when there
// was no consent to delete.
func (db *DB) RevokeConsent(ctx context.Context, accountID, clientID string, now time.Time) error {
	return wrap("sqlstore.RevokeConsent", db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.sql(qDeleteConsent), accountID, clientID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.sql(qRevokeConsentGrants), ms(now), accountID, clientID)
		return err
	}))
}

const keyCols = `id, alg, private_key, public_jwk, created_at, retired_at, expires_at`

var (
	qListKeys   = newQuery(`SELECT ` + keyCols + ` FROM signing_keys WHERE expires_at = 0 OR expires_at > ? ORDER BY created_at DESC, id DESC`)
	qRetireKeys = newQuery(`UPDATE signing_keys SET retired_at = ?, expires_at = ? WHERE alg = ? AND retired_at = 0`)
	qAddKey     = insertQuery("signing_keys", keyCols)
)

// ListSigningKeys returns keys not yet past ExpiresAt, newest first.
func (db *DB) ListSigningKeys(ctx context.Context, now time.Time) ([]*sqin.SigningKey, error) {
	const op = "sqlstore.ListSigningKeys"
	rows, err := db.read.QueryContext(ctx, db.sql(qListKeys), ms(now))
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ks []*sqin.SigningKey
	for rows.Next() {
		k := new(sqin.SigningKey)
		if err := rows.Scan(&k.ID, &k.Alg, &k.Private, &k.Public, millis{&k.CreatedAt}, millis{&k.RetiredAt},
			millis{&k.ExpiresAt}); err != nil {
			return nil, wrap(op, err)
		}
		ks = append(ks, k)
	}
	return ks, wrap(op, rows.Err())
}

// AddSigningKey stores k and retires the active keys of its algorithm, in
// one transaction: RetiredAt = now, ExpiresAt = now + keep.
func (db *DB) AddSigningKey(ctx context.Context, k *sqin.SigningKey, now time.Time, keep time.Duration) error {
	return wrap("sqlstore.AddSigningKey", db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.sql(qRetireKeys), ms(now), ms(now.Add(keep)), k.Alg); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.sql(qAddKey), k.ID, k.Alg, blob(k.Private), blob(k.Public),
			ms(k.CreatedAt), ms(k.RetiredAt), ms(k.ExpiresAt))
		return err
	}))
}
