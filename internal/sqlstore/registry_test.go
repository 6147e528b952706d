package sqlstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/registry"
)

var importCount = flag.Int("registry-import-count", 100_000, "records per BenchmarkRegistryImport delivery")

// BenchmarkRegistryImport imports a snapshot of -registry-import-count
// generated people into a fresh database per dialect and reports
// records/s; on PostgreSQL also a bare COPY of the same file into a bare
// table (the physical floor), for the ratio.
func BenchmarkRegistryImport(b *testing.B) {
	dir := b.TempDir()
	_, manifest, err := registry.GenerateDelivery(dir, registry.DeliveryOptions{Seed: 42, Count: *importCount, Kind: registry.KindSnapshot})
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				db := openTest(b, d.url(b))
				b.StartTimer()
				start := time.Now()
				s, err := registry.Import(context.Background(), db, manifest, registry.ImportOptions{})
				if err != nil {
					b.Fatal(err)
				}
				el := time.Since(start)
				if s.Created != int64(*importCount) {
					b.Fatalf("created %d", s.Created)
				}
				b.ReportMetric(float64(s.Records)/el.Seconds(), "records/s")
			}
		})
	}
	b.Run("postgres-bare-copy", func(b *testing.B) {
		u := postgresURL(b)
		_, data, err := registry.ReadManifest(manifest)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		cols := strings.Join(registry.CSVHeader[:], " text, ") + " text"
		for b.Loop() {
			if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS bare; CREATE TABLE bare ("+cols+")"); err != nil {
				b.Fatal(err)
			}
			f, err := os.Open(data)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if _, err := conn.PgConn().CopyFrom(ctx, f, "COPY bare FROM STDIN WITH (FORMAT csv, HEADER true)"); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(*importCount)/time.Since(start).Seconds(), "records/s")
			f.Close()
		}
	})
}

