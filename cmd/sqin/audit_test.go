package main

import (
	"bufio"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the tampering below opens the file directly

	"github.com/sqin/sqin/internal/audit"
)

// TestAuditCommands drives the log end to end from the command line: key
// rotations commit their events, a head is signed, the log verifies, is
// exported and proved; then someone edits an event in the database and
// verify names it.
func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "a.db")
	db := "sqlite://" + dbFile
	master := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	env := func(k string) string {
		return map[string]string{"SQIN_MASTER_KEY": master, "USER": "operatrice"}[k]
	}
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := run(t, env, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s%s", args, code, out, errOut)
		}
		return out
	}

	if code, _, errOut := run(t, env, "audit", "head", "--db", db); code != 1 || !strings.Contains(errOut, "--sign") {
		t.Fatalf("head of an empty log: %d %s", code, errOut)
	}
	must("keys", "rotate", "--db", db) // the first keys (two keys.created), then two rotations
	var th audit.TreeHead
	if err := json.Unmarshal([]byte(must("audit", "head", "--db", db, "--sign")), &th); err != nil {
		t.Fatal(err)
	}
	if th.TreeSize != 4 {
		t.Fatalf("head of size %d, want 4", th.TreeSize)
	}
	headFile := filepath.Join(dir, "head.json")
	if err := os.WriteFile(headFile, []byte(must("audit", "head", "--db", db)), 0o600); err != nil {
		t.Fatal(err)
	}
	must("keys", "rotate", "--db", db, "--alg", "ES256")
	must("audit", "head", "--db", db, "--sign")

	out := must("audit", "verify", "--db", db, "--from-tree-head", headFile)
	if !strings.Contains(out, "audit log: 5 events") || !strings.Contains(out, "tree heads: 3 checked") || !strings.Contains(out, "\nOK") {
		t.Fatalf("verify:\n%s", out)
	}
	// An auditor verifies with the public key alone.
	pubFile := filepath.Join(dir, "audit.pem")
	if err := os.WriteFile(pubFile, []byte(must("audit", "key", "--db", db)), 0o600); err != nil {
		t.Fatal(err)
	}
	must("audit", "verify", "--db", db, "--public-key", pubFile)

	var lines []audit.Record
	sc := bufio.NewScanner(strings.NewReader(must("audit", "export", "--db", db)))
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if h, err := r.Leaf(); err != nil || h != r.LeafHash {
			t.Fatalf("exported event %d does not hash to its leaf: %v", r.ID, err)
		}
		lines = append(lines, r)
	}
	if len(lines) != 5 || lines[0].Action != audit.KeysCreated || lines[0].Actor != (audit.Actor{Kind: audit.ActorSystem, ID: "keys"}) ||
		lines[2].Action != audit.KeysRotated || lines[2].Actor.ID != "cli:operatrice" || !strings.Contains(lines[4].Detail, "ES256") {
		t.Fatalf("export: %+v", lines)
	}

	var p audit.Proof
	if err := json.Unmarshal([]byte(must("audit", "prove", "--db", db, "--id", "1")), &p); err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyInclusion(p.Record.LeafHash, 1, p.TreeHead.TreeSize, p.Hashes, p.TreeHead.RootHash); err != nil {
		t.Fatalf("proof: %v", err)
	}

	// Retention keeps the log verifiable and logs itself.
	out = must("audit", "redact", "--db", db, "--before", "1h")
	if !strings.HasPrefix(out, "redacted 0 events") {
		t.Fatalf("redact: %s", out)
	}
	out = must("audit", "redact", "--db", db, "--before", time.Now().Add(time.Hour).Format(time.RFC3339)) // everything
	if !strings.HasPrefix(out, "redacted 5 events") {
		t.Fatalf("redact: %s", out)
	}
	must("audit", "head", "--db", db, "--sign")
	if out := must("audit", "verify", "--db", db); !strings.Contains(out, "6 events (6 read, 5 redacted)") {
		t.Fatalf("verify after redaction:\n%s", out)
	}

	// Someone with the database edits an event.
	raw, err := sql.Open("sqlite", dbFile)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{"DROP TRIGGER audit_events_only_redaction",
		"UPDATE audit_events SET action = 'keys.rotated', client_id = 'rp-x' WHERE seq = 2"} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := run(t, env, "audit", "verify", "--db", db, "--from-tree-head", headFile)
	if code != 1 || !strings.Contains(out, "FINDING altered: event 2:") || !strings.Contains(errOut, "1 findings") {
		t.Fatalf("verify after tampering: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, env, "audit", "verify", "--db", db, "--public-key", headFile); code != 1 || !strings.Contains(errOut, "PUBLIC KEY") {
		t.Fatalf("bad public key file: %d %s", code, errOut)
	}
}

func TestParseBefore(t *testing.T) {
	now := mustTime(t, "2026-03-01T12:00:00Z")
	for in, want := range map[string]string{
		"24h":                  "2026-02-28T12:00:00Z",
		"2025-01-31":           "2025-01-31T00:00:00Z",
		"2025-06-01T08:00:00Z": "2025-06-01T08:00:00Z",
	} {
		got, err := parseBefore(in, now)
		if err != nil || !got.Equal(mustTime(t, want)) {
			t.Errorf("parseBefore(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "yesterday", "0s"} {
		if _, err := parseBefore(in, now); err == nil {
			t.Errorf("parseBefore(%q) accepted", in)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
