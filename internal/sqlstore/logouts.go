package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

const logoutCols = `id, client_id, account_id, session_id, created_at, attempts, next_attempt_at, last_error`

// backchannelClients selects, for a session, each client that held a grant
// of it and registered a back-channel URI.
const backchannelClients = ` FROM grants g JOIN clients c ON c.id = g.client_id
	WHERE g.session_id = ? AND c.backchannel_logout_uri <> ''`

var (
	qSessionClients = newQuery(`SELECT ` + clientCols + ` FROM clients
		WHERE id IN (SELECT client_id FROM grants WHERE session_id = ?) ORDER BY id`)
	qCountBackchannel = newQuery(`SELECT COUNT(DISTINCT g.client_id)` + backchannelClients)
	// qQueueFill counts the queue, up to ? rows: cheap while it is far from
	// full, which is the normal case.
	qQueueFill   = newQuery(`SELECT COUNT(*) FROM (SELECT 1 FROM logout_queue LIMIT ?) q`)
	qEvictOldest = newQuery(`DELETE FROM logout_queue WHERE id IN (SELECT id FROM logout_queue ORDER BY id LIMIT ?)`)
	// PostgreSQL does not infer the type of a parameter in the select list
	// of INSERT … SELECT: the casts say it.
	qEnqueueLogouts = newQuery(`INSERT INTO logout_queue
		(client_id, account_id, session_id, created_at, attempts, next_attempt_at, last_error)
		SELECT g.client_id, MIN(g.account_id), g.session_id, CAST(? AS BIGINT), 0, CAST(? AS BIGINT), ''` +
		backchannelClients + `
		GROUP BY g.client_id, g.session_id
		ON CONFLICT (session_id, client_id) DO NOTHING
		RETURNING ` + logoutCols)
	qClaimLogouts = func() query {
		q := `UPDATE logout_queue SET attempts = attempts + 1, next_attempt_at = ?
		WHERE next_attempt_at <= ? AND id IN (SELECT id FROM logout_queue WHERE next_attempt_at <= ?
			ORDER BY next_attempt_at, id LIMIT ?%s)
		RETURNING ` + logoutCols
		// SQLite has one writer at a time; PostgreSQL's claimers skip the
		// rows another one is taking instead of queueing behind it (and the
		// outer next_attempt_at test, evaluated again on the locked row,
		// keeps a row that was claimed meanwhile out in any case).
		lite, pg := newQuery(strings.Replace(q, "%s", "", 1)),
			newQuery(strings.Replace(q, "%s", " FOR UPDATE SKIP LOCKED", 1))
		return query{sqlite: lite.sqlite, postgres: pg.postgres}
	}()
	qCompleteLogout = newQuery(`DELETE FROM logout_queue WHERE id = ? AND attempts = ?`)
	qRetryLogout    = newQuery(`UPDATE logout_queue SET next_attempt_at = ?, last_error = ? WHERE id = ? AND attempts = ?`)
	qCountLogouts   = newQuery(`SELECT COUNT(*) FROM logout_queue`)
)

func scanLogout(s scanner) (*store.LogoutDelivery, error) {
	d := new(store.LogoutDelivery)
	err := s.Scan(&d.ID, &d.ClientID, &d.AccountID, &d.SessionID, millis{&d.CreatedAt}, num(&d.Attempts),
		millis{&d.NextAttemptAt}, &d.LastError)
	return d, err
}

