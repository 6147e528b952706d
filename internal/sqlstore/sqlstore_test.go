package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/sqltest"
	"github.com/sqin/sqin/internal/store"
	"github.com/sqin/sqin/internal/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, sqliteURL(t)) })
}

func TestSQLiteMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, "sqlite::memory:") })
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, postgresURL(t)) })
}

// dialects gives each test a database URL per dialect.
var dialects = []struct {
	name string
	url  func(t testing.TB) string
}{
	{SQLite, sqliteURL},
	{Postgres, postgresURL},
}

// sqliteURL and postgresURL give each test a fresh database (sqltest).
func sqliteURL(t testing.TB) string   { return sqltest.SQLiteURL(t) }
func postgresURL(t testing.TB) string { return sqltest.PostgresURL(t) }

// openTest opens and migrates the database at url, closed when t ends.
func openTest(t testing.TB, url string) *DB {
	db, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestOpen(t *testing.T) {
	ctx := t.Context()
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		url, dialect string
		file         string // created by Open
	}{
		{url: "sqlite://rel/dir/sqin.db", dialect: SQLite, file: "rel/dir/sqin.db"},
		{url: "sqlite://" + filepath.Join(t.TempDir(), "a b?c#d%e", "sqin.db"), dialect: SQLite},
		{url: "sqlite::memory:", dialect: SQLite},
		{url: "mysql://localhost/sqin"},
		{url: "sqlite://"},
		{url: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&pool_max_conns=zero"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			db, err := Open(ctx, tc.url)
			if tc.dialect == "" {
				if sqin.ErrorCode(err) != sqin.EInvalid {
					t.Fatalf("Open: %v, want an invalid URL error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if db.Dialect() != tc.dialect {
				t.Errorf("Dialect() = %q, want %q", db.Dialect(), tc.dialect)
			}
			if tc.file != "" {
				if _, err := os.Stat(tc.file); err != nil {
					t.Error(err)
				}
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db.CreatePerson(ctx, &sqin.Person{ID: "p"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPostgresDialect(t *testing.T) {
	db := openTest(t, postgresURL(t)+"&pool_max_conns=3")
	if db.Dialect() != Postgres {
		t.Errorf("Dialect() = %q", db.Dialect())
	}
	if n := db.write.Stats().MaxOpenConnections; n != 3 {
		t.Errorf("pool of %d connections, want 3", n)
	}
}

// TestMigrateConcurrent migrates one database from several handles at once,
// as server instances starting together do, then once more.
func TestMigrateConcurrent(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			url := d.url(t)
			dbs := make([]*DB, 4)
			for i := range dbs {
				db, err := Open(t.Context(), url)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				dbs[i] = db
			}
			errs := make([]error, len(dbs))
			var wg sync.WaitGroup
			for i, db := range dbs {
				wg.Go(func() { errs[i] = db.Migrate(t.Context()) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if err := dbs[0].Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			files, _ := migrations.ReadDir("migrations/" + d.name)
			var n int
			if err := dbs[0].read.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != len(files) {
				t.Errorf("%d migrations recorded, want %d", n, len(files))
			}
		})
	}
}

// forEach runs fn on a fresh, migrated database of each dialect.
func forEach[T testing.TB](t T, run func(string, func(T)) bool, fn func(T, *DB)) {
	for _, d := range dialects {
		run(d.name, func(t T) { fn(t, openTest(t, d.url(t))) })
	}
}

func TestPrune(t *testing.T) {
	forEach(t, t.Run, func(t *testing.T, db *DB) {
		ctx := t.Context()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		past, future := now.Add(-time.Second), now.Add(time.Hour)
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, at := range []time.Time{past, future, {}} {
			id := fmt.Sprint(ms(at))
			must(db.CreateAuthCode(ctx, &sqin.AuthCode{Hash: "code" + id, GrantID: "g" + id, ExpiresAt: at}))
			must(db.CreateAuthRequest(ctx, &sqin.AuthRequest{ID: "req" + id, ExpiresAt: at}))
			must(db.CreateSession(ctx, &sqin.Session{ID: "sess" + id, ExpiresAt: at}))
			must(db.RevokeAccessToken(ctx, "jti"+id, at))
			// A grant expiring at "at", with a refresh token that does not
			// expire and one that expires at "at".
			code := "grant-code" + id
			must(db.CreateAuthCode(ctx, &sqin.AuthCode{Hash: code, GrantID: "g" + id}))
			must(db.ExchangeCode(ctx, code, past.Add(-time.Hour), func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				return &sqin.Grant{ID: c.GrantID, ExpiresAt: at}, &sqin.RefreshToken{Hash: "rt" + id, GrantID: c.GrantID}, nil
			}))
		}
		must(db.CreateAuthCode(ctx, &sqin.AuthCode{Hash: "code-for-rt", GrantID: "g-rt"}))
		must(db.ExchangeCode(ctx, "code-for-rt", now, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
			return &sqin.Grant{ID: c.GrantID}, &sqin.RefreshToken{Hash: "rt-expired", GrantID: c.GrantID, ExpiresAt: past}, nil
		}))
		_, err := db.Hit(ctx, "old", time.Minute, now.Add(-2*time.Minute))
		must(err)
		_, err = db.Hit(ctx, "new", time.Minute, now.Add(-time.Second))
		must(err)

		must(db.Prune(ctx, now))
		for table, want := range map[string]int{
			"auth_codes": 6, "auth_requests": 2, "sessions": 2, "revoked_tokens": 2,
			"grants": 3, "refresh_tokens": 2, "rate_limits": 1,
		} {
			var n int
			must(db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n))
			if n != want {
				t.Errorf("%d rows left in %s, want %d", n, table, want)
			}
		}
		if _, err := db.GetRefreshToken(ctx, "rt"+fmt.Sprint(ms(future))); err != nil {
			t.Errorf("refresh token of a live grant: %v", err)
		}
	})
}

func TestInvalidLists(t *testing.T) {
	db := openTest(t, "sqlite::memory:")
	for _, l := range [][]string{{"a b"}, {""}, {"openid", ""}} {
		err := db.CreateClient(t.Context(), &sqin.Client{ID: "rp", Scopes: l})
		var e *sqin.Error
		if !errors.As(err, &e) || e.Code != sqin.EInvalid || e.Op != "sqlstore.CreateClient" {
			t.Errorf("CreateClient with scopes %q: %v, want an invalid error", l, err)
		}
	}
}

func TestErrorsNameTheOperation(t *testing.T) {
	db := openTest(t, "sqlite::memory:")
	_, err := db.GetClient(t.Context(), "missing")
	var e *sqin.Error
	if !errors.As(err, &e) || e.Op != "sqlstore.GetClient" || !errors.Is(err, sqin.ErrNotFound) {
		t.Errorf("GetClient: %#v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = db.GetClient(ctx, "missing")
	if !errors.Is(err, context.Canceled) || sqin.ErrorCode(err) != sqin.EInternal {
		t.Errorf("GetClient with a cancelled context: %v", err)
	}
}

var benchNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func BenchmarkGetClient(b *testing.B) {
	forEach(b, b.Run, func(b *testing.B, db *DB) {
		c := &sqin.Client{
			ID:           "rp",
			Name:         "Ministère",
			RedirectURIs: []string{"https://rp.example/cb"},
			GrantTypes:   []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken},
			Scopes:       []string{"openid", "profile"},
			AuthMethod:   sqin.AuthSecretBasic,
			CreatedAt:    benchNow,
		}
		if err := db.CreateClient(b.Context(), c); err != nil {
			b.Fatal(err)
		}
		b.SetParallelism(4) // requests in flight per core
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := db.GetClient(b.Context(), "rp"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkExchangeCode(b *testing.B) {
	forEach(b, b.Run, func(b *testing.B, db *DB) {
		var n atomic.Int64
		b.SetParallelism(4) // requests in flight per core
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				id := fmt.Sprint(n.Add(1))
				code := &sqin.AuthCode{Hash: "code-" + id, ClientID: "rp", AccountID: "acct", GrantID: "g-" + id,
					Scopes: []string{"openid"}, AMR: []string{"pwd"}, ExpiresAt: benchNow.Add(time.Minute)}
				if err := db.CreateAuthCode(ctx, code); err != nil {
					b.Fatal(err)
				}
				err := db.ExchangeCode(ctx, code.Hash, benchNow, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
					return &sqin.Grant{ID: c.GrantID, ClientID: c.ClientID, AccountID: c.AccountID, Scopes: c.Scopes,
							ExpiresAt: benchNow.Add(time.Hour)},
						&sqin.RefreshToken{Hash: "rt-" + id, GrantID: c.GrantID, ClientID: c.ClientID,
							ExpiresAt: benchNow.Add(time.Hour)}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkRotateRefreshToken(b *testing.B) {
	forEach(b, b.Run, func(b *testing.B, db *DB) {
		var n atomic.Int64
		b.SetParallelism(4) // requests in flight per core
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			grant := fmt.Sprint("g-", n.Add(1))
			token := func(i int) string { return fmt.Sprint("rt-", grant, "-", i) }
			if err := db.CreateAuthCode(ctx, &sqin.AuthCode{Hash: grant, GrantID: grant}); err != nil {
				b.Fatal(err)
			}
			err := db.ExchangeCode(ctx, grant, benchNow, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				return &sqin.Grant{ID: grant}, &sqin.RefreshToken{Hash: token(0), GrantID: grant}, nil
			})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; pb.Next(); i++ {
				err := db.RotateRefreshToken(ctx, token(i), benchNow, func(rt *sqin.RefreshToken, g *sqin.Grant) (*sqin.RefreshToken, error) {
					return &sqin.RefreshToken{Hash: token(i + 1), GrantID: g.ID, ClientID: rt.ClientID}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// TestHitDropsOldBuckets: the first hit of a bucket drops the key's
// buckets that have left the window, through Hit and HitAll alike, and
// leaves other keys' alone.
func TestHitDropsOldBuckets(t *testing.T) {
	forEach(t, t.Run, func(t *testing.T, db *DB) {
		ctx := t.Context()
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		rows := func(key string) int {
			t.Helper()
			var n int
			if err := db.read.QueryRowContext(ctx, db.sql(newQuery(`SELECT COUNT(*) FROM rate_limits WHERE key = ?`)), key).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, at := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
			if _, err := db.HitAll(ctx, []string{"a", "b"}, time.Minute, t0.Add(at)); err != nil {
				t.Fatal(err)
			}
		}
		if rows("a") != 3 || rows("b") != 3 {
			t.Fatalf("rows a=%d b=%d, want 3 buckets each", rows("a"), rows("b"))
		}
		// Two windows later, a's first hit drops its three old buckets.
		later := t0.Add(2*time.Minute + 30*time.Second)
		if n, err := db.Hit(ctx, "a", time.Minute, later); err != nil || n != 1 {
			t.Fatalf("Hit after two windows: %d, %v", n, err)
		}
		if rows("a") != 1 || rows("b") != 3 {
			t.Fatalf("after Hit: rows a=%d b=%d, want 1 and 3", rows("a"), rows("b"))
		}
		if got, err := db.HitAll(ctx, []string{"a", "b"}, time.Minute, later); err != nil || got[0] != 2 || got[1] != 1 {
			t.Fatalf("HitAll after two windows: %v, %v", got, err)
		}
		if rows("a") != 1 || rows("b") != 1 {
			t.Fatalf("after HitAll: rows a=%d b=%d, want 1 each", rows("a"), rows("b"))
		}
	})
}
