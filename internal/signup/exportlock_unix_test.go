//go:build unix

package signup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/sqltest"
)

// TestExportLock (finding 6): while an export holds the output directory
// (its lock taken, its partial batch being written), a second export
// into it stops with ErrExportRunning and touches neither that batch nor
// the queue; once the first is done, the next run proceeds (and clears
// what an export that died left).
func TestExportLock(t *testing.T) {
	w := newWorld(t, sqltest.SQLiteURL(t))
	p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond}, nil)
	requestLetter(newAccount(t, p, "verrou@exemple.test"), p, w.people[6])
	out := t.TempDir()
	// The first export: it holds the lock and is writing its batch.
	f, err := os.OpenFile(filepath.Join(out, signup.ExportLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(out, "first-batch.partial")
	if err := os.Mkdir(partial, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := signup.ExportOptions{Dir: out, Key: mailKey, Issuer: "http://sqin.test", Catalog: p.rd.Catalog(), Now: w.clock.Now}
	if _, err := signup.ExportLetters(context.Background(), p.db, opts); !errors.Is(err, signup.ErrExportRunning) {
		t.Fatalf("a second export into the directory: %v, want ErrExportRunning", err)
	}
	if _, err := os.Stat(partial); err != nil {
		t.Fatalf("the second export removed the first one's batch: %v", err)
	}
	// The first export ends (or dies: the kernel releases its lock).
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	res, err := signup.ExportLetters(context.Background(), p.db, opts)
	if err != nil || res.Printed != 1 {
		t.Fatalf("the next export: %+v %v", res, err)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Fatal("the dead export's uncommitted batch is still there")
	}
}
