package sqlstore

import (
	"context"
	"testing"
)

// TestDurableBySequencer: when no sequencing round can be waited for (here
// the caller's context has ended), a change committed without waiting for
// the disk is made durable by a durable commit of its own: the WAL is
// flushed past everything written before the call returns.
func TestDurableBySequencer(t *testing.T) {
	db := openTest(t, postgresURL(t))
	ctx := t.Context()
	if _, err := db.execUnflushed(ctx, newQuery(`INSERT INTO used_once (key, expires_at) VALUES (?, ?)`),
		"durable-test", int64(1)); err != nil {
		t.Fatal(err)
	}
	var written string
	if err := db.read.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&written); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.durableBySequencer(done); err != nil {
		t.Fatal(err)
	}
	var flushed bool
	if err := db.read.QueryRowContext(ctx, `SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn`, written).Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	if !flushed {
		t.Fatalf("the WAL is not flushed past %s", written)
	}
}
