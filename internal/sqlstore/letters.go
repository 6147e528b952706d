package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/signup"
)

// Codes by mail and password resets (internal/signup): the letter queue
// that `sqin letters export` prints, and reset links.

const letterCols = `id, account_id, person_id, locale, requested_at, batch, claimed_at, code_hash, exported_at, expires_at,
	attempts, used_at, voided_at`

var (
	qQueueLetter   = insertQuery("mail_letters", letterCols)
	qQueuedLetter  = newQuery(`SELECT COUNT(*) FROM mail_letters WHERE account_id = ? AND exported_at = 0 AND voided_at = 0`)
	qPendingLetter = newQuery(`SELECT ` + letterCols + ` FROM mail_letters WHERE account_id = ? AND used_at = 0 AND voided_at = 0
		AND (exported_at = 0 OR expires_at > ?) ORDER BY requested_at, id`)
	qClaimable = newQuery(`SELECT id FROM mail_letters WHERE exported_at = 0 AND voided_at = 0
		AND (batch = '' OR claimed_at < ?) ORDER BY requested_at, id LIMIT ?`)
	qClaimLetter = newQuery(`UPDATE mail_letters SET batch = ?, claimed_at = ? WHERE id = ? AND exported_at = 0
		AND voided_at = 0 AND (batch = '' OR claimed_at < ?)`)
	qBatchLetters = newQuery(`SELECT ` + letterCols + ` FROM mail_letters WHERE batch = ? ORDER BY requested_at, id`)
	qExportLetter = newQuery(`UPDATE mail_letters SET code_hash = ?, exported_at = ?, expires_at = ? WHERE id = ? AND batch = ?
		AND exported_at = 0 AND voided_at = 0`)
	qVoidBatchRest = newQuery(`UPDATE mail_letters SET voided_at = ? WHERE batch = ? AND exported_at = 0 AND voided_at = 0`)
	qBatchDone     = newQuery(`SELECT COUNT(*) FROM mail_letters WHERE batch = ? AND exported_at > 0`)
	qLetterAttempt = newQuery(`UPDATE mail_letters SET attempts = attempts + 1 WHERE id = ? AND used_at = 0 AND voided_at = 0
		RETURNING attempts`)
	qVoidLetter = newQuery(`UPDATE mail_letters SET voided_at = ? WHERE id = ? AND voided_at = 0`)
	qUseLetter  = newQuery(`UPDATE mail_letters SET used_at = ? WHERE id = ? AND used_at = 0 AND voided_at = 0
		AND exported_at > 0 AND expires_at > ? RETURNING account_id, person_id`)

	qCreateReset = insertQuery("password_resets", "id, account_id, created_at, expires_at, used_at")
	qGetReset    = newQuery(`SELECT id, account_id, created_at, expires_at, used_at FROM password_resets WHERE id = ? AND used_at = 0 AND expires_at > ?`)
	qUseReset    = newQuery(`UPDATE password_resets SET used_at = ? WHERE id = ? AND used_at = 0 AND expires_at > ? RETURNING account_id`)
	qSpendResets = newQuery(`UPDATE password_resets SET used_at = ? WHERE account_id = ? AND used_at = 0`)
	// A reset by a mailed link proves the mailbox, not the identity: the
	// level drops to 1 (person_id stays, so that proofing the same person
	// again raises this account, and no other account can take the person
	// meanwhile), the proofs made go (they must be made again), every
	// grant of the account is revoked (offline ones too) and its sessions
	// end (with their back-channel logouts queued).
	qSetPassword = newQuery(`UPDATE accounts SET password_hash = ?, loa = CASE WHEN loa > 1 THEN 1 ELSE loa END,
		updated_at = ? WHERE id = ?`)
	qDropProofs        = newQuery(`DELETE FROM account_proofs WHERE account_id = ?`)
	qRevokeAcctGrants  = newQuery(`UPDATE grants SET revoked_at = ? WHERE account_id = ? AND revoked_at = 0`)
	qDeleteAcctSession = newQuery(`DELETE FROM sessions WHERE account_id = ?`)
	qAcctSessions      = newQuery(`SELECT id FROM sessions WHERE account_id = ? ORDER BY id`)
)

func scanLetter(s scanner) (*signup.Letter, error) {
	l := new(signup.Letter)
	err := s.Scan(&l.ID, &l.AccountID, &l.PersonID, &l.Locale, millis{&l.RequestedAt}, &l.Batch, millis{&l.ClaimedAt},
		&l.CodeHash, millis{&l.ExportedAt}, millis{&l.ExpiresAt}, &l.Attempts, millis{&l.UsedAt}, millis{&l.VoidedAt})
	return l, err
}

