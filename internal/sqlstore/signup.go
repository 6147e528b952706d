package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/signup"
)

// Account creation and proofing storage (internal/signup): registration
// flows, the mail outbox, proofs and levels reached.

var _ signup.Store = (*DB)(nil)

const flowCols = `id, email, password_hash, locale, auth_request, code_hash, code_expires_at, attempts, duplicate,
	terms_accepted_at, account_id, created_at, expires_at`

const mailCols = `id, recipient, subject, body, kind, created_at, next_attempt_at, attempts, lease_until, sent_at, last_error`

var (
	qCreateFlow   = insertQuery("signup_flows", flowCols)
	qGetFlow      = newQuery(`SELECT ` + flowCols + ` FROM signup_flows WHERE id = ? AND expires_at > ?`)
	qDeleteFlow   = newQuery(`DELETE FROM signup_flows WHERE id = ?`)
	qFlowAttempt  = newQuery(`UPDATE signup_flows SET attempts = attempts + 1 WHERE id = ? AND expires_at > ? RETURNING attempts`)
	qCompleteFlow = newQuery(`UPDATE signup_flows SET account_id = ?, code_hash = '' WHERE id = ? AND account_id = ''
		AND expires_at > ? AND code_expires_at > ?`)
	qQueueMail      = insertQuery("mail_outbox", mailCols)
	qDueMails       = newQuery(`SELECT id FROM mail_outbox WHERE sent_at = 0 AND next_attempt_at > 0 AND next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?`)
	qLeaseMail      = newQuery(`UPDATE mail_outbox SET lease_until = ?, attempts = attempts + 1 WHERE id = ? AND sent_at = 0 AND lease_until <= ? RETURNING recipient, subject, body, kind, created_at, attempts`)
	qMailSent       = newQuery(`UPDATE mail_outbox SET sent_at = ?, body = '', lease_until = 0, last_error = '' WHERE id = ?`)
	qMailFailed     = newQuery(`UPDATE mail_outbox SET next_attempt_at = ?, lease_until = 0, last_error = ? WHERE id = ?`)
	qMailAbandoned  = newQuery(`UPDATE mail_outbox SET next_attempt_at = 0, lease_until = 0, last_error = ?, body = '' WHERE id = ?`)
	qPersonsByBirth = newQuery(`SELECT id, family_name, given_name FROM persons WHERE birth_date = ? AND removed_import = 0
		AND death_date = '' ORDER BY id LIMIT 1000`)
	qAddProof = newQuery(`INSERT INTO account_proofs (account_id, person_id, proof, proved_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (account_id, person_id, proof) DO NOTHING`)
	qProofs        = newQuery(`SELECT proof FROM account_proofs WHERE account_id = ? AND person_id = ? ORDER BY proof`)
	qPersonLock    = newQuery(`SELECT pg_advisory_xact_lock(hashtext('sqin.person'), hashtext(?))`)
	qPersonHolder  = newQuery(`SELECT ` + accountCols + ` FROM accounts WHERE person_id = ? AND id <> ? ORDER BY created_at LIMIT 1`)
	qLinkAccount   = newQuery(`UPDATE accounts SET person_id = ?, loa = ?, updated_at = ? WHERE id = ? AND (person_id = '' OR person_id = ?)`)
	qRecordLevel   = newQuery(`INSERT INTO account_levels (account_id, loa, how, reached_at) VALUES (?, ?, ?, ?) ON CONFLICT (account_id, loa) DO NOTHING`)
	qAccountForUpd = newQuery(`SELECT loa FROM accounts WHERE id = ?`)
)

// CreateSignupFlow stores f and queues mails in one transaction.
func (db *DB) CreateSignupFlow(ctx context.Context, f *signup.Flow, mails ...*signup.Mail) error {
	const op = "sqlstore.CreateSignupFlow"
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.sql(qCreateFlow), f.ID, f.Email, f.PasswordHash, f.Locale, f.AuthRequest,
			f.CodeHash, ms(f.CodeExpiresAt), f.Attempts, f.Duplicate, ms(f.TermsAcceptedAt), f.AccountID,
			ms(f.CreatedAt), ms(f.ExpiresAt)); err != nil {
			return err
		}
		return db.queueMails(ctx, tx, mails)
	}))
}

// GetSignupFlow returns the flow, or sqin.ErrNotFound when missing or
// expired.
func (db *DB) GetSignupFlow(ctx context.Context, id string, now time.Time) (*signup.Flow, error) {
	f := new(signup.Flow)
	err := db.read.QueryRowContext(ctx, db.sql(qGetFlow), id, ms(now)).Scan(&f.ID, &f.Email, &f.PasswordHash, &f.Locale,
		&f.AuthRequest, &f.CodeHash, millis{&f.CodeExpiresAt}, &f.Attempts, &f.Duplicate, millis{&f.TermsAcceptedAt},
		&f.AccountID, millis{&f.CreatedAt}, millis{&f.ExpiresAt})
	if err != nil {
		return nil, wrap("sqlstore.GetSignupFlow", err)
	}
	return f, nil
}

