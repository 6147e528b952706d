package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
)

// The authorization endpoint's reads and writes on an SSO session: the
// session and its consent to the client in one read, the code and the
// request it answers in one write.

var (
	qGetSessionConsent = newQuery(`SELECT ` + prefixCols("s.", sessionCols) + `,
	COALESCE(c.account_id, ''), COALESCE(c.scopes, ''), COALESCE(c.claims, ''), COALESCE(c.granted_at, 0)
	FROM sessions s LEFT JOIN consents c ON c.account_id = s.account_id AND c.client_id = ?
	WHERE s.id = ? AND (s.expires_at = 0 OR s.expires_at > ?)`)
	// qTakeRequest deletes the request a code answers: a pushed one must
	// still be a request_uri (no session yet), a stored one must carry the
	// session.
	qTakeRequest = newQuery(`DELETE FROM auth_requests WHERE id = ? AND client_id = ?
	AND (expires_at = 0 OR expires_at > ?) AND pushed = ? AND session_id = ?`)
	// qIssueCode is qTakeRequest and qCreateCode in one statement, for
	// PostgreSQL (one round trip, and no transaction of its own): the code
	// is inserted only when the request was deleted.
	qIssueCode = newQuery(`WITH d AS (DELETE FROM auth_requests WHERE id = ? AND client_id = ?
	AND (expires_at = 0 OR expires_at > ?) AND pushed = ? AND session_id = ? RETURNING 1)
	INSERT INTO auth_codes (` + codeCols + `) SELECT ` + marks(codeCols) + ` FROM d`)
)

// marks is one ? per column of cols.
func marks(cols string) string {
	m := strings.Repeat("?, ", strings.Count(cols, ",")+1)
	return m[:len(m)-2]
}

// GetSessionConsent returns the session, as GetSession does, and the
// consent its account gave clientID (nil when none), in one read.
func (db *DB) GetSessionConsent(ctx context.Context, id, clientID string, now time.Time) (*sqin.Session, *sqin.Consent, error) {
	s, c := new(sqin.Session), new(sqin.Consent)
	err := db.read.QueryRowContext(ctx, db.sql(qGetSessionConsent), clientID, id, ms(now)).Scan(&s.ID, &s.AccountID,
		num(&s.LoA), strs{&s.AMR}, millis{&s.AuthTime}, millis{&s.CreatedAt}, millis{&s.ExpiresAt},
		&c.AccountID, strs{&c.Scopes}, strs{&c.Claims}, millis{&c.GrantedAt})
	if err != nil {
		return nil, nil, wrap("sqlstore.GetSessionConsent", err)
	}
	if c.AccountID == "" {
		return s, nil, nil
	}
	c.ClientID = clientID
	return s, c, nil
}

// IssueCode stores the code and deletes the request it answers in one
// transaction; see store.Grants.IssueCode.
func (db *DB) IssueCode(ctx context.Context, c *sqin.AuthCode, requestID string, pushed bool, now time.Time) error {
	const op = "sqlstore.IssueCode"
	args, err := codeArgs(op, c)
	if err != nil {
		return err
	}
	session := c.SessionID
	if pushed {
		session = ""
	}
	take := []any{requestID, c.ClientID, ms(now), pushed, session}
	if db.dialect == Postgres && !audit.Pending(ctx) {
		// Committed without waiting for the disk: a crash can lose only
		// codes not yet redeemed (their users sign in again) and give back
		// the requests they ended (usable again by their own client, until
		// they expire). A code's redemption is durable before its tokens
		// leave (durableBySequencer), which flushes the code first.
		n, err := db.execUnflushed(ctx, qIssueCode, append(take, args...)...)
		if err != nil {
			return wrap(op, err)
		}
		if n != 1 {
			return fail(op, sqin.ErrNotFound, nil)
		}
		return nil
	}
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.sql(qTakeRequest), take...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			if err == nil {
				err = fail(op, sqin.ErrNotFound, nil)
			}
			return err
		}
		_, err = tx.ExecContext(ctx, db.sql(qCreateCode), args...)
		return err
	}))
}
