package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"

	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqin/sqin/internal/registry"
)

// mainArgsEnv makes the test binary run Main with these arguments
// (separated by \x1f) instead of the tests: the crash test kills such a
// process, as kill -9 would kill sqin.
const mainArgsEnv = "SQIN_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if args := os.Getenv(mainArgsEnv); args != "" {
		os.Exit(Main(context.Background(), strings.Split(args, "\x1f"), os.Stdout, os.Stderr, os.Getenv))
	}
	os.Exit(m.Run())
}

// testDatabases gives a fresh SQLite URL, and a fresh PostgreSQL schema
// when SQIN_TEST_POSTGRES (or the default local server) answers; under CI
// PostgreSQL is required.
func testDatabases(t *testing.T) map[string]func(t *testing.T) string {
	dbs := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "sqin.db") },
	}
	base := cmp.Or(os.Getenv("SQIN_TEST_POSTGRES"), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at SQIN_TEST_POSTGRES (%s) is unreachable: %v", base, err)
		}
		t.Logf("PostgreSQL unreachable, SQLite only: %v", err)
		return dbs
	}
	conn.Close(ctx)
	dbs["postgres"] = func(t *testing.T) string {
		schema := "sqin_test_" + strings.ToLower(rand.Text())
		pgExec(t, base, "CREATE SCHEMA "+schema)
		t.Cleanup(func() { pgExec(t, base, "DROP SCHEMA "+schema+" CASCADE") })
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dbs
}

func pgExec(t *testing.T, base, sql string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryGenerateAndImport(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := run(t, nil, "registry", "generate", "--count", "500", "--seed", "5", "--out", dir)
	if code != 0 {
		t.Fatalf("generate: %d %s", code, errOut)
	}
	manifest := strings.TrimSpace(strings.Split(out, "\n")[0])
	again := filepath.Join(t.TempDir(), "again")
	run(t, nil, "registry", "generate", "--count", "500", "--seed", "5", "--out", again)
	a, _ := os.ReadFile(manifest)
	b, _ := os.ReadFile(filepath.Join(again, filepath.Base(manifest)))
	if string(a) != string(b) || len(a) == 0 {
		t.Fatal("the same seed gave different deliveries")
	}
	db := "sqlite://" + filepath.Join(t.TempDir(), "sqin.db")
	code, out, errOut = run(t, nil, "registry", "import", manifest, "--db", db)
	if code != 0 {
		t.Fatalf("import: %d %s", code, errOut)
	}
	for _, want := range []string{"imported RAMQ-SYNTHETIC snapshot 1", "500 records", "created 500, changed 0, unchanged 0, deceased 0, removed 0, unknown 0, rejected 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if !strings.Contains(errOut, `msg="registry import done"`) || strings.Contains(errOut, "Tremblay") {
		t.Errorf("log %q", errOut)
	}
	code, out, _ = run(t, nil, "registry", "import", "--db", db, manifest)
	if code != 0 || !strings.Contains(out, "already imported") {
		t.Fatalf("rerun: %d %q", code, out)
	}
	code, _, errOut = run(t, nil, "registry", "import", "--db", db)
	if code != 1 || !strings.Contains(errOut, "give the manifest") {
		t.Fatalf("no manifest: %d %q", code, errOut)
	}
}

// TestRegistryCrash kills the import process (SIGKILL) at each crash point
// of a snapshot and then of a delta, runs the same command again, and
// checks that the registry's digest is the one an uninterrupted import
// gives, on each database.
func TestRegistryCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the import in child processes")
	}
	dir := t.TempDir()
	snap, delta := generated(t, dir)
	// Batches small enough for each delivery to take at least 4.
	batch := map[string]string{snap: "400", delta: "4"}
	points := []string{"begin", "stage:1", "stage-tx:3", "stage:4", "merge-tx", "merged"}
	for name, newURL := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			ref := newURL(t)
			for _, m := range []string{snap, delta} {
				if code, out, errOut := child(t, "", "registry", "import", m, "--db", ref, "--batch", batch[m]); code != 0 {
					t.Fatalf("reference import: %d %s %s", code, out, errOut)
				}
			}
			want := digest(t, ref)
			for _, point := range points {
				t.Run(point, func(t *testing.T) {
					db := newURL(t)
					for _, m := range []string{snap, delta} {
						code, out, errOut := child(t, point, "registry", "import", m, "--db", db, "--batch", batch[m])
						if code != -1 {
							t.Fatalf("import with %s=%s: exit %d, want killed\n%s%s", registry.CrashEnv, point, code, out, errOut)
						}
						code, out, errOut = child(t, "", "registry", "import", m, "--db", db, "--batch", batch[m])
						if code != 0 {
							t.Fatalf("rerun after a crash at %s: %d %s %s", point, code, out, errOut)
						}
					}
					if got := digest(t, db); got != want {
						t.Fatalf("digest after crashes at %s and reruns: %s, want %s", point, got, want)
					}
				})
			}
		})
	}
}

// generated writes a snapshot of 2,000 people and its first delta.
func generated(t *testing.T, dir string) (snap, delta string) {
	t.Helper()
	_, snap, err := registry.GenerateDelivery(dir, registry.DeliveryOptions{Seed: 21, Count: 2000, Kind: registry.KindSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	_, delta, err = registry.GenerateDelivery(dir, registry.DeliveryOptions{Seed: 21, Count: 2000, Kind: registry.KindDelta})
	if err != nil {
		t.Fatal(err)
	}
	return snap, delta
}

// child runs sqin's Main in a new process, crashing at point when given,
// and returns its exit code (-1 when killed by a signal).
func child(t *testing.T, point string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mainArgsEnv+"="+strings.Join(args, "\x1f"), registry.CrashEnv+"="+point)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func digest(t *testing.T, db string) string {
	t.Helper()
	code, out, errOut := run(t, nil, "registry", "digest", "--db", db)
	if code != 0 {
		t.Fatalf("digest: %d %s", code, errOut)
	}
	d := strings.TrimSpace(out)
	if len(d) != 64 {
		t.Fatalf("digest %q", d)
	}
	return d
}