// DeleteSignupFlow deletes the flow; a missing one is not an error.
func (db *DB) DeleteSignupFlow(ctx context.Context, id string) error {
	_, err := db.write.ExecContext(ctx, db.sql(qDeleteFlow), id)
	return wrap("sqlstore.DeleteSignupFlow", err)
}

// CountSignupCodeAttempt adds one attempt and returns the new count.
func (db *DB) CountSignupCodeAttempt(ctx context.Context, id string, now time.Time) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, db.sql(qFlowAttempt), id, ms(now)).Scan(&n)
	})
	return n, wrap("sqlstore.CountSignupCodeAttempt", err)
}

// CompleteSignup binds the flow to a new account a, created in the same
// transaction (with the audit events ctx carries).
func (db *DB) CompleteSignup(ctx context.Context, flowID string, a *sqin.Account, now time.Time) error {
	const op = "sqlstore.CompleteSignup"
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.sql(qCompleteFlow), a.ID, flowID, ms(now), ms(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return cmp.Or(err, sql.ErrNoRows)
		}
		_, err = tx.ExecContext(ctx, db.sql(qCreateAccount), a.ID, a.Email, a.EmailVerified, a.PasswordHash,
			int64(a.LoA), a.PersonID, a.Locale, a.Locked, ms(a.CreatedAt), ms(a.UpdatedAt))
		return err
	}))
}

// FindPersonByNameAndBirthDate looks the claimed identity up: the persons
// born that day (covering index persons_birth_names), then the names compared as
// registry.SameName does.
func (db *DB) FindPersonByNameAndBirthDate(ctx context.Context, family, given, birthDate string) (string, error) {
	const op = "sqlstore.FindPersonByNameAndBirthDate"
	rows, err := db.read.QueryContext(ctx, db.sql(qPersonsByBirth), birthDate)
	if err != nil {
		return "", wrap(op, err)
	}
	defer rows.Close()
	found := ""
	fk, gk := registry.NameKey(family), registry.NameKey(given)
	for found == "" && rows.Next() {
		var id, f, g string
		if err := rows.Scan(&id, &f, &g); err != nil {
			return "", wrap(op, err)
		}
		if registry.RegistryNameKey(f) == fk && registry.RegistryNameKey(g) == gk {
			found = id
		}
	}
	if err := rows.Err(); err != nil {
		return "", wrap(op, err)
	}
	if found == "" {
		return "", wrap(op, sql.ErrNoRows)
	}
	return found, nil
}

// AddProof records one proof and returns the account's proofs for person.
func (db *DB) AddProof(ctx context.Context, accountID, personID, proof string, now time.Time) ([]string, error) {
	const op = "sqlstore.AddProof"
	var proofs []string
	err := db.inTx(ctx, func(tx *sql.Tx) error {
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

// Proofs returns the account's proofs for person, sorted.
func (db *DB) Proofs(ctx context.Context, accountID, personID string) ([]string, error) {
	const op = "sqlstore.Proofs"
	rows, err := db.read.QueryContext(ctx, db.sql(qProofs), accountID, personID)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var proofs []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, wrap(op, err)
		}
		proofs = append(proofs, p)
	}
	return proofs, wrap(op, rows.Err())
}

// ProveAccount links the account to the person at loa unless another
// account holds the person. On PostgreSQL an advisory lock per person
// serialises concurrent links of one person; SQLite's one writer does.
func (db *DB) ProveAccount(ctx context.Context, accountID, personID string, loa sqin.LoA, how string, now time.Time,
	mailFor func(other *sqin.Account) *signup.Mail) (signup.Proved, error) {
	const op = "sqlstore.ProveAccount"
	var out signup.Proved
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if db.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, db.sql(qPersonLock), personID); err != nil {
				return err
			}
		}
		other, err := scanAccount(tx.QueryRowContext(ctx, db.sql(qPersonHolder), personID, accountID))
		switch {
		case err == nil:
			out.OtherAccount = other.ID
			var cur sqin.LoA
			if err := tx.QueryRowContext(ctx, db.sql(qAccountForUpd), accountID).Scan(num(&cur)); err != nil {
				return err
			}
			out.LoA = cur
			if mailFor != nil {
				if m := mailFor(other); m != nil {
					return db.queueMails(ctx, tx, []*signup.Mail{m})
				}
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var cur sqin.LoA
		if err := tx.QueryRowContext(ctx, db.sql(qAccountForUpd), accountID).Scan(num(&cur)); err != nil {
			return err
		}
		out.LoA = max(cur, loa)
		res, err := tx.ExecContext(ctx, db.sql(qLinkAccount), personID, int64(out.LoA), ms(now), accountID, personID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			// Linked to another person already: not this proofing's to change.
			return cmp.Or(err, error(fail(op, sqin.ErrConflict, nil)))
		}
		_, err = tx.ExecContext(ctx, db.sql(qRecordLevel), accountID, int64(loa), how, ms(now))
		return err
	})
	if err != nil {
		return signup.Proved{}, wrap(op, err)
	}
	return out, nil
}

