// Package sqlstore implements store.Store on SQLite (modernc.org/sqlite, pure
// Go) and on PostgreSQL (pgx), with one set of queries.
//
// Queries are written once with ? placeholders; PostgreSQL's $n form is
// computed when the package is initialised. Times are stored as unix
// milliseconds in UTC, 0 for the zero time; an expiry of 0 means "never".
// String lists are stored space-separated, so their elements must be
// non-empty and contain no space (true of scopes, claim names, URIs, AMR
// and ACR values); an empty list reads back as nil, as does an empty byte
// slice.
//
// On SQLite, writes go through a pool of one connection whose transactions
// begin IMMEDIATE, so writers in this process queue instead of failing with
// SQLITE_BUSY (busy_timeout covers other processes); reads use a pool of
// read-only connections that WAL lets run beside the writer. Each SQLite
// connection keeps its prepared statements (see stmtcache.go); pgx does the
// same on its own.
//
// The callbacks of ExchangeCode, RedeemCode, RotateRefreshToken and
// RotateRefresh run inside the write transaction and must not call the
// store.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

var _ store.Store = (*DB)(nil)

// Dialect names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// DB implements store.Store on SQLite or PostgreSQL. It is safe for
// concurrent use.
type DB struct {
	dialect string
	read    *sql.DB // queries that only read
	write   *sql.DB // writes and transactions; the same pool as read on PostgreSQL
	counts  *counter
	hits    *hitQueue // SQLite: HitAll's group commit
}

// Open connects to the database named by rawURL and checks that it answers.
// It does not create the schema: call Migrate for that.
//
// Accepted forms:
//
//	sqlite:///absolute/path/file.db
//	sqlite://relative/path/file.db
//	sqlite::memory:          (one connection, for tests)
//	postgres://user@host:5432/db?sslmode=disable&search_path=schema
//
// The parent directory of a SQLite file is created if missing. A PostgreSQL
// URL takes every pgx parameter (search_path and other server settings
// included) and pool_max_conns, the size of the connection pool.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	const op = "sqlstore.Open"
	var (
		db  *DB
		err error
	)
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		db, err = openPostgres(rawURL)
	case rawURL == "sqlite::memory:":
		db, err = openSQLite("")
	case strings.HasPrefix(rawURL, "sqlite://") && len(rawURL) > len("sqlite://"):
		db, err = openSQLite(strings.TrimPrefix(rawURL, "sqlite://"))
	default:
		return nil, &sqin.Error{Code: sqin.EInvalid, Op: op,
			Message: "database URL must be sqlite:///path/file.db, sqlite://relative/file.db or postgres://…"}
	}
	if err != nil {
		return nil, &sqin.Error{Code: sqin.EInvalid, Op: op, Err: err}
	}
	if err := db.Ping(ctx); err != nil { // the write pool first: it turns WAL on
		db.Close()
		return nil, &sqin.Error{Code: sqin.EInternal, Op: op, Err: err}
	}
	return db, nil
}

// sqlitePath escapes the characters that SQLite's URI filenames reserve.
var sqlitePath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

func openSQLite(path string) (*DB, error) {
	const params = "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=temp_store(2)"
	counts := new(counter)
	if path == "" {
		c, err := newCachingConnector("file::memory:"+params, counts, true)
		if err != nil {
			return nil, err
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(1) // the database lives and dies with its connection
		return &DB{dialect: SQLite, read: db, write: db, counts: counts, hits: new(hitQueue)}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	dsn := "file:" + sqlitePath.Replace(path) + params +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	wc, err := newCachingConnector(dsn, counts, true)
	if err != nil {
		return nil, err
	}
	rc, err := newCachingConnector(dsn+"&_pragma=query_only(1)", counts, false)
	if err != nil {
		return nil, err
	}
	write, read := sql.OpenDB(wc), sql.OpenDB(rc)
	write.SetMaxOpenConns(1)
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	return &DB{dialect: SQLite, read: read, write: write, counts: counts, hits: new(hitQueue)}, nil
}

func openPostgres(rawURL string) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	n := max(10, 4*runtime.GOMAXPROCS(0))
	if s := q.Get("pool_max_conns"); s != "" {
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			return nil, fmt.Errorf("pool_max_conns %q is not a positive integer", s)
		}
		q.Del("pool_max_conns")
		u.RawQuery = q.Encode()
	}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, err
	}
	counts := new(counter)
	cfg.Tracer = pgCounter{counts}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{dialect: Postgres, read: db, write: db, counts: counts}, nil
}

// Dialect is SQLite or Postgres.
func (db *DB) Dialect() string { return db.dialect }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.write.PingContext(ctx); err != nil {
		return err
	}
	return db.read.PingContext(ctx)
}

// Close closes the connection pools.
func (db *DB) Close() error {
	if s, ok := sequencers.LoadAndDelete(db); ok {
		s.(*sequencer).wg.Wait() // its round ends within sequenceTimeout
	}
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	return err
}