func (db *DB) insertLetter(ctx context.Context, tx *sql.Tx, l *signup.Letter) error {
	_, err := tx.ExecContext(ctx, db.sql(qQueueLetter), l.ID, l.AccountID, l.PersonID, l.Locale, ms(l.RequestedAt), l.Batch,
		ms(l.ClaimedAt), l.CodeHash, ms(l.ExportedAt), ms(l.ExpiresAt), l.Attempts, ms(l.UsedAt), ms(l.VoidedAt))
	return err
}

// QueueLetter stores l unless the account has a letter waiting to be
// printed; mails go in the same transaction either way.
func (db *DB) QueueLetter(ctx context.Context, l *signup.Letter, mails ...*signup.Mail) (bool, error) {
	const op = "sqlstore.QueueLetter"
	stored := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if l != nil {
			var n int
			if err := tx.QueryRowContext(ctx, db.sql(qQueuedLetter), l.AccountID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				if err := db.insertLetter(ctx, tx, l); err != nil {
					return err
				}
				stored = true
			}
		}
		return db.queueMails(ctx, tx, mails)
	})
	if err != nil {
		return false, wrap(op, err)
	}
	return stored, nil
}

func (db *DB) letters(ctx context.Context, q *sql.Rows, err error) ([]*signup.Letter, error) {
	if err != nil {
		return nil, err
	}
	defer q.Close()
	var out []*signup.Letter
	for q.Next() {
		l, err := scanLetter(q)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, q.Err()
}

// PendingLetters returns the account's queued letters and its printed ones
// still usable at now.
func (db *DB) PendingLetters(ctx context.Context, accountID string, now time.Time) ([]*signup.Letter, error) {
	rows, err := db.read.QueryContext(ctx, db.sql(qPendingLetter), accountID, ms(now))
	ls, err := db.letters(ctx, rows, err)
	return ls, wrap("sqlstore.PendingLetters", err)
}

// ClaimLetters claims up to n letters for batch, each by a conditional
// update, so two exports never print the same letter.
func (db *DB) ClaimLetters(ctx context.Context, batch string, now, staleBefore time.Time, n int) ([]*signup.Letter, error) {
	const op = "sqlstore.ClaimLetters"
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.sql(qClaimable), ms(staleBefore), n)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, db.sql(qClaimLetter), batch, ms(now), id, ms(staleBefore)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	rows, err := db.write.QueryContext(ctx, db.sql(qBatchLetters), batch)
	ls, err := db.letters(ctx, rows, err)
	return ls, wrap(op, err)
}

// LettersExported records the codes of the printed letters of batch and
// voids the others of the batch, with the audit events ctx carries.
func (db *DB) LettersExported(ctx context.Context, batch string, hashes map[string]string, now, expires time.Time) error {
	const op = "sqlstore.LettersExported"
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		for id, h := range hashes {
			res, err := tx.ExecContext(ctx, db.sql(qExportLetter), h, ms(now), ms(expires), id, batch)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				// Another export took the letter over (this one was too slow):
				// its printout must not go out.
				return cmp.Or(err, error(fail(op, sqin.ErrConflict, nil)))
			}
		}
		_, err := tx.ExecContext(ctx, db.sql(qVoidBatchRest), ms(now), batch)
		return err
	}))
}

// BatchExported reports whether batch's export committed.
func (db *DB) BatchExported(ctx context.Context, batch string) (bool, error) {
	var n int
	err := db.read.QueryRowContext(ctx, db.sql(qBatchDone), batch).Scan(&n)
	return n > 0, wrap("sqlstore.BatchExported", err)
}

// LetterAttempt counts one wrong code and voids the letter at max.
func (db *DB) LetterAttempt(ctx context.Context, id string, max int, now time.Time) (int, error) {
	const op = "sqlstore.LetterAttempt"
	var n int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, db.sql(qLetterAttempt), id).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			_, err := tx.ExecContext(ctx, db.sql(qVoidLetter), ms(now), id)
			return err
		}
		return nil
	})
	return n, wrap(op, err)
}