// PersonAccount returns the account other than accountID linked to the
// person, or sqin.ErrNotFound.
func (db *DB) PersonAccount(ctx context.Context, personID, accountID string) (*sqin.Account, error) {
	a, err := scanAccount(db.read.QueryRowContext(ctx, db.sql(qPersonHolder), personID, accountID))
	if err != nil {
		return nil, wrap("sqlstore.PersonAccount", err)
	}
	return a, nil
}

// QueueMail stores mails for the sender.
func (db *DB) QueueMail(ctx context.Context, mails ...*signup.Mail) error {
	return wrap("sqlstore.QueueMail", db.inTx(ctx, func(tx *sql.Tx) error { return db.queueMails(ctx, tx, mails) }))
}

func (db *DB) queueMails(ctx context.Context, tx *sql.Tx, mails []*signup.Mail) error {
	for _, m := range mails {
		if _, err := tx.ExecContext(ctx, db.sql(qQueueMail), m.ID, m.To, m.Subject, m.Body, m.Kind, ms(m.CreatedAt),
			ms(m.CreatedAt), 0, 0, 0, ""); err != nil {
			return err
		}
	}
	return nil
}

// ClaimMails leases up to n due mails: each is claimed by a conditional
// update, so two senders never hold the same mail at once.
func (db *DB) ClaimMails(ctx context.Context, now time.Time, lease time.Duration, n int) ([]*signup.Mail, error) {
	const op = "sqlstore.ClaimMails"
	rows, err := db.read.QueryContext(ctx, db.sql(qDueMails), ms(now), ms(now), n)
	if err != nil {
		return nil, wrap(op, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, wrap(op, err)
		}
		ids = append(ids, id)
	}
	if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
		return nil, wrap(op, err)
	}
	var out []*signup.Mail
	for _, id := range ids {
		m := &signup.Mail{ID: id}
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, db.sql(qLeaseMail), ms(now.Add(lease)), id, ms(now)).Scan(&m.To, &m.Subject,
				&m.Body, &m.Kind, millis{&m.CreatedAt}, &m.Attempts)
		})
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue // another sender took it
		case err != nil:
			return out, wrap(op, err)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *signup.Mail) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// MailSent marks the mail sent and empties its body.
func (db *DB) MailSent(ctx context.Context, id string, now time.Time) error {
	_, err := db.write.ExecContext(ctx, db.sql(qMailSent), ms(now), id)
	return wrap("sqlstore.MailSent", err)
}

// MailFailed records a failed attempt; a zero next gives up: the mail is
// never due again and its body (an email code, a reset link) is erased,
// while its recipient, kind and last error stay for an operator to see.
func (db *DB) MailFailed(ctx context.Context, id string, next time.Time, reason string) error {
	if len(reason) > 200 {
		reason = reason[:200]
	}
	var err error
	if next.IsZero() {
		_, err = db.write.ExecContext(ctx, db.sql(qMailAbandoned), reason, id)
	} else {
		_, err = db.write.ExecContext(ctx, db.sql(qMailFailed), ms(next), reason, id)
	}
	return wrap("sqlstore.MailFailed", err)
}

var (
	qPruneFlows = newQuery(`DELETE FROM signup_flows WHERE expires_at <= ?`)
	qPruneMails = newQuery(`DELETE FROM mail_outbox WHERE (sent_at > 0 AND sent_at < ?) OR (next_attempt_at = 0 AND created_at < ?)`)
)

// PruneSignup deletes expired registrations, the mails sent or given up
// before mailsBefore, the letters spent, voided or expired before it and
// expired password resets.
func (db *DB) PruneSignup(ctx context.Context, now, mailsBefore time.Time) error {
	const op = "sqlstore.PruneSignup"
	if _, err := db.write.ExecContext(ctx, db.sql(qPruneFlows), ms(now)); err != nil {
		return wrap(op, err)
	}
	if _, err := db.write.ExecContext(ctx, db.sql(qPruneMails), ms(mailsBefore), ms(mailsBefore)); err != nil {
		return wrap(op, err)
	}
	return wrap(op, db.pruneLetters(ctx, now, mailsBefore))
}
