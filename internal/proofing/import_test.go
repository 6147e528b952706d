package proofing_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/sqltest"
)

func TestNextDelivery(t *testing.T) {
	done := func(seq int64, kind, sha string) proofing.SecretDelivery {
		return proofing.SecretDelivery{Sequence: seq, Kind: kind, SHA256: sha, Status: proofing.DeliveryDone}
	}
	snap, delta := proofing.DeliverySnapshot, proofing.DeliveryDelta
	for _, tc := range []struct {
		name     string
		earlier  []proofing.SecretDelivery
		seq      int64
		kind     string
		sha      string
		wantDone bool
		wantErr  bool
	}{
		{"first snapshot", nil, 1, snap, "a", false, false},
		{"first delta", nil, 1, delta, "a", false, true},
		{"delta after snapshot", []proofing.SecretDelivery{done(1, snap, "a")}, 2, delta, "b", false, false},
		{"delta skips one", []proofing.SecretDelivery{done(1, snap, "a")}, 3, delta, "b", false, true},
		{"snapshot may skip", []proofing.SecretDelivery{done(1, snap, "a"), done(2, delta, "b")}, 9, snap, "c", false, false},
		{"snapshot behind", []proofing.SecretDelivery{done(5, snap, "a")}, 4, snap, "c", false, true},
		{"same delivery again", []proofing.SecretDelivery{done(1, snap, "a")}, 1, snap, "a", true, false},
		{"sequence reused", []proofing.SecretDelivery{done(1, snap, "a")}, 1, snap, "z", false, true},
		{"interrupted, run again", []proofing.SecretDelivery{done(1, snap, "a"), {Sequence: 2, Kind: delta, SHA256: "b", Status: proofing.DeliveryRunning}}, 2, delta, "b", false, false},
		{"another while one is unfinished", []proofing.SecretDelivery{done(1, snap, "a"), {Sequence: 2, Kind: delta, SHA256: "b", Status: proofing.DeliveryRunning}}, 3, snap, "c", false, true},
		{"refused, corrected", []proofing.SecretDelivery{done(1, snap, "a"), {Sequence: 2, Kind: delta, SHA256: "b", Status: proofing.DeliveryRefused}}, 2, delta, "b2", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotDone, err := proofing.NextDelivery(tc.earlier, &proofing.SecretDelivery{Source: "S", Sequence: tc.seq, Kind: tc.kind, SHA256: tc.sha})
			if gotDone != tc.wantDone || (err != nil) != tc.wantErr {
				t.Fatalf("done %v err %v, want done %v error %v", gotDone, err, tc.wantDone, tc.wantErr)
			}
			if err != nil && !errors.Is(err, proofing.ErrSequence) {
				t.Fatalf("error %v is not ErrSequence", err)
			}
		})
	}
}

// people of the synthetic registry the import tests use.
const importPeople = 400

// registryFor imports a synthetic registry of importPeople people (seed 5)
// and returns them, by index.
func registryFor(t *testing.T, db *sqlstore.DB) []*sqin.Person {
	t.Helper()
	dir := t.TempDir()
	_, m, err := registry.GenerateDelivery(dir, registry.DeliveryOptions{Seed: 5, Count: importPeople, Kind: registry.KindSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Import(t.Context(), db, m, registry.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	var people []*sqin.Person
	if err := registry.Generate(5, importPeople, func(p *sqin.Person) error { people = append(people, p); return nil }); err != nil {
		t.Fatal(err)
	}
	return people
}

// personID is the registry's ID of the person with that health number.
func personID(t *testing.T, db *sqlstore.DB, nam string) string {
	t.Helper()
	id, err := db.FindPersonByHealthNumber(t.Context(), nam)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// auditTail returns the audit events appended since size n.
func auditTail(t *testing.T, db *sqlstore.DB, n uint64) []string {
	t.Helper()
	size, err := db.AuditSize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := db.Events(t.Context(), n, size)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Action+" "+r.Outcome+" "+r.Detail)
	}
	return out
}

func TestImportSecrets(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"sqlite", sqltest.SQLiteURL(t)},
		{"postgres", sqltest.PostgresURL(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testImportSecrets(t, openDB(t, tc.url))
		})
	}
}

