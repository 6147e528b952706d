package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/sqin/sqin/internal/store"
)

var (
	qPutSecret = newQuery(`INSERT INTO proofing_secrets (secret_type, person_id, hash, delivered_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (secret_type, person_id) DO UPDATE SET hash = excluded.hash, delivered_at = excluded.delivered_at`)
	qGetSecret = newQuery(`SELECT hash FROM proofing_secrets WHERE secret_type = ? AND person_id = ?`)
)

// PutLocalSecrets stores delivered secret hashes in one transaction,
// replacing a person's previous hash of the same type.
func (db *DB) PutLocalSecrets(ctx context.Context, secrets []store.LocalSecret, now time.Time) error {
	const op = "sqlstore.PutLocalSecrets"
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, db.sql(qPutSecret))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, s := range secrets {
			if _, err := stmt.ExecContext(ctx, s.SecretType, s.PersonID, s.Hash, ms(now)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// LocalSecretHash returns the hash delivered for the person, or
// sqin.ErrNotFound.
func (db *DB) LocalSecretHash(ctx context.Context, secretType, personID string) ([]byte, error) {
	var h []byte
	if err := db.read.QueryRowContext(ctx, db.sql(qGetSecret), secretType, personID).Scan(&h); err != nil {
		return nil, wrap("sqlstore.LocalSecretHash", err)
	}
	return h, nil
}
