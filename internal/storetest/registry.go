package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/store"
)

// registryStore is what the registry tests need: the store and the
// registry's import and read contracts.
type registryStore interface {
	store.Store
	registry.Store
	registry.Querier
}

func asRegistry(t *testing.T, s store.Store) registryStore {
	t.Helper()
	rs, isRS := s.(registryStore)
	if !isRS {
		t.Fatalf("%T does not implement registry.Store and registry.Querier", s)
	}
	return rs
}

// generate writes a synthetic delivery into dir and returns its manifest
// path.
func generate(t *testing.T, dir string, o registry.DeliveryOptions) string {
	t.Helper()
	_, path, err := registry.GenerateDelivery(dir, o)
	ok(t, err)
	return path
}

// readRecords reads every record of a delivery.
func readRecords(t *testing.T, manifest string) []registry.Record {
	t.Helper()
	m, data, err := registry.ReadManifest(manifest)
	ok(t, err)
	f, err := os.Open(data)
	ok(t, err)
	defer f.Close()
	rd := registry.NewReader(f, m.Format)
	var recs []registry.Record
	for {
		var r registry.Record
		err := rd.Next(&r)
		if err == io.EOF {
			return recs
		}
		ok(t, err)
		recs = append(recs, r)
	}
}

// writeDelivery writes recs as a delivery and returns the manifest path.
func writeDelivery(t *testing.T, dir string, m registry.Manifest, recs []registry.Record) string {
	t.Helper()
	ok(t, os.MkdirAll(dir, 0o755))
	m.Version, m.Format = registry.ManifestVersion, registry.FormatCSV
	if m.ExtractedAt.IsZero() {
		m.ExtractedAt = time.Date(2026, 11, 20, 5, 0, 0, 0, time.UTC)
	}
	m.DataFile = fmt.Sprintf("%s-%d.csv", m.Source, m.Sequence)
	f, err := os.Create(filepath.Join(dir, m.DataFile))
	ok(t, err)
	w, err := registry.NewWriter(f, m.Format)
	ok(t, err)
	for i := range recs {
		ok(t, w.Write(&recs[i]))
	}
	ok(t, w.Close())
	ok(t, f.Close())
	m.RecordCount, m.SHA256 = w.Count(), w.SHA256()
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.manifest.json", m.Source, m.Sequence))
	ok(t, registry.WriteManifest(path, &m))
	return path
}

func importOpts(dir string) registry.ImportOptions {
	return registry.ImportOptions{BatchSize: 97, RejectsPath: filepath.Join(dir, "rejects.csv"),
		Now: func() time.Time { return t0 }}
}

// checkEntry checks that the registry holds rec's values for its person.
func checkEntry(t *testing.T, rs registryStore, source string, rec *registry.Record) *registry.Entry {
	t.Helper()
	e, err := rs.GetRegistryEntry(t.Context(), registry.PersonID(source, rec.Ref()))
	ok(t, err)
	if e.Source != source || e.SourceRef != rec.Ref() {
		t.Fatalf("line %d: provenance %s/%s", rec.Line, e.Source, e.SourceRef)
	}
	for _, a := range e.Attributes {
		def, _ := registry.AttributeByName(a.Name)
		if a.Value != rec.Fields[def.Field] {
			t.Fatalf("line %d: attribute %s differs from the delivery", rec.Line, a.Name)
		}
	}
	return e
}

// srcSD is the source of testRegistrySnapshotAndDeltas; each registry
// test has its own source, so that they share one store.
const srcSD = "SD"