// personsIndexes describes persons' indexes: on PostgreSQL each index's
// definition and constraint, on SQLite each index's uniqueness and
// columns (the primary key is a unique index once a load replaced the
// table).
func personsIndexes(t *testing.T, db *DB) []string {
	t.Helper()
	q := `SELECT regexp_replace(pg_get_indexdef(i.indexrelid), ' ON \S+ USING ', ' ON persons USING ')
			|| ' ' || COALESCE(k.contype::text, '')
		FROM pg_index i LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid
		WHERE i.indrelid = 'persons'::regclass ORDER BY 1`
	if db.dialect == SQLite {
		q = `SELECT l."unique" || ' ' || group_concat(i.name, ',') FROM pragma_index_list('persons') l,
			pragma_index_info(l.name) i GROUP BY l.name ORDER BY 1`
	}
	rows, err := db.read.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func importModes(t *testing.T, db *DB) string {
	t.Helper()
	rows, err := db.read.QueryContext(t.Context(), "SELECT source, mode FROM registry_imports WHERE state = 'applied' ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var src, mode string
		if err := rows.Scan(&src, &mode); err != nil {
			t.Fatal(err)
		}
		out = append(out, src+":"+mode)
	}
	return strings.Join(out, " ")
}

// personsAdded adds people (without source) to the registry just before
// the merge, as a writer working beside the import would.
type personsAdded struct {
	*DB
	n int
}

func (s personsAdded) MergeImport(ctx context.Context, st *registry.ImportState, p registry.MergeParams) (*registry.Summary, error) {
	for i := range s.n {
		if err := s.CreatePerson(ctx, &sqin.Person{ID: fmt.Sprintf("other-%03d", i), FamilyName: "Autre"}); err != nil {
			return nil, err
		}
	}
	return s.DB.MergeImport(ctx, st, p)
}

// TestRegistryLoadMode checks that a first snapshot loaded in place of
// persons (load mode) gives the registry a merge gives, with persons'
// indexes and keys, the people it held kept, and a merge instead when
// people were added after the delivery began.
func TestRegistryLoadMode(t *testing.T) {
	dir := t.TempDir()
	gen := func(source string, kind string, n int) string {
		_, m, err := registry.GenerateDelivery(filepath.Join(dir, source+kind), registry.DeliveryOptions{
			Seed: uint64(source[0]), Count: n, Kind: kind, Source: source})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b, bDelta := gen("A", registry.KindSnapshot, 600), gen("B", registry.KindSnapshot, 500), gen("B", registry.KindDelta, 500)
	opts := registry.ImportOptions{BatchSize: 128, RejectsPath: filepath.Join(dir, "rejects.csv")}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := t.Context()
			run := func(st registry.Store, manifests ...string) {
				t.Helper()
				for _, m := range manifests {
					if _, err := registry.Import(ctx, st, m, opts); err != nil {
						t.Fatal(err)
					}
				}
			}
			digest := func(db *DB) string {
				t.Helper()
				s, err := db.RegistryDigest(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			// A then B: A is loaded, B merged (the registry holds more
			// people than B). B then A: both loaded, A with B's people.
			db1, db2 := openTest(t, d.url(t)), openTest(t, d.url(t))
			indexes := personsIndexes(t, db1)
			if err := db2.CreatePerson(ctx, &sqin.Person{ID: "kept", FamilyName: "Gardé"}); err != nil {
				t.Fatal(err)
			}
			if err := db1.CreatePerson(ctx, &sqin.Person{ID: "kept", FamilyName: "Gardé"}); err != nil {
				t.Fatal(err)
			}
			run(db1, a, b, bDelta)
			run(db2, b, a, bDelta)
			if got := importModes(t, db1); got != "A:load B:merge B:merge" {
				t.Errorf("db1 modes: %s", got)
			}
			if got := importModes(t, db2); got != "B:load A:load B:merge" {
				t.Errorf("db2 modes: %s", got)
			}
			if d1, d2 := digest(db1), digest(db2); d1 != d2 {
				t.Fatalf("loading and merging gave different registries: %s, %s", d1, d2)
			}
			if got := personsIndexes(t, db2); !slices.Equal(got, indexes) {
				t.Fatalf("persons' indexes after loads:\n%q\nwant\n%q", got, indexes)
			}
			p, err := db2.GetPerson(ctx, "kept")
			if err != nil || p.FamilyName != "Gardé" {
				t.Fatalf("the person held before the load: %v %v", p, err)
			}
			recs := firstRecord(t, a)
			err = db2.CreatePerson(ctx, &sqin.Person{ID: registry.PersonID("A", recs.Ref())})
			if !errors.Is(err, sqin.ErrConflict) {
				t.Fatalf("a second person with a loaded identifier: %v, want a conflict", err)
			}
			id, err := db2.FindPersonByHealthNumber(ctx, recs.Fields[registry.FNAM])
			if err != nil || id != registry.PersonID("A", recs.Ref()) {
				t.Fatalf("lookup by health number after the load: %q %v", id, err)
			}
			checkLookupPlan(t, db1)
			checkLookupPlan(t, db2)

			// People added after the delivery began: the same delivery is
			// merged (from its load-shaped staging table) instead.
			db3, db4 := openTest(t, d.url(t)), openTest(t, d.url(t))
			run(personsAdded{db3, 700}, b)
			for i := range 700 {
				if err := db4.CreatePerson(ctx, &sqin.Person{ID: fmt.Sprintf("other-%03d", i), FamilyName: "Autre"}); err != nil {
					t.Fatal(err)
				}
			}
			run(db4, b)
			if got := importModes(t, db3) + " " + importModes(t, db4); got != "B:load B:merge" {
				t.Errorf("modes: %s", got)
			}
			if d3, d4 := digest(db3), digest(db4); d3 != d4 {
				t.Fatal("a load turned merge gave another registry than a merge")
			}
		})
	}
}

// checkLookupPlan checks that FindPersonByHealthNumber's query reads the
// index persons_health_no_live alone: a covering index on SQLite, an
// index-only scan without sort on PostgreSQL (sequential and bitmap scans
// turned off: on a small table the planner would rather read it all).
func checkLookupPlan(t *testing.T, db *DB) {
	t.Helper()
	ctx := t.Context()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	explain := "EXPLAIN QUERY PLAN "
	if db.dialect == Postgres {
		explain = "EXPLAIN "
		for _, q := range []string{"SET LOCAL enable_seqscan = off", "SET LOCAL enable_bitmapscan = off"} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows, err := tx.QueryContext(ctx, explain+db.sql(qPersonByHealthNo), "ABCD12345678")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var plan []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, fmt.Sprint(vals[len(vals)-1]))
	}
	p := strings.Join(plan, "\n")
	want := "COVERING INDEX persons_health_no_live"
	if db.dialect == Postgres {
		want = "Index Only Scan using persons_health_no_live"
	}
	if !strings.Contains(p, want) || strings.Contains(p, "Sort") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("lookup by health number, plan:\n%s\nwant %s and no sort", p, want)
	}
}

