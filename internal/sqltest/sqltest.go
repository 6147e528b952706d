// Package sqltest gives tests real databases: a SQLite file in a temporary
// directory, or a fresh schema of the PostgreSQL at SQIN_TEST_POSTGRES
// (default postgres://postgres@127.0.0.1:5432/test), dropped when the test
// ends. Without PostgreSQL a test is skipped, or fails when CI is set.
package sqltest

import (
	"cmp"
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgres is used when SQIN_TEST_POSTGRES is not set.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// SQLiteURL names a database file in a directory that does not exist yet.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "data", "sqin.db")
}

var postgresUp = sync.OnceValues(func() (string, error) {
	u := cmp.Or(os.Getenv("SQIN_TEST_POSTGRES"), DefaultPostgres)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return u, err
	}
	return u, conn.Close(ctx)
})

// PostgresURL returns the URL of a new, empty schema of the test database,
// dropped when t ends. Several connections (several server instances) may
// open it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base, err := postgresUp()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at SQIN_TEST_POSTGRES (%s) is unreachable: %v", base, err)
		}
		t.Skipf("PostgreSQL at SQIN_TEST_POSTGRES (%s) is unreachable, skipping: %v", base, err)
	}
	schema := "sqin_test_" + strings.ToLower(rand.Text())
	exec(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { exec(t, base, "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func exec(t testing.TB, url, sql string) {
	ctx := context.Background() // also at cleanup, when t's context is done
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}