// testRegistry runs the registry tests one after the other on one store,
// each on a source of its own.
func testRegistry(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"SnapshotAndDeltas", testRegistrySnapshotAndDeltas},
		{"Refusals", testRegistryRefusals},
		{"Rejects", testRegistryRejects},
		{"Death", testRegistryDeath},
		{"Resume", testRegistryResume},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func testRegistrySnapshotAndDeltas(t *testing.T, s store.Store) {
	ctx := t.Context()
	rs := asRegistry(t, s)
	dir := t.TempDir()
	const n = 3000
	snap := generate(t, dir, registry.DeliveryOptions{Seed: 11, Count: n, Kind: registry.KindSnapshot, Source: srcSD})
	sum, err := registry.Import(ctx, rs, snap, importOpts(dir))
	ok(t, err)
	same(t, [7]int64{sum.Records, sum.Created, sum.Changed, sum.Unchanged, sum.Deceased, sum.Removed, sum.Rejected},
		[7]int64{n, n, 0, 0, 0, 0, 0})
	// The import left one audit event, in its transaction.
	size, err := rs.AuditSize(ctx)
	ok(t, err)
	evs, err := rs.Events(ctx, 0, size)
	ok(t, err)
	if len(evs) != 1 || evs[0].Event.Action != "registry.imported" ||
		evs[0].Event.Detail != "SD snapshot 1: 3000 records: created 3000, changed 0, unchanged 0, deceased 0, removed 0, unknown 0, rejected 0" {
		t.Fatalf("audit events after the import: %+v", evs)
	}
	base := map[string]registry.Record{}
	for _, r := range readRecords(t, snap) {
		base[r.Ref()] = r
	}
	r0 := base[readRecords(t, snap)[0].Ref()]
	checkEntry(t, rs, srcSD, &r0)
	// The OP's view of the same person.
	p, err := rs.GetPerson(ctx, registry.PersonID(srcSD, r0.Ref()))
	ok(t, err)
	if p.FamilyName != r0.Fields[registry.FFamilyName] || p.Address.PostalCode != r0.Fields[registry.FPostalCode] ||
		p.Address.Province != "QC" || p.HealthNo != r0.Fields[registry.FNAM] {
		t.Fatalf("GetPerson does not show the imported values")
	}
	id, err := rs.FindPersonByHealthNumber(ctx, r0.Fields[registry.FNAM])
	ok(t, err)
	same(t, id, p.ID)

	var moved, died, removed int
	for seq := int64(2); seq <= 4; seq++ {
		delta := generate(t, dir, registry.DeliveryOptions{Seed: 11, Count: n, Kind: registry.KindDelta, Sequence: seq, Source: srcSD})
		recs := readRecords(t, delta)
		var want registry.Summary
		for _, r := range recs {
			switch r.Op() {
			case registry.OpCreate:
				want.Created++
			case registry.OpChange:
				want.Changed++
			case registry.OpDeath:
				want.Deceased++
			case registry.OpRemove:
				want.Removed++
			}
		}
		sum, err := registry.Import(ctx, rs, delta, importOpts(dir))
		ok(t, err)
		same(t, [6]int64{sum.Created, sum.Changed, sum.Unchanged, sum.Deceased, sum.Removed, sum.Unknown},
			[6]int64{want.Created, want.Changed, 0, want.Deceased, want.Removed, 0})
		for _, r := range recs {
			e, err := rs.GetRegistryEntry(ctx, registry.PersonID(srcSD, r.Ref()))
			ok(t, err)
			switch r.Op() {
			case registry.OpCreate:
				checkEntry(t, rs, srcSD, &r)
			case registry.OpChange:
				checkEntry(t, rs, srcSD, &r)
				old := base[r.Ref()]
				if old.Fields[registry.FStreet] != r.Fields[registry.FStreet] {
					moved++
					street, _ := e.Attribute("address_street")
					want := registry.AttributeValue{Name: "address_street", Value: r.Fields[registry.FStreet],
						Source: srcSD, SourceRef: r.Ref(), Sequence: seq,
						Effective: r.Fields[registry.FEffectiveDate],
						History: []registry.PastValue{{Value: old.Fields[registry.FStreet], Sequence: 1,
							From: "2026-11-02", ReplacedBy: seq, Until: r.Fields[registry.FEffectiveDate]}}}
					same(t, street, want)
					// The OP sees the new address at its next read.
					p, err := rs.GetPerson(ctx, e.PersonID)
					ok(t, err)
					same(t, p.Address.Street, r.Fields[registry.FStreet])
				}
			case registry.OpDeath:
				died++
				d, _ := e.Attribute("death_date")
				same(t, [2]any{d.Value, len(d.History)}, [2]any{r.Fields[registry.FDeathDate], 1})
			case registry.OpRemove:
				removed++
				same(t, e.RemovedBy, seq)
				_, err := rs.FindPersonByHealthNumber(ctx, base[r.Ref()].Fields[registry.FNAM])
				isErr(t, err, sqin.ErrNotFound)
			}
		}
		// Running the same delivery again is a no-op.
		before, err := rs.RegistryDigest(ctx)
		ok(t, err)
		again, err := registry.Import(ctx, rs, delta, importOpts(dir))
		ok(t, err)
		same(t, again.AlreadyImported, true)
		after, err := rs.RegistryDigest(ctx)
		ok(t, err)
		same(t, after, before)
	}
	if moved == 0 || died == 0 || removed == 0 {
		t.Fatalf("the deltas held %d moves, %d deaths, %d removals; want some of each", moved, died, removed)
	}
	// A later snapshot holding only half the people removes the others.
	recs := readRecords(t, snap)[:n/2]
	snap2 := writeDelivery(t, filepath.Join(dir, "s5"), registry.Manifest{Source: srcSD,
		Sequence: 5, Kind: registry.KindSnapshot}, recs)
	sum, err = registry.Import(ctx, rs, snap2, importOpts(dir))
	ok(t, err)
	if sum.Removed < int64(n/2)-20 || sum.Created != 0 || sum.Records != int64(n/2) {
		t.Fatalf("second snapshot: %+v", sum)
	}
}