func testImportSecrets(t *testing.T, db *sqlstore.DB) {
	ctx := t.Context()
	people := registryFor(t, db)
	cat := proofing.DefaultCatalogue()
	dir := t.TempDir()
	start, err := db.AuditSize(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The snapshot: about 80 % of the adults hold a licence.
	m, path, err := proofing.GenerateSecretDelivery(dir, proofing.SecretDeliveryOptions{Seed: 5, Count: importPeople, Kind: proofing.DeliverySnapshot})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, m.DataFile))
	if err != nil {
		t.Fatal(err)
	}
	holders := map[string]string{} // nam -> licence
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
		f := strings.Split(l, ",")
		holders[f[1]] = f[2]
	}
	if len(holders) < importPeople/2 || int64(len(holders)) != m.RecordCount {
		t.Fatalf("%d holders of %d people, manifest says %d", len(holders), importPeople, m.RecordCount)
	}
	s, err := proofing.ImportSecrets(ctx, db, cat, path, proofing.ImportOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if s.AlreadyImported || s.Stored != m.RecordCount || s.Unknown != 0 || s.Rejected != 0 {
		t.Fatalf("summary %+v", s)
	}
	p := newProver(t, db, proofing.Limits{PerPerson: 1000, PerAccount: 1000}, nil)
	var holder, other *sqin.Person
	for i, pp := range people {
		lic, ok := holders[pp.HealthNo]
		switch {
		case ok && holder == nil:
			holder = pp
			if lic != proofing.SyntheticLicence(5, i, pp, 0) {
				t.Fatalf("data file's licence differs from SyntheticLicence")
			}
		case !ok && other == nil:
			other = pp
		}
	}
	check := func(pp *sqin.Person, number string) proofing.Outcome {
		t.Helper()
		id := personID(t, db, pp.HealthNo)
		r, err := p.Check(ctx, proofing.Attempt{SecretType: "driving-licence", Values: map[string]string{"number": number},
			AccountID: "a", Identity: id, PersonID: id})
		if err != nil {
			t.Fatal(err)
		}
		return r.Outcome
	}
	lic := holders[holder.HealthNo]
	// As the citizen types it, with spaces: normalised like the delivery.
	if got := check(holder, lic[:5]+" "+lic[5:11]+" "+lic[11:]); got != proofing.Match {
		t.Fatalf("holder's licence: %v", got)
	}
	if got := check(holder, lic[:12]+string('0'+(lic[12]-'0'+1)%10)); got != proofing.NoMatch {
		t.Fatalf("wrong licence: %v", got)
	}
	if got := check(other, lic); got != proofing.NoMatch {
		t.Fatalf("someone else's licence: %v", got)
	}
	// Only keyed hashes are stored.
	h, err := db.LocalSecretHash(ctx, "driving-licence", personID(t, db, holder.HealthNo))
	if err != nil || bytes.Contains(h, []byte(lic)) || len(h) != sha256.Size {
		t.Fatalf("stored %x, %v", h, err)
	}

	// The same delivery again changes nothing.
	s, err = proofing.ImportSecrets(ctx, db, cat, path, proofing.ImportOptions{Key: key})
	if err != nil || !s.AlreadyImported {
		t.Fatalf("again: %+v, %v", s, err)
	}
	// A delta out of order is refused; the next one applies.
	for _, seq := range []int64{3, 2} {
		dm, dpath, err := proofing.GenerateSecretDelivery(dir, proofing.SecretDeliveryOptions{Seed: 5, Count: importPeople,
			Kind: proofing.DeliveryDelta, Sequence: seq})
		if err != nil {
			t.Fatal(err)
		}
		s, err = proofing.ImportSecrets(ctx, db, cat, dpath, proofing.ImportOptions{Key: key})
		if seq == 3 {
			if !errors.Is(err, proofing.ErrSequence) || sqin.ErrorCode(err) != sqin.EConflict {
				t.Fatalf("delta 3 before 2: %v", err)
			}
			continue
		}
		if err != nil || s.Stored+s.Removed != dm.RecordCount {
			t.Fatalf("delta 2: %+v, %v", s, err)
		}
	}
	// A later snapshot drops the licences it no longer holds.
	var keep bytes.Buffer
	keep.WriteString("op,nam,number\n")
	fmt.Fprintf(&keep, "set,%s,%s\n", holder.HealthNo, lic)
	sm := writeDelivery(t, dir, "SAAQ-SYNTHETIC", 10, proofing.DeliverySnapshot, keep.String(), 1)
	s, err = proofing.ImportSecrets(ctx, db, cat, sm, proofing.ImportOptions{Key: key})
	if err != nil || s.Stored != 1 || s.Dropped < int64(len(holders))/2 {
		t.Fatalf("second snapshot: %+v, %v", s, err)
	}
	if got := check(holder, lic); got != proofing.Match {
		t.Fatalf("kept licence: %v", got)
	}
	for nam := range holders {
		if nam == holder.HealthNo {
			continue
		}
		if _, err := db.LocalSecretHash(ctx, "driving-licence", personID(t, db, nam)); !errors.Is(err, sqin.ErrNotFound) {
			t.Fatalf("licence of %s kept after a snapshot without it: %v", nam, err)
		}
		break
	}

	// Audit: each import and refusal, with counts and never a value.
	events := auditTail(t, db, start)
	joined := strings.Join(events, "\n")
	for _, want := range []string{"proofing.secrets.imported success SAAQ-SYNTHETIC driving-licence snapshot 1:",
		"proofing.secrets.imported success SAAQ-SYNTHETIC driving-licence delta 2:",
		"proofing.secrets.imported success SAAQ-SYNTHETIC driving-licence snapshot 10: 1 records: 1 stored"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no event %q in\n%s", want, joined)
		}
	}
	for _, v := range holders {
		if strings.Contains(joined, v) {
			t.Fatalf("a licence number is in the audit log")
		}
	}
}