// EndSession ends the session as DeleteSession does and enqueues its
// back-channel deliveries in the same transaction. The queue limit is kept
// by deleting the oldest deliveries first: they belong to services that
// have been failing longest and are closest to being given up, whereas the
// session that ends now is the one whose services most likely still hold
// it open. Under concurrent sign-outs on PostgreSQL the limit may be
// overshot by a few rows for a moment.
func (db *DB) EndSession(ctx context.Context, sessionID string, now time.Time, queueLimit int) (*store.EndedSession, error) {
	const op = "sqlstore.EndSession"
	if sessionID == "" {
		return nil, &sqin.Error{Code: sqin.EInvalid, Op: op, Message: "session ID is empty"}
	}
	var ended *store.EndedSession
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		ended = new(store.EndedSession)
		rows, err := tx.QueryContext(ctx, db.sql(qSessionClients), sessionID)
		if err != nil {
			return err
		}
		for rows.Next() {
			c, err := scanClient(rows)
			if err != nil {
				rows.Close()
				return err
			}
			ended.Clients = append(ended.Clients, c)
		}
		if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if queueLimit > 0 {
			if ended.Evicted, err = db.makeRoom(ctx, tx, sessionID, queueLimit); err != nil {
				return err
			}
		}
		at := ms(now)
		rows, err = tx.QueryContext(ctx, db.sql(qEnqueueLogouts), at, at, sessionID)
		if err != nil {
			return err
		}
		for rows.Next() {
			d, err := scanLogout(rows)
			if err != nil {
				rows.Close()
				return err
			}
			ended.Enqueued = append(ended.Enqueued, d)
		}
		if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
			return err
		}
		slices.SortFunc(ended.Enqueued, func(a, b *store.LogoutDelivery) int { return cmp.Compare(a.ClientID, b.ClientID) })
		if _, err := tx.ExecContext(ctx, db.sql(qDeleteSession), sessionID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, db.sql(qRevokeSessionGrants), at, sessionID)
		return err
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	return ended, nil
}

// makeRoom deletes the oldest deliveries so that the session's own fit
// within limit, and returns how many it deleted.
func (db *DB) makeRoom(ctx context.Context, tx *sql.Tx, sessionID string, limit int) (int, error) {
	var incoming, queued int
	if err := tx.QueryRowContext(ctx, db.sql(qCountBackchannel), sessionID).Scan(&incoming); err != nil || incoming == 0 {
		return 0, err
	}
	if err := tx.QueryRowContext(ctx, db.sql(qQueueFill), limit).Scan(&queued); err != nil {
		return 0, err
	}
	excess := queued + incoming - limit
	if excess <= 0 {
		return 0, nil
	}
	res, err := tx.ExecContext(ctx, db.sql(qEvictOldest), excess)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ClaimLogouts claims due deliveries in one statement, so that two
// claimers, in this process or in other instances, never take one row.
func (db *DB) ClaimLogouts(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*store.LogoutDelivery, error) {
	const op = "sqlstore.ClaimLogouts"
	if limit <= 0 {
		return nil, nil
	}
	at := ms(now)
	rows, err := db.write.QueryContext(ctx, db.sql(qClaimLogouts), ms(now.Add(lease)), at, at, limit)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ds []*store.LogoutDelivery
	for rows.Next() {
		d, err := scanLogout(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	slices.SortFunc(ds, func(a, b *store.LogoutDelivery) int { return cmp.Compare(a.ID, b.ID) })
	return ds, nil
}

// CompleteLogout deletes the delivery if the claim (id, attempts) still
// holds it; otherwise sqin.ErrNotFound.
func (db *DB) CompleteLogout(ctx context.Context, id int64, attempts int) error {
	const op = "sqlstore.CompleteLogout"
	ok, err := db.exec(ctx, qCompleteLogout, id, attempts)
	if err == nil && !ok {
		return fail(op, sqin.ErrNotFound, nil)
	}
	return wrap(op, err)
}

// RetryLogout makes the claimed delivery due again at next; a lost claim is
// sqin.ErrNotFound.
func (db *DB) RetryLogout(ctx context.Context, id int64, attempts int, next time.Time, lastErr string) error {
	const op = "sqlstore.RetryLogout"
	ok, err := db.exec(ctx, qRetryLogout, ms(next), lastErr, id, attempts)
	if err == nil && !ok {
		return fail(op, sqin.ErrNotFound, nil)
	}
	return wrap(op, err)
}

// CountLogouts returns the number of queued deliveries.
func (db *DB) CountLogouts(ctx context.Context) (int, error) {
	var n int
	err := db.read.QueryRowContext(ctx, db.sql(qCountLogouts)).Scan(&n)
	return n, wrap("sqlstore.CountLogouts", err)
}