func testRegistryRefusals(t *testing.T, s store.Store) {
	ctx := t.Context()
	rs := asRegistry(t, s)
	dir := t.TempDir()
	gen := func(kind string, seq int64) string {
		return generate(t, filepath.Join(dir, fmt.Sprint(kind, seq)), registry.DeliveryOptions{Seed: 3, Count: 200, Kind: kind, Sequence: seq, Source: "RF"})
	}
	empty, err := rs.RegistryDigest(ctx)
	ok(t, err)
	// A delta before any snapshot.
	_, err = registry.Import(ctx, rs, gen(registry.KindDelta, 2), importOpts(dir))
	checkErr(t, err, registry.ErrOutOfSequence)

	// A corrupted data file.
	snap := gen(registry.KindSnapshot, 1)
	_, data, err := registry.ReadManifest(snap)
	ok(t, err)
	b, err := os.ReadFile(data)
	ok(t, err)
	corrupt := []byte(strings.Replace(string(b), "create,", "change,", 1))
	ok(t, os.WriteFile(data, corrupt, 0o644))
	_, err = registry.Import(ctx, rs, snap, importOpts(dir))
	checkErr(t, err, registry.ErrChecksum)
	// A manifest that lies about the record count.
	ok(t, os.WriteFile(data, b, 0o644))
	m, _, err := registry.ReadManifest(snap)
	ok(t, err)
	m.RecordCount++
	ok(t, registry.WriteManifest(snap, m))
	_, err = registry.Import(ctx, rs, snap, importOpts(dir))
	checkErr(t, err, registry.ErrRecordCount)
	d, err := rs.RegistryDigest(ctx)
	ok(t, err)
	same(t, d, empty)
	m.RecordCount--
	ok(t, registry.WriteManifest(snap, m))
	// A refused delivery can be run again once corrected.
	_, err = registry.Import(ctx, rs, snap, importOpts(dir))
	ok(t, err)

	// Deltas out of order, a reused sequence number, an old snapshot.
	_, err = registry.Import(ctx, rs, gen(registry.KindDelta, 3), importOpts(dir))
	checkErr(t, err, registry.ErrOutOfSequence)
	_, err = registry.Import(ctx, rs, gen(registry.KindDelta, 2), importOpts(dir))
	ok(t, err)
	other := generate(t, filepath.Join(dir, "other"), registry.DeliveryOptions{Seed: 4, Count: 200, Kind: registry.KindDelta, Sequence: 2, Source: "RF"})
	_, err = registry.Import(ctx, rs, other, importOpts(dir))
	checkErr(t, err, registry.ErrSequenceReused)
	_, err = registry.Import(ctx, rs, gen(registry.KindSnapshot, 2), importOpts(dir))
	checkErr(t, err, registry.ErrSequenceReused)
	// A snapshot may skip numbers; one older than the last may not come.
	_, err = registry.Import(ctx, rs, gen(registry.KindSnapshot, 5), importOpts(dir))
	ok(t, err)
	_, err = registry.Import(ctx, rs, gen(registry.KindSnapshot, 4), importOpts(dir))
	checkErr(t, err, registry.ErrOutOfSequence)
	// Another source has its own sequence.
	o := registry.DeliveryOptions{Seed: 5, Count: 10, Kind: registry.KindSnapshot, Sequence: 1, Source: "RF-OTHER"}
	_, err = registry.Import(ctx, rs, generate(t, filepath.Join(dir, "o"), o), importOpts(dir))
	ok(t, err)
	// A bad manifest.
	bad := filepath.Join(dir, "bad.manifest.json")
	ok(t, os.WriteFile(bad, []byte(`{"version":1,"source":"X","sequence":1,"kind":"full","format":"csv","data_file":"../x","record_count":1,"sha256":"00"}`), 0o644))
	_, err = registry.Import(ctx, rs, bad, importOpts(dir))
	checkErr(t, err, registry.ErrManifest)
}

