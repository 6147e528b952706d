package sqlstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

// On PostgreSQL every statement sent through database/sql is a round trip,
// and on a small machine a round trip costs more CPU (system calls and two
// context switches, in the server and in the backend) than the statement
// itself. The token endpoint's changes (a code redeemed, a refresh token
// rotated) have one shape: claim a row and read what the decision needs,
// decide in Go, write, commit. pgSpend sends them as two pipelines on one
// connection instead of five or more round trips: BEGIN, the request's
// single-use keys and the claim together; then the writes, the audit
// events for the queue and COMMIT together. The transaction is the same:
// nothing is visible before COMMIT, and an error anywhere rolls everything
// back.

// pgWrite is a statement pgSpend sends with the commit.
type pgWrite struct {
	sql  string
	args []any
}

// errUnclaimed tells the caller of pgSpend that the claim found no row (a
// code or token missing, used or expired): nothing was written, and the
// caller takes its general path, which explains why.
var errUnclaimed = errors.New("sqlstore: nothing claimed")

// pgSpend runs, on PostgreSQL, a change that first records the request's
// single-use keys uniq (see spendTx), then claims with claim (a statement
// returning one row, scanned into dest), then runs decide, whose writes
// are committed with the events ctx carries. decide returns the writes,
// whether to commit them and the error to return (a refused change returns
// no commit and its error: the keys are then recorded alone, as spendTx
// does). When a key is a replay, pgSpend rolls back and returns what
// spendTx returns; when the claim finds no row, it rolls back and returns
// errUnclaimed, before decide runs.
func (db *DB) pgSpend(ctx context.Context, op string, uniq []store.OnceKey, now time.Time, claim query,
	claimArgs, dest []any, decide func() ([]pgWrite, bool, error)) error {
	var (
		replays []string
		commit  bool
		result  error // decide's error, returned after a commit
		queued  bool
	)
	err := db.withPgConn(ctx, func(c *pgx.Conn) error {
		b := new(pgx.Batch)
		b.BeginTx(pgx.TxOptions{})
		if len(uniq) > 0 {
			q, args := onceQuery(uniq, now)
			b.Queue(db.sql(q), args...)
		}
		b.Queue(db.sql(claim), claimArgs...)
		br := c.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
		if len(uniq) > 0 {
			rows, err := br.Query()
			if err != nil {
				br.Close()
				return err
			}
			recorded, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				br.Close()
				return err
			}
			replays = unrecorded(uniq, recorded)
		}
		claimErr := br.QueryRow().Scan(dest...)
		if err := br.Close(); err != nil && claimErr == nil {
			claimErr = err
		}
		switch {
		case len(replays) > 0:
			return nil
		case errors.Is(claimErr, pgx.ErrNoRows):
			return errUnclaimed
		case claimErr != nil:
			return claimErr
		}
		var writes []pgWrite
		writes, commit, result = decide()
		if !commit {
			return nil
		}
		b = new(pgx.Batch)
		for _, w := range writes {
			b.Queue(w.sql, w.args...)
		}
		if evs := audit.Take(ctx); len(evs) > 0 {
			ps := make([]*audit.Event, len(evs))
			for i := range evs {
				ps[i] = &evs[i]
			}
			if err := db.queueStatements(ps, func(q string, args []any) { b.Queue(q, args...) }); err != nil {
				return err
			}
			// See durableBySequencer.
			b.Queue("SET LOCAL synchronous_commit TO off")
			queued = true
		}
		b.Queue("commit")
		return c.SendBatch(ctx, b).Close()
	})
	switch {
	case len(replays) > 0:
		audit.Take(ctx)
		return db.replayed(ctx, op, uniq, now, nil)
	case errors.Is(err, errUnclaimed):
		return err
	case err != nil:
		audit.Take(ctx)
		return db.spendAlone(ctx, uniq, now, wrap(op, err))
	case !commit:
		audit.Take(ctx)
		return db.spendAlone(ctx, uniq, now, result)
	}
	if queued {
		if err := db.durableBySequencer(ctx); err != nil {
			return wrap(op, err)
		}
	}
	return result
}