// UseLetter spends the letter and records proof for its account and
// person in one transaction (with the audit events ctx carries).
func (db *DB) UseLetter(ctx context.Context, id, proof string, now time.Time) ([]string, error) {
	const op = "sqlstore.UseLetter"
	var proofs []string
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var accountID, personID string
		if err := tx.QueryRowContext(ctx, db.sql(qUseLetter), ms(now), id, ms(now)).Scan(&accountID, &personID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.sql(qAddProof), accountID, personID, proof, ms(now)); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, db.sql(qProofs), accountID, personID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				return err
			}
			proofs = append(proofs, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	return proofs, nil
}

// CreatePasswordReset stores r and queues mails in one transaction.
func (db *DB) CreatePasswordReset(ctx context.Context, r *signup.PasswordReset, mails ...*signup.Mail) error {
	return wrap("sqlstore.CreatePasswordReset", db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.sql(qCreateReset), r.ID, r.AccountID, ms(r.CreatedAt), ms(r.ExpiresAt), ms(r.UsedAt)); err != nil {
			return err
		}
		return db.queueMails(ctx, tx, mails)
	}))
}

// GetPasswordReset returns the usable reset, or sqin.ErrNotFound.
func (db *DB) GetPasswordReset(ctx context.Context, id string, now time.Time) (*signup.PasswordReset, error) {
	r := new(signup.PasswordReset)
	err := db.read.QueryRowContext(ctx, db.sql(qGetReset), id, ms(now)).Scan(&r.ID, &r.AccountID, millis{&r.CreatedAt},
		millis{&r.ExpiresAt}, millis{&r.UsedAt})
	if err != nil {
		return nil, wrap("sqlstore.GetPasswordReset", err)
	}
	return r, nil
}

// ResetPassword spends the reset and every other reset of its account,
// sets the password, lowers the account to level 1 and drops its proofs,
// revokes all its grants, ends its sessions (queueing their back-channel
// logouts) and queues mails, in one transaction with the audit events ctx
// carries.
func (db *DB) ResetPassword(ctx context.Context, id, passwordHash string, now time.Time, mails ...*signup.Mail) error {
	return wrap("sqlstore.ResetPassword", db.inTx(ctx, func(tx *sql.Tx) error {
		var accountID string
		if err := tx.QueryRowContext(ctx, db.sql(qUseReset), ms(now), id, ms(now)).Scan(&accountID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.sql(qSpendResets), ms(now), accountID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, db.sql(qSetPassword), passwordHash, ms(now), accountID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return cmp.Or(err, sql.ErrNoRows)
		}
		if _, err := tx.ExecContext(ctx, db.sql(qDropProofs), accountID); err != nil {
			return err
		}
		if err := db.endAccountSessions(ctx, tx, accountID, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.sql(qRevokeAcctGrants), ms(now), accountID); err != nil {
			return err
		}
		return db.queueMails(ctx, tx, mails)
	}))
}

// endAccountSessions deletes the account's sessions in tx, queueing each
// one's back-channel logouts first (as EndSession does, without evicting:
// the queue may pass its limit by those few rows until the worker runs).
func (db *DB) endAccountSessions(ctx context.Context, tx *sql.Tx, accountID string, now time.Time) error {
	rows, err := tx.QueryContext(ctx, db.sql(qAcctSessions), accountID)
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
		return err
	}
	at := ms(now)
	for _, sid := range ids {
		if _, err := tx.ExecContext(ctx, db.sql(qEnqueueLogouts), at, at, sid); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, db.sql(qDeleteAcctSession), accountID)
	return err
}

// AccountSessions returns the IDs of the account's sessions (index
// sessions_account_id).
func (db *DB) AccountSessions(ctx context.Context, accountID string) ([]string, error) {
	const op = "sqlstore.AccountSessions"
	rows, err := db.read.QueryContext(ctx, db.sql(qAcctSessions), accountID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap(op, err)
		}
		ids = append(ids, id)
	}
	return ids, wrap(op, rows.Err())
}

var (
	qPruneLetters = newQuery(`DELETE FROM mail_letters WHERE (used_at > 0 AND used_at < ?) OR (voided_at > 0 AND voided_at < ?)
		OR (exported_at > 0 AND expires_at < ?)`)
	qPruneResets = newQuery(`DELETE FROM password_resets WHERE expires_at < ?`)
)

// pruneLetters deletes letters spent, voided or expired before the given
// time, and expired password resets.
func (db *DB) pruneLetters(ctx context.Context, now, before time.Time) error {
	if _, err := db.write.ExecContext(ctx, db.sql(qPruneLetters), ms(before), ms(before), ms(before)); err != nil {
		return err
	}
	_, err := db.write.ExecContext(ctx, db.sql(qPruneResets), ms(now))
	return err
}