// corruptions are the kinds of bad lines testRegistryRejects injects, with
// the reject they must produce.
var corruptions = []struct {
	field, reason string
	apply         func(r *registry.Record, prev *registry.Record) string // the line to write instead, or ""
}{
	{"nam", "does not match the person: characters 5–6 must be the last 2 digits of the birth year; characters 7–8 must be the birth month (plus 50 for sex F); characters 9–10 must be the birth day", func(r, _ *registry.Record) string {
		r.Fields[registry.FBirthDate] = "1901-01-01"
		return ""
	}},
	{"birth_date", "must be a valid date written YYYY-MM-DD", func(r, _ *registry.Record) string {
		r.Fields[registry.FBirthDate] = "1990-02-30"
		return ""
	}},
	{"postal_code", "must be a Québec postal code written A1A 1A1 (first letter G, H or J)", func(r, _ *registry.Record) string {
		r.Fields[registry.FPostalCode] = "K1A 0B1"
		return ""
	}},
	{"", "the line has 3 fields instead of 18", func(_, _ *registry.Record) string { return "create,x,y" }},
	{"ref", "the same source reference is on an earlier line", func(r, prev *registry.Record) string {
		*r = *prev
		return ""
	}},
	{"family_name", "holds a character other than letters, spaces, hyphens, apostrophes and periods", func(r, _ *registry.Record) string {
		r.Fields[registry.FFamilyName] = "Tremblay2"
		return ""
	}},
	{"nam", "does not match the person: characters 1–3 must be the first 3 letters of the family name at birth (accents removed, padded with X)", func(r, _ *registry.Record) string {
		r.Fields[registry.FBirthFamilyName] = "Wxyz" // the name at birth, not the number's
		return ""
	}},
	{"op", "a snapshot holds only create records", func(r, _ *registry.Record) string {
		r.Fields[registry.FOp] = registry.OpDeath
		return ""
	}},
	{"card_expiry", "must be a year and month written YYYY-MM", func(r, _ *registry.Record) string {
		r.Fields[registry.FCardExpiry] = "2030-13"
		return ""
	}},
	{"language", "must be fr or en", func(r, _ *registry.Record) string {
		r.Fields[registry.FLanguage] = "es"
		return ""
	}},
}