func firstRecord(t *testing.T, manifest string) *registry.Record {
	t.Helper()
	m, data, err := registry.ReadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r registry.Record
	if err := registry.NewReader(f, m.Format).Next(&r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// TestRegistryLegacyLayout imports a delivery of the first layout (a CSV
// header without birth_family_name): accepted, the people's birth family
// name empty; and checks that the same people with the birth name give it
// to the registry.
func TestRegistryLegacyLayout(t *testing.T) {
	dir := t.TempDir()
	m, manifest, err := registry.GenerateDelivery(filepath.Join(dir, "new"), registry.DeliveryOptions{Seed: 5, Count: 400, Kind: registry.KindSnapshot, Source: "NEW"})
	if err != nil {
		t.Fatal(err)
	}
	// The same people (those who go by their name at birth: without it,
	// a married name would not match the number) in the first layout.
	b, err := os.ReadFile(filepath.Join(filepath.Dir(manifest), m.DataFile))
	if err != nil {
		t.Fatal(err)
	}
	var legacy strings.Builder
	var married, kept []string
	n := int64(0)
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		cut := strings.LastIndexByte(line, ',')
		var r registry.Record
		if i > 0 {
			if err := registry.ParseCSVLine([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			if r.Fields[registry.FFamilyName] != r.Fields[registry.FBirthFamilyName] {
				married = append(married, r.Ref())
				continue
			}
			kept = append(kept, r.Ref())
			n++
		}
		legacy.WriteString(line[:cut] + "\n")
	}
	if len(married) == 0 {
		t.Fatal("no married name in the delivery")
	}
	lm := registry.Manifest{Version: registry.ManifestVersion, Source: "OLD", ExtractedAt: m.ExtractedAt, Sequence: 1,
		Kind: registry.KindSnapshot, Format: registry.FormatCSV, DataFile: "old.csv", RecordCount: n,
		SHA256: fmt.Sprintf("%x", sha256.Sum256([]byte(legacy.String())))}
	oldDir := filepath.Join(dir, "old")
	if err := os.MkdirAll(oldDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(oldDir, "old.csv"), []byte(legacy.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	oldManifest := filepath.Join(oldDir, "old.manifest.json")
	if err := registry.WriteManifest(oldManifest, &lm); err != nil {
		t.Fatal(err)
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := t.Context()
			db := openTest(t, d.url(t))
			opts := registry.ImportOptions{MaxRejectRatio: -1, RejectsPath: filepath.Join(t.TempDir(), "rejects.csv")}
			s, err := registry.Import(ctx, db, oldManifest, opts)
			if err != nil || s.Created != n || s.Rejected != 0 {
				t.Fatalf("first layout: %+v %v", s, err)
			}
			if s, err = registry.Import(ctx, db, manifest, opts); err != nil || s.Created != 400 || s.Rejected != 0 {
				t.Fatalf("second layout: %+v %v", s, err)
			}
			birthName := func(source, ref string) string {
				t.Helper()
				e, err := db.GetRegistryEntry(ctx, registry.PersonID(source, ref))
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range e.Attributes {
					if a.Name == "birth_family_name" {
						return a.Value
					}
				}
				t.Fatal("no birth_family_name attribute")
				return ""
			}
			if got := birthName("OLD", kept[0]); got != "" {
				t.Errorf("first layout: birth family name %q", got)
			}
			if got := birthName("NEW", married[0]); got == "" {
				t.Error("second layout: no birth family name")
			}
		})
	}
}
