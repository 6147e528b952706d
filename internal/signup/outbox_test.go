package signup_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to read the table behind the store's back
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/sqin/sqin/internal/signup"
)

// outboxRow reads a mail's row as stored, behind the store's back: what
// an operator (or someone who copied the database) would see.
func outboxRow(t *testing.T, dbURL, id string) (recipient, body, lastError string, next int64) {
	t.Helper()
	driver, dsn := "pgx", dbURL
	if path, ok := strings.CutPrefix(dbURL, "sqlite://"); ok {
		driver, dsn = "sqlite", "file:"+path
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.QueryRow(`SELECT recipient, body, last_error, next_attempt_at FROM mail_outbox WHERE id = '`+id+`'`).
		Scan(&recipient, &body, &lastError, &next); err != nil {
		t.Fatal(err)
	}
	return recipient, body, lastError, next
}

// TestOutboxGivesUpErases: while a mail is retried its body is kept (it
// must be sent); once the sender gives up on it, the body — an email code,
// a reset link — is erased, and the recipient and error stay for the
// operator.
func TestOutboxGivesUpErases(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			url := newURL(t)
			db := openDB(t, url)
			c := &clock{t: time.Now()}
			f := &failing{n: 1000}
			wk := &signup.Worker{Store: db, Sender: f, From: "no-reply@sqin.test", Now: c.Now, MaxAttempts: 2}
			ctx := context.Background()
			const body = "Lien : https://sqin.test/mot-de-passe-oublie/jeton-secret"
			if err := db.QueueMail(ctx, &signup.Mail{ID: "m1", To: "x@exemple.test", Subject: "s", Body: body, Kind: "reset", CreatedAt: c.Now()}); err != nil {
				t.Fatal(err)
			}
			if n, err := wk.RunOnce(ctx); n != 0 || err != nil {
				t.Fatalf("first attempt: %d %v", n, err)
			}
			if _, got, _, next := outboxRow(t, url, "m1"); got != body || next == 0 {
				t.Fatalf("after one failure: body %q, next %d", got, next)
			}
			c.add(signup.Backoff(1))
			if n, err := wk.RunOnce(ctx); n != 0 || err != nil {
				t.Fatalf("second attempt: %d %v", n, err)
			}
			to, got, lastErr, next := outboxRow(t, url, "m1")
			if got != "" || next != 0 || to != "x@exemple.test" || !strings.Contains(lastErr, "relay down") {
				t.Fatalf("given up: recipient %q body %q error %q next %d", to, got, lastErr, next)
			}
			c.add(24 * time.Hour)
			if n, _ := wk.RunOnce(ctx); n != 0 || f.n != 998 {
				t.Fatalf("a mail given up on was tried again (%d tries)", 1000-f.n)
			}
		})
	}
}
