package sqlstore

import (
	"context"
	"database/sql/driver"

	"modernc.org/sqlite"
)

// cachingConnector opens SQLite connections that keep their prepared
// statements. modernc.org/sqlite compiles the SQL text again on every call
// made without a *sql.Stmt, which costs as much as running a simple query;
// *sql.Stmt cannot help inside transactions on the one-connection write pool
// (preparing on the pool would wait for the connection the transaction
// holds). Caching per connection, keyed by the text, works everywhere.
//
// Only statements with arguments are cached: the store's queries are fixed
// texts, so the cache stays small, while scripts such as migrations run
// once. A cached statement serves one call at a time: a query must not run
// again on the same connection while rows of an earlier run of the same
// text are still open.
type cachingConnector struct {
	driver.Connector
	counts *counter
	writer bool // connections of the write pool: a statement outside a transaction commits
}

func newCachingConnector(dsn string, counts *counter, writer bool) (driver.Connector, error) {
	c, err := sqlite.NewConnector(dsn)
	return cachingConnector{c, counts, writer}, err
}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &cachingConn{conn: conn.(sqliteConn), stmts: make(map[string]driver.Stmt),
		counts: c.counts, writer: c.writer}, nil
}

// sqliteConn is what modernc.org/sqlite's connections implement.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is a SQLite connection with a statement cache. database/sql
// uses a connection from one goroutine at a time, so the map needs no lock.
type cachingConn struct {
	conn   sqliteConn
	stmts  map[string]driver.Stmt
	counts *counter
	writer bool
	inTx   bool
}

// count counts a statement: a commit when it runs alone on the writer.
func (c *cachingConn) count() { c.counts.statement(c.writer && !c.inTx) }

func (c *cachingConn) stmt(ctx context.Context, query string) (driver.Stmt, error) {
	if s, ok := c.stmts[query]; ok {
		return s, nil
	}
	s, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = s
	return s, nil
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.count()
	if len(args) == 0 {
		return c.conn.QueryContext(ctx, query, args)
	}
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.count()
	if len(args) == 0 {
		return c.conn.ExecContext(ctx, query, args)
	}
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) Close() error {
	for _, s := range c.stmts {
		s.Close()
	}
	return c.conn.Close()
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.conn.Prepare(query) }
func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.counts.statement(false)
	tx, err := c.conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return countedTx{tx, c}, nil
}

// countedTx counts its COMMIT or ROLLBACK as a statement.
type countedTx struct {
	driver.Tx
	c *cachingConn
}

func (t countedTx) Commit() error {
	t.c.inTx = false
	t.c.counts.statement(true)
	return t.Tx.Commit()
}

func (t countedTx) Rollback() error {
	t.c.inTx = false
	t.c.counts.statement(false)
	return t.Tx.Rollback()
}
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.conn.PrepareContext(ctx, query)
}
func (c *cachingConn) Ping(ctx context.Context) error         { return c.conn.Ping(ctx) }
func (c *cachingConn) ResetSession(ctx context.Context) error { return c.conn.ResetSession(ctx) }
func (c *cachingConn) IsValid() bool                          { return c.conn.IsValid() }