// durableBySequencer waits for the sequencer to move the events that a
// change committed without waiting for the disk (synchronous_commit off)
// and returns once the change is durable. The change's commit does not
// flush the WAL: the sequencing round that follows it commits durably,
// and PostgreSQL flushes the WAL in order, so that flush covers the
// change's commit record too; one flush (and one fdatasync, which on a
// virtual machine is a costly exit) then serves every change the round
// sequences. So a change is durable, with its events in the log, before
// its caller answers anyone. When no round succeeds in time, a durable
// commit of its own (a replay-cache key that expires at once) flushes the
// WAL instead; if even that fails, the change is visible but
// may not survive a crash, and the caller gets the error.
func (db *DB) durableBySequencer(ctx context.Context) error {
	if db.sequencer().await(ctx, db) {
		return nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sequenceTimeout)
	defer cancel()
	tx, err := db.write.BeginTx(fctx, nil)
	if err != nil {
		return fmt.Errorf("flush the WAL after a failed sequencing round: %w", err)
	}
	defer tx.Rollback()
	// A commit flushes the WAL only when its transaction wrote some, and
	// only when it is synchronous: a replay-cache key that expires at once
	// (pruned like any other) is a write that blocks no one.
	if _, err := tx.ExecContext(fctx, "SET LOCAL synchronous_commit TO on"); err != nil {
		return fmt.Errorf("flush the WAL after a failed sequencing round: %w", err)
	}
	if _, err := tx.ExecContext(fctx, db.sql(qFlushMark), "sqin:flush:"+rand.Text(), int64(0)); err != nil {
		return fmt.Errorf("flush the WAL after a failed sequencing round: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("flush the WAL after a failed sequencing round: %w", err)
	}
	return nil
}

// qFlushMark is durableBySequencer's write.
var qFlushMark = newQuery(`INSERT INTO used_once (key, expires_at) VALUES (?, ?)`)

// isCommit reports whether a statement is a COMMIT (for the counters).
func isCommit(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "commit") }

// withPgConn runs fn on a pooled PostgreSQL connection as pgx sees it,
// rolls back any transaction fn leaves open, and gives the connection back
// to the pool before returning: holding it while the caller goes on
// (recording keys alone, awaiting the sequencer) would let concurrent
// requests exhaust the pool and wait for each other.
func (db *DB) withPgConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		defer rollbackOpen(ctx, c)
		return fn(c)
	})
}

// rollbackOpen rolls back the transaction a pipeline left open on c (after
// an error, or on purpose); the pool discards a broken connection.
func rollbackOpen(ctx context.Context, c *pgx.Conn) {
	if c.PgConn().TxStatus() != 'I' {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		c.Exec(rctx, "rollback")
		cancel()
	}
}

// execUnflushed runs one statement alone on PostgreSQL in a transaction
// that commits without waiting for the disk (synchronous_commit off), in
// one round trip, and returns how many rows it changed. Only for writes
// whose loss in a crash harms no one (see IssueCode); any later durable
// commit on the database flushes them too, since the WAL is flushed in
// order.
func (db *DB) execUnflushed(ctx context.Context, q query, args ...any) (int64, error) {
	var n int64
	err := db.withPgConn(ctx, func(c *pgx.Conn) error {
		b := new(pgx.Batch)
		b.BeginTx(pgx.TxOptions{})
		b.Queue("SET LOCAL synchronous_commit TO off")
		b.Queue(db.sql(q), args...).Exec(func(tag pgconn.CommandTag) error {
			n = tag.RowsAffected()
			return nil
		})
		b.Queue("commit")
		return c.SendBatch(ctx, b).Close()
	})
	return n, err
}
