package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/sqltest"
)

// TestProofingImportCommand: the SAAQ's licence delivery through the real
// commands, on SQLite and PostgreSQL; the hashes are keyed as sqin serve's
// prover keys them, and no licence number reaches the output, the logs or
// the audit log.
func TestProofingImportCommand(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"sqlite", "sqlite://" + filepath.Join(t.TempDir(), "sqin.db")},
		{"postgres", sqltest.PostgresURL(t)},
	} {
		t.Run(tc.name, func(t *testing.T) { testProofingImportCommand(t, tc.url) })
	}
}

func testProofingImportCommand(t *testing.T, db string) {
	master := bytes.Repeat([]byte{42}, 32)
	env := func(k string) string {
		switch k {
		case "SQIN_MASTER_KEY":
			return base64.StdEncoding.EncodeToString(master)
		case "USER":
			return "operateur"
		}
		return ""
	}
	dir := t.TempDir()
	if code, _, errOut := run(t, nil, "registry", "generate", "--count", "300", "--seed", "9", "--out", dir); code != 0 {
		t.Fatalf("registry generate: %s", errOut)
	}
	if code, _, errOut := run(t, nil, "registry", "import", filepath.Join(dir, "RAMQ-SYNTHETIC-000001-snapshot.manifest.json"), "--db", db); code != 0 {
		t.Fatalf("registry import: %s", errOut)
	}
	code, out, errOut := run(t, nil, "proofing", "generate", "--count", "300", "--seed", "9", "--out", dir)
	if code != 0 {
		t.Fatalf("proofing generate: %d %s", code, errOut)
	}
	manifest := strings.TrimSpace(strings.Split(out, "\n")[0])
	m, data, err := proofing.ReadSecretManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, env, "proofing", "import", manifest, "--db", db)
	if code != 0 {
		t.Fatalf("proofing import: %d %s", code, errOut)
	}
	if !strings.Contains(out, "imported SAAQ-SYNTHETIC driving-licence snapshot 1") || !strings.Contains(out, "unknown 0, rejected 0") {
		t.Fatalf("output %q", out)
	}
	code, out, _ = run(t, env, "proofing", "import", "--db", db, manifest)
	if code != 0 || !strings.Contains(out, "already imported") {
		t.Fatalf("rerun: %d %q", code, out)
	}
	if code, _, errOut := run(t, nil, "proofing", "import", manifest, "--db", db); code != 1 || !strings.Contains(errOut, "master key") {
		t.Fatalf("without the master key: %d %q", code, errOut)
	}

	// sqin serve's prover (same key derivation) matches a delivered licence.
	st, err := openDB(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	raw, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")[1:]
	if int64(len(lines)) != m.RecordCount {
		t.Fatalf("%d lines, manifest %d", len(lines), m.RecordCount)
	}
	f := strings.Split(lines[len(lines)/2], ",")
	pid, err := st.FindPersonByHealthNumber(t.Context(), f[1])
	if err != nil {
		t.Fatal(err)
	}
	cat := *proofing.DefaultCatalogue()
	cat.Secrets = slices.DeleteFunc(slices.Clone(cat.Secrets), func(s proofing.SecretType) bool { return s.ID != "driving-licence" })
	p, err := proofing.NewProver(&cat, proofingSecretKey(master), proofing.Limits{MinDuration: 1}, st, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Check(t.Context(), proofing.Attempt{SecretType: "driving-licence", Values: map[string]string{"number": f[2]},
		AccountID: "a", Identity: pid, PersonID: pid})
	if err != nil || r.Outcome != proofing.Match {
		t.Fatalf("check: %+v, %v", r, err)
	}

	// The audit log names the operator and the counts, never a value.
	code, auditOut, errOut := run(t, nil, "audit", "export", "--db", db)
	if code != 0 {
		t.Fatalf("audit export: %s", errOut)
	}
	if !strings.Contains(auditOut, "proofing.secrets.imported") || !strings.Contains(auditOut, "operateur") {
		t.Fatalf("audit log lacks the import:\n%s", auditOut)
	}
	for _, l := range lines {
		if v := strings.Split(l, ",")[2]; strings.Contains(auditOut+out+errOut, v) {
			t.Fatal("a licence number was printed, logged or audited")
		}
	}
}