func testRegistryRejects(t *testing.T, s store.Store) {
	ctx := t.Context()
	rs := asRegistry(t, s)
	dir := t.TempDir()
	const n = 1000
	recs := readRecords(t, generate(t, filepath.Join(dir, "gen"), registry.DeliveryOptions{Seed: 8, Count: n, Kind: registry.KindSnapshot}))
	// Every hundredth record is bad: 1 %, the default threshold.
	var want []string
	var dupLine string
	var buf strings.Builder
	w, err := registry.NewWriter(&buf, registry.FormatCSV)
	ok(t, err)
	for i := range recs {
		r := recs[i]
		replaced := ""
		if i%100 == 50 {
			c := corruptions[(i/100)%len(corruptions)]
			replaced = c.apply(&r, &recs[i-1])
			line := fmt.Sprintf("%d,%s,\"%s\"", i+2, c.field, c.reason)
			if c.field == "ref" {
				dupLine = line // duplicates are found after reading: listed last
			} else {
				want = append(want, line)
			}
		}
		if replaced != "" {
			ok(t, w.Close())
			buf.WriteString(replaced + "\n")
			continue
		}
		ok(t, w.Write(&r))
	}
	ok(t, w.Close())
	want = append(want, dupLine)
	m := registry.Manifest{Source: "REJ", Sequence: 1, Kind: registry.KindSnapshot}
	path := writeRaw(t, filepath.Join(dir, "d"), m, buf.String(), n)

	empty, err := rs.RegistryDigest(ctx)
	ok(t, err)
	// Half the threshold: refused, nothing visible.
	o := importOpts(dir)
	o.MaxRejectRatio = 0.005
	_, err = registry.Import(ctx, rs, path, o)
	checkErr(t, err, registry.ErrTooManyRejects)
	d, err := rs.RegistryDigest(ctx)
	ok(t, err)
	same(t, d, empty)
	// Duplicates alone push it over when the threshold is just below.
	o.MaxRejectRatio = 0.0095
	_, err = registry.Import(ctx, rs, path, o)
	checkErr(t, err, registry.ErrTooManyRejects)

	// The store's own search for duplicates finds the same one.
	o.StoreFindsDuplicates = true
	_, err = registry.Import(ctx, rs, path, o)
	checkErr(t, err, registry.ErrTooManyRejects)
	report, err := os.ReadFile(filepath.Join(dir, "rejects.csv"))
	ok(t, err)
	same(t, strings.Split(strings.TrimSpace(string(report)), "\n"), append([]string{"line,field,reason"}, want...))

	// At the threshold: imported, with the exact report.
	sum, err := registry.Import(ctx, rs, path, importOpts(dir))
	ok(t, err)
	same(t, [3]int64{sum.Records, sum.Rejected, sum.Created}, [3]int64{n, n / 100, n - n/100})
	report, err = os.ReadFile(filepath.Join(dir, "rejects.csv"))
	ok(t, err)
	same(t, strings.Split(strings.TrimSpace(string(report)), "\n"), append([]string{"line,field,reason"}, want...))
}

// writeRaw writes data as a delivery's data file as it is.
func writeRaw(t *testing.T, dir string, m registry.Manifest, data string, count int64) string {
	t.Helper()
	ok(t, os.MkdirAll(dir, 0o755))
	m.Version, m.Format, m.ExtractedAt = registry.ManifestVersion, registry.FormatCSV, time.Date(2026, 11, 20, 5, 0, 0, 0, time.UTC)
	m.DataFile = "data.csv"
	ok(t, os.WriteFile(filepath.Join(dir, m.DataFile), []byte(data), 0o644))
	m.RecordCount, m.SHA256 = count, sha256Hex([]byte(data))
	path := filepath.Join(dir, "manifest.json")
	ok(t, registry.WriteManifest(path, &m))
	return path
}

