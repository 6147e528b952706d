package sqlstore

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
