package store

import (
	"context"
	"time"

	"github.com/sqin/sqin"
)

// LogoutDelivery is one back-channel logout notification waiting to be
// sent: client ClientID must learn that session SessionID of account
// AccountID has ended. It holds no token: a logout token is signed afresh
// for each attempt.
type LogoutDelivery struct {
	ID            int64
	ClientID      string
	AccountID     string
	SessionID     string
	CreatedAt     time.Time // when the session ended
	Attempts      int       // claims so far, this one included once claimed
	NextAttemptAt time.Time // due time, or the end of the current claim's lease
	LastError     string    // why the previous attempt failed; empty before any
}

// EndedSession is what ending a session did.
type EndedSession struct {
	// Clients holds every client that held a grant of the session (revoked,
	// offline or not), ordered by ID, read before the grants were revoked:
	// the ones with a front-channel URI are told in the browser.
	Clients []*sqin.Client
	// Enqueued holds the back-channel deliveries added, one per client of
	// Clients with a back-channel URI that had none queued for the session.
	Enqueued []*LogoutDelivery
	// Evicted counts the oldest deliveries deleted to keep the queue within
	// its limit.
	Evicted int
}

// Logouts ends sessions and keeps the durable queue of back-channel logout
// deliveries, shared by every server instance.
type Logouts interface {
	// EndSession does what DeleteSession does and, in the same transaction,
	// enqueues the session's back-channel deliveries (due at now). One
	// delivery per session and client exists at most: ending a session
	// twice while the first delivery waits adds nothing. When queueLimit > 0
	// and the queue would hold more than queueLimit deliveries, the oldest
	// ones are deleted first (Evicted); signing out never fails because the
	// queue is full. An empty sessionID is sqin.EInvalid.
	EndSession(ctx context.Context, sessionID string, now time.Time, queueLimit int) (*EndedSession, error)
	// ClaimLogouts takes up to limit deliveries due at now, oldest due
	// first: each has Attempts incremented and NextAttemptAt moved to
	// now+lease, atomically, so that no other caller (in this process or
	// another instance) claims it before the lease ends. The returned
	// values are the claimed rows.
	ClaimLogouts(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*LogoutDelivery, error)
	// CompleteLogout deletes a delivery that was sent or is given up. It
	// names the claim by the delivery's Attempts as ClaimLogouts returned
	// it: when the row has been claimed again since (the lease ran out) or
	// is gone, nothing changes and the error is sqin.ErrNotFound.
	CompleteLogout(ctx context.Context, id int64, attempts int) error
	// RetryLogout records a failed attempt of the claim (id, attempts): the
	// delivery is due again at next, with lastErr. A lost claim is
	// sqin.ErrNotFound, as for CompleteLogout.
	RetryLogout(ctx context.Context, id int64, attempts int, next time.Time, lastErr string) error
	// CountLogouts returns how many deliveries are queued.
	CountLogouts(ctx context.Context) (int, error)
}