// writeDelivery writes a hand-made delivery of driving licences and
// returns its manifest's path; records is the manifest's record count.
func writeDelivery(t *testing.T, dir, source string, seq int64, kind, data string, records int64) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d.csv", source, seq)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(data))
	m := &proofing.SecretManifest{SecretType: "driving-licence", Manifest: registry.Manifest{Version: 1, Source: source,
		ExtractedAt: time.Now(), Sequence: seq, Kind: kind, Format: proofing.FormatCSV, DataFile: name, RecordCount: records,
		SHA256: hex.EncodeToString(sum[:])}}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.manifest.json", source, seq))
	if err := proofing.WriteSecretManifest(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportSecretsRejects(t *testing.T) {
	db := openDB(t, sqltest.SQLiteURL(t))
	ctx := t.Context()
	people := registryFor(t, db)
	cat := proofing.DefaultCatalogue()
	dir := t.TempDir()
	a, b, c := people[0].HealthNo, people[1].HealthNo, people[2].HealthNo
	const secretValue = "Q123456789012"
	lines := []string{
		"op,nam,number",
		"set," + a + "," + secretValue,              // 2: ok
		"set," + b + ",Q12345",                      // 3: bad number
		"change," + c + "," + secretValue,           // 4: bad op
		"set,abcd12345678," + secretValue,           // 5: nam not compact upper
		"set," + a + "," + secretValue,              // 6: duplicate of line 2
		"remove," + b + ",",                         // 7: remove in a snapshot
		"set," + c,                                  // 8: two fields
		"set," + strings.Repeat("X", 5000),          // 9: too long
		"set,ZZZZ90010199," + secretValue,           // 10: unknown to the registry
		"set," + c + ",\"Q 1234-5678 9012\"",        // 11: ok once normalised
		"set," + people[3].HealthNo + "," + "Q0000", // 12: bad number
	}
	data := strings.Join(lines, "\n") + "\n"
	n := int64(len(lines) - 1)
	rejects := filepath.Join(dir, "rejects.csv")

	// Over the threshold: refused, nothing stored.
	m := writeDelivery(t, dir, "SAAQ", 1, proofing.DeliverySnapshot, data, n)
	_, err := proofing.ImportSecrets(ctx, db, cat, m, proofing.ImportOptions{Key: key, RejectsPath: rejects})
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("over the threshold: %v", err)
	}
	if _, err := db.LocalSecretHash(ctx, "driving-licence", personID(t, db, a)); !errors.Is(err, sqin.ErrNotFound) {
		t.Fatalf("a refused delivery stored a secret: %v", err)
	}
	// Within it (rerun of the refused delivery with another threshold).
	s, err := proofing.ImportSecrets(ctx, db, cat, m, proofing.ImportOptions{Key: key, RejectsPath: rejects, MaxRejectRatio: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if s.Stored != 2 || s.Unknown != 1 || s.Rejected != 8 {
		t.Fatalf("summary %+v", s)
	}
	report, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	want := `line,field,reason
3,number,does not have the secret's format (catalogue pattern or checksum)
4,op,op must be set or remove
5,nam,health number must be 4 upper-case letters and 8 digits (compact)
6,nam,health number already on line 2
7,op,a snapshot holds only set lines
8,,not a CSV line of 3 fields
9,,line longer than 4096 bytes
10,nam,no person with this health number in the registry (line not imported)
12,number,does not have the secret's format (catalogue pattern or checksum)
`
	if string(report) != want {
		t.Fatalf("report:\n%s\nwant:\n%s", report, want)
	}
	if strings.Contains(string(report), "Q12") {
		t.Fatal("a value is in the reject report")
	}
	for _, nam := range []string{a, c} {
		if _, err := db.LocalSecretHash(ctx, "driving-licence", personID(t, db, nam)); err != nil {
			t.Fatalf("%s: %v", nam, err)
		}
	}

	// Refused whole: wrong checksum, wrong header, wrong count.
	for _, tc := range []struct {
		name   string
		mutate func(path string)
		want   string
	}{
		{"checksum", func(p string) { appendFile(t, filepath.Join(dir, "SAAQ-2.csv"), "set,"+b+","+secretValue+"\n") }, "SHA-256"},
		{"header", nil, "first line"},
		{"count", nil, "holds 1 records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "op,nam,number\nset," + b + "," + secretValue + "\n"
			count := int64(1)
			switch tc.name {
			case "header":
				body = "op,nam,licence\nset," + b + "," + secretValue + "\n"
			case "count":
				count = 2
			}
			m := writeDelivery(t, dir, "SAAQ", 2, proofing.DeliveryDelta, body, count)
			if tc.mutate != nil {
				tc.mutate(m)
			}
			_, err := proofing.ImportSecrets(ctx, db, cat, m, proofing.ImportOptions{Key: key, RejectsPath: rejects})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := db.LocalSecretHash(ctx, "driving-licence", personID(t, db, b)); !errors.Is(err, sqin.ErrNotFound) {
		t.Fatalf("a refused delivery stored a secret: %v", err)
	}
	events := strings.Join(auditTail(t, db, 0), "\n")
	if strings.Count(events, "proofing.secrets.refused failure SAAQ driving-licence") != 4 || strings.Contains(events, secretValue) {
		t.Fatalf("audit:\n%s", events)
	}

	// A manifest for a secret its holder does not deliver.
	bad := writeDelivery(t, dir, "SAAQ", 3, proofing.DeliveryDelta, "op,nam,number\n", 0)
	mb, _ := os.ReadFile(bad)
	os.WriteFile(bad, bytes.Replace(mb, []byte(`"driving-licence"`), []byte(`"health-card"`), 1), 0o644)
	if _, err := proofing.ImportSecrets(ctx, db, cat, bad, proofing.ImportOptions{Key: key}); !errors.Is(err, proofing.ErrManifest) {
		t.Fatalf("registry-held secret: %v", err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestSecretDeliveryJSONL: the same delivery in JSON Lines stores the same
// hashes.
func TestSecretDeliveryJSONL(t *testing.T) {
	db := openDB(t, sqltest.SQLiteURL(t))
	ctx := t.Context()
	people := registryFor(t, db)
	dir := t.TempDir()
	_, path, err := proofing.GenerateSecretDelivery(dir, proofing.SecretDeliveryOptions{Seed: 5, Count: importPeople,
		Kind: proofing.DeliverySnapshot, Format: proofing.FormatJSONL})
	if err != nil {
		t.Fatal(err)
	}
	s, err := proofing.ImportSecrets(ctx, db, proofing.DefaultCatalogue(), path, proofing.ImportOptions{Key: key})
	if err != nil || s.Stored < importPeople/2 {
		t.Fatalf("%+v, %v", s, err)
	}
	found := 0
	for i, p := range people {
		h, err := db.LocalSecretHash(ctx, "driving-licence", personID(t, db, p.HealthNo))
		if errors.Is(err, sqin.ErrNotFound) {
			continue
		}
		want := proofing.SecretHash(key, "driving-licence", personID(t, db, p.HealthNo), []string{proofing.SyntheticLicence(5, i, p, 0)})
		if err != nil || !bytes.Equal(h, want) {
			t.Fatalf("person %d: %x, %v", i, h, err)
		}
		found++
	}
	if int64(found) != s.Stored {
		t.Fatalf("%d hashes found, %d stored", found, s.Stored)
	}
}
