package sqlstore

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Counts are the statements a store sent to its database since it was
// opened: every query and write, BEGIN and COMMIT included (on PostgreSQL
// each is a round trip; on SQLite each is a step of the engine, the writes
// on the one writer connection). Benchmarks report them per operation to
// show the database work of a request.
type Counts struct {
	Statements int64 // BEGIN, COMMIT and ROLLBACK included
	// Commits are the transactions committed: COMMITs and the writes run
	// outside a transaction (each its own transaction). On SQLite each
	// holds the one writer; on PostgreSQL each waits for a WAL flush.
	Commits int64
}

// Sub is c minus an earlier reading.
func (c Counts) Sub(before Counts) Counts {
	return Counts{Statements: c.Statements - before.Statements, Commits: c.Commits - before.Commits}
}

// counter counts statements for one DB; it is shared by its connections.
type counter struct{ statements, commits atomic.Int64 }

func (c *counter) statement(commit bool) {
	c.statements.Add(1)
	if commit {
		c.commits.Add(1)
	}
}

// Counts returns the statements sent so far.
func (db *DB) Counts() Counts {
	return Counts{Statements: db.counts.statements.Load(), Commits: db.counts.commits.Load()}
}

// pgCounter counts the statements pgx sends (its transactions' BEGIN and
// COMMIT are statements like any other).
type pgCounter struct{ *counter }

func (t pgCounter) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.statement(strings.EqualFold(d.SQL, "commit") || (conn.PgConn().TxStatus() == 'I' && isWrite(d.SQL)))
	return ctx
}

// isWrite reports whether a statement writes: its first word is INSERT,
// UPDATE or DELETE, or it is a WITH query that holds one of them (the
// store's statements name no table or column after these words).
func isWrite(sql string) bool {
	w, rest, _ := strings.Cut(strings.TrimSpace(sql), " ")
	switch {
	case strings.EqualFold(w, "insert"), strings.EqualFold(w, "update"), strings.EqualFold(w, "delete"):
		return true
	case strings.EqualFold(w, "with"):
		rest = strings.ToUpper(rest)
		return strings.Contains(rest, "INSERT INTO") || strings.Contains(rest, "UPDATE ") || strings.Contains(rest, "DELETE FROM")
	}
	return false
}

func (pgCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart counts a pipeline (pgSpend) as one statement: it is one
// round trip, which is what the PostgreSQL counts stand for; a commit when
// it holds a COMMIT.
func (t pgCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	commit := false
	for _, q := range d.Batch.QueuedQueries {
		commit = commit || isCommit(q.SQL)
	}
	t.statement(commit)
	return ctx
}

func (pgCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (pgCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