func testRegistryDeath(t *testing.T, s store.Store) {
	ctx := t.Context()
	rs := asRegistry(t, s)
	dir := t.TempDir()
	recs := readRecords(t, generate(t, dir, registry.DeliveryOptions{Seed: 9, Count: 20, Kind: registry.KindSnapshot}))
	snap := writeDelivery(t, filepath.Join(dir, "1"), registry.Manifest{Source: "D", Sequence: 1, Kind: registry.KindSnapshot}, recs)
	_, err := registry.Import(ctx, rs, snap, importOpts(dir))
	ok(t, err)
	pid := registry.PersonID("D", recs[3].Ref())
	ok(t, rs.CreateAccount(ctx, &sqin.Account{ID: "acct-dead", Email: "dead@example.test", PersonID: pid, LoA: sqin.LoA2,
		Locale: "fr", CreatedAt: t0, UpdatedAt: t0}))
	ok(t, rs.CreateAccount(ctx, &sqin.Account{ID: "acct-alive", Email: "alive@example.test", PersonID: registry.PersonID("D", recs[4].Ref()),
		LoA: sqin.LoA2, Locale: "fr", CreatedAt: t0, UpdatedAt: t0}))
	ok(t, rs.CreateClient(ctx, fullClient("rp")))
	for _, id := range []string{"sess-dead", "sess-alive"} {
		ok(t, rs.CreateSession(ctx, &sqin.Session{ID: id, AccountID: strings.Replace(id, "sess", "acct", 1), ExpiresAt: t0.Add(time.Hour)}))
	}
	g := issueGrant(t, s, "code-dead", "grant-dead", "rp", "sess-dead", false)

	death := registry.Record{}
	death.Fields[registry.FOp], death.Fields[registry.FRef], death.Fields[registry.FDeathDate] = registry.OpDeath, recs[3].Ref(), "2026-11-10"
	unknown := death
	unknown.Fields[registry.FRef] = "NOBODY"
	delta := writeDelivery(t, filepath.Join(dir, "2"), registry.Manifest{Source: "D", Sequence: 2, Kind: registry.KindDelta},
		[]registry.Record{death, unknown})
	sum, err := registry.Import(ctx, rs, delta, importOpts(dir))
	ok(t, err)
	same(t, [4]int64{sum.Deceased, sum.Unknown, int64(sum.SessionsEnded), sum.Changed}, [4]int64{1, 1, 1, 0})
	a, err := rs.GetAccount(ctx, "acct-dead")
	ok(t, err)
	same(t, a.Locked, true)
	a, err = rs.GetAccount(ctx, "acct-alive")
	ok(t, err)
	same(t, a.Locked, false)
	_, err = rs.GetSession(ctx, "sess-dead", t0)
	isErr(t, err, sqin.ErrNotFound)
	_, err = rs.GetSession(ctx, "sess-alive", t0)
	ok(t, err)
	gr, err := rs.GetGrant(ctx, g.ID)
	ok(t, err)
	if gr.RevokedAt.IsZero() {
		t.Fatal("the grant of the deceased person's session is not revoked")
	}
	p, err := rs.GetPerson(ctx, pid)
	ok(t, err)
	same(t, p.DeathDate, "2026-11-10")
}

// interrupted fails StageRecords after a number of batches, as a crash
// would stop the import.
type interrupted struct {
	registryStore
	left int
}

var errInterrupted = errors.New("interrupted")

func (s *interrupted) StageRecords(ctx context.Context, st *registry.ImportState, recs []registry.Record, through int64) error {
	if s.left == 0 {
		return errInterrupted
	}
	s.left--
	return s.registryStore.StageRecords(ctx, st, recs, through)
}

func testRegistryResume(t *testing.T, s store.Store) {
	ctx := t.Context()
	rs := asRegistry(t, s)
	dir := t.TempDir()
	const n = 1000
	snap := generate(t, dir, registry.DeliveryOptions{Seed: 12, Count: n, Kind: registry.KindSnapshot, Source: "RS"})
	_, err := registry.Import(ctx, &interrupted{rs, 4}, snap, importOpts(dir))
	checkErr(t, err, errInterrupted)
	// Another delivery of the source must wait for this one.
	other := generate(t, filepath.Join(dir, "o"), registry.DeliveryOptions{Seed: 12, Count: n, Kind: registry.KindSnapshot, Sequence: 2, Source: "RS"})
	_, err = registry.Import(ctx, rs, other, importOpts(dir))
	checkErr(t, err, registry.ErrInProgress)
	_, err = registry.Import(ctx, &interrupted{rs, 3}, snap, importOpts(dir))
	checkErr(t, err, errInterrupted)
	sum, err := registry.Import(ctx, rs, snap, importOpts(dir))
	ok(t, err)
	same(t, [4]any{sum.Resumed, sum.Created, sum.Records, sum.Rejected}, [4]any{true, int64(n), int64(n), int64(0)})
	for _, r := range readRecords(t, snap) {
		checkEntry(t, rs, "RS", &r)
	}
}
