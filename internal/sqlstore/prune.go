package sqlstore

import (
	"context"
	"time"
)

// qPrune deletes, each on its own, what has expired by the time given as
// every argument. Grants go last, after the refresh tokens that name them.
var qPrune = []query{
	newQuery(`DELETE FROM auth_codes WHERE expires_at BETWEEN 1 AND ?`),
	newQuery(`DELETE FROM auth_requests WHERE expires_at BETWEEN 1 AND ?`),
	newQuery(`DELETE FROM sessions WHERE expires_at BETWEEN 1 AND ?`),
	newQuery(`DELETE FROM revoked_tokens WHERE expires_at BETWEEN 1 AND ?`),
	newQuery(`DELETE FROM used_once WHERE expires_at BETWEEN 1 AND ?`),
	newQuery(`DELETE FROM rate_limits WHERE expires_at <= ?`),
	newQuery(`DELETE FROM refresh_tokens WHERE expires_at BETWEEN 1 AND ?`),
	newQuery(`DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE expires_at BETWEEN 1 AND ?)`),
	newQuery(`DELETE FROM grants WHERE expires_at BETWEEN 1 AND ?`),
}

// Prune deletes what expired by now: authorization codes and requests,
// sessions, revoked access token identifiers, rate-limit buckets, refresh
// tokens, and grants with their refresh tokens. Run it periodically (every
// minute keeps each run short); a run that stops half-way loses nothing.
func (db *DB) Prune(ctx context.Context, now time.Time) error {
	at := ms(now)
	for _, q := range qPrune {
		if _, err := db.write.ExecContext(ctx, db.sql(q), at); err != nil {
			return wrap("sqlstore.Prune", err)
		}
	}
	return nil
}