// query is one statement, in the text of each dialect.
type query struct{ sqlite, postgres string }

// newQuery takes a statement with ? placeholders (and no ? anywhere else).
func newQuery(s string) query {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
		} else {
			b.WriteByte(s[i])
		}
	}
	return query{sqlite: s, postgres: b.String()}
}

// insertQuery is INSERT INTO table (cols) VALUES (?, …).
func insertQuery(table, cols string) query {
	marks := strings.Repeat("?, ", strings.Count(cols, ",")+1)
	return newQuery("INSERT INTO " + table + " (" + cols + ") VALUES (" + marks[:len(marks)-2] + ")")
}

// sql is q's text in the dialect of db.
func (db *DB) sql(q query) string {
	if db.dialect == Postgres {
		return q.postgres
	}
	return q.sqlite
}

// inTx runs fn in a write transaction, committed when fn returns nil
// together with the audit events ctx carries (see audit.go).
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		db.rollback(ctx, tx)
		return err
	}
	return db.commit(ctx, tx)
}

// exec runs a write on its own and reports whether it changed a row; with
// the audit events ctx carries, unless it changed none.
func (db *DB) exec(ctx context.Context, q query, args ...any) (bool, error) {
	if audit.Pending(ctx) {
		return db.execChanged(ctx, q, args...)
	}
	res, err := db.write.ExecContext(ctx, db.sql(q), args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// fail returns an error of kind (one of sqin's sentinel errors) for op:
// sqin.ErrorCode and ErrorMessage read kind's code and message, errors.Is
// matches kind, and the log keeps cause when there is one.
func fail(op string, kind *sqin.Error, cause error) error {
	err := error(kind)
	if cause != nil {
		err = causeOf{kind, cause}
	}
	return &sqin.Error{Code: kind.Code, Message: kind.Message, Op: op, Err: err}
}

// causeOf is a driver error that errors.Is also matches against a kind.
type causeOf struct{ kind, err error }

func (c causeOf) Error() string   { return c.err.Error() }
func (c causeOf) Unwrap() []error { return []error{c.kind, c.err} }

// wrap names op in err: sql.ErrNoRows becomes sqin.ErrNotFound, a unique
// violation sqin.ErrConflict, an error that already is a *sqin.Error with a
// code stays as it is, anything else is internal.
func wrap(op string, err error) error {
	var se *sqin.Error
	var le *sqlite.Error
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fail(op, sqin.ErrNotFound, nil)
	case errors.As(err, &le) && (le.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || le.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE),
		errors.As(err, &pe) && pe.Code == "23505":
		return fail(op, sqin.ErrConflict, err)
	case errors.As(err, &se) && se.Code != "":
		return err
	}
	return &sqin.Error{Code: sqin.EInternal, Op: op, Err: err}
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// ms is t in unix milliseconds, 0 for the zero time.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// expired reports whether an expiry in milliseconds (0 = never) has passed.
func expired(expiresAt, now int64) bool { return expiresAt != 0 && expiresAt <= now }

// blob stores an empty byte slice as NULL.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// lists joins string lists for storage, remembering the first that cannot
// be stored.
type lists struct{ err error }

func (l *lists) join(s []string) string {
	for _, e := range s {
		if l.err == nil && (e == "" || strings.Contains(e, " ")) {
			l.err = fmt.Errorf("list element %q is empty or contains a space", e)
		}
	}
	return strings.Join(s, " ")
}

// invalid reports a value that the store cannot hold.
func (l *lists) invalid(op string) error {
	return &sqin.Error{Code: sqin.EInvalid, Op: op, Message: l.err.Error()}
}

// millis scans a unix-millisecond column into a time.Time (UTC).
type millis struct{ t *time.Time }

func (m millis) Scan(src any) error {
	v, ok := src.(int64)
	if !ok {
		return fmt.Errorf("time column holds %T", src)
	}
	*m.t = time.Time{}
	if v != 0 {
		*m.t = time.UnixMilli(v).UTC()
	}
	return nil
}

// strs scans a space-separated column into a string list.
type strs struct{ s *[]string }

func (l strs) Scan(src any) error {
	var v string
	switch src := src.(type) {
	case string:
		v = src
	case []byte:
		v = string(src)
	default:
		return fmt.Errorf("list column holds %T", src)
	}
	*l.s = nil
	if v != "" {
		*l.s = strings.Split(v, " ")
	}
	return nil
}

// integer scans an integer column into an int type such as sqin.LoA.
type integer[T ~int] struct{ p *T }

func num[T ~int](p *T) integer[T] { return integer[T]{p} }

func (i integer[T]) Scan(src any) error {
	v, ok := src.(int64)
	if !ok {
		return fmt.Errorf("integer column holds %T", src)
	}
	*i.p = T(v)
	return nil
}
