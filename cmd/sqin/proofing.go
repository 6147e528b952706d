package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
)

// proofingCmd runs sqin proofing generate|import: deliveries of local
// shared secrets by their holder body (docs/formats/proofing-secrets.md).
func proofingCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	const want = "generate or import"
	if len(args) == 0 {
		return errors.New("proofing: want " + want)
	}
	switch args[0] {
	case "generate":
		return proofingGenerate(args[1:], stdout, getenv)
	case "import":
		return proofingImport(ctx, args[1:], stdout, stderr, getenv)
	}
	return fmt.Errorf("proofing: unknown subcommand %q (want %s)", args[0], want)
}

// proofingGenerate writes a synthetic driver's licence delivery for the
// people of `sqin registry generate` with the same --count and --seed.
func proofingGenerate(args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("sqin proofing generate", flag.ContinueOnError)
	var (
		o   proofing.SecretDeliveryOptions
		out string
	)
	deliveryFlags(fs, &o, &out, "secret-delivery", proofing.SyntheticSecretSource, "source name (the holder)",
		"people of the registry's synthetic population (as sqin registry generate --count)",
		"seed of that population (as sqin registry generate --seed)")
	if err := parseCmd(fs, args, getenv); err != nil {
		return err
	}
	start := time.Now()
	m, path, err := proofing.GenerateSecretDelivery(out, o)
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "%s\n%d records (%s %s %d, %s) in %s\n", path, m.RecordCount, m.SecretType, m.Kind, m.Sequence, m.Format,
		el.Round(time.Millisecond))
	return nil
}

// proofingImport imports one secret delivery: only keyed hashes are
// stored, under a key derived from the master key (as sqin serve's
// prover), so it needs the master key.
func proofingImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("sqin proofing import", flag.ContinueOnError)
	var (
		cfg config.Config
		o   proofing.ImportOptions
	)
	dbFlags(fs, &cfg)
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "file holding the base64 master key")
	fs.StringVar(&cfg.MasterKey, "master-key", "", "base64 master key (prefer SQIN_MASTER_KEY)")
	fs.BoolVar(&cfg.Demo, "demo", false, "use the demo master key in --data-dir")
	fs.StringVar(&cfg.ProofingCatalogue, "proofing-catalogue", "", "JSON file of shared-secret types (as sqin serve's; default: built-in)")
	fs.Float64Var(&o.MaxRejectRatio, "max-reject-ratio", 0.01, "refuse the delivery when more than this share of its records is rejected (0 allows none)")
	fs.StringVar(&o.RejectsPath, "rejects", "", "reject report (default: the data file's path + .rejects.csv)")
	fs.IntVar(&o.BatchSize, "batch", 2000, "lines per transaction")
	manifest, err := splitPositional(fs, args, getenv)
	if err != nil {
		return err
	}
	if manifest == "" {
		return errors.New("proofing import: give the manifest file: sqin proofing import MANIFEST [--db URL]")
	}
	if o.MaxRejectRatio == 0 {
		o.MaxRejectRatio = -1 // the library's zero means the default
	}
	cat := proofing.DefaultCatalogue()
	if cfg.ProofingCatalogue != "" {
		f, err := os.Open(cfg.ProofingCatalogue)
		if err != nil {
			return fmt.Errorf("proofing catalogue: %w", err)
		}
		cat, err = proofing.ParseCatalogue(f, func(name string) bool { _, ok := registry.AttributeByName(name); return ok })
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.ProofingCatalogue, err)
		}
	}
	if err := defaultDB(&cfg); err != nil {
		return err
	}
	master, err := masterKey(&cfg)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	o.Key = proofingSecretKey(master)
	o.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	o.Progress = secretProgress(o.Logger, 10*time.Second)
	o.Actor = cliActor(getenv)
	s, err := proofing.ImportSecrets(ctx, db, cat, manifest, o)
	if err != nil {
		return err
	}
	m := s.Manifest
	if s.AlreadyImported {
		fmt.Fprintf(stdout, "delivery %s %s %d already imported; nothing to do\n", m.Source, m.SecretType, m.Sequence)
		return nil
	}
	fmt.Fprintf(stdout, "imported %s %s %s %d in %s: %d records, %.0f records/s\n"+
		"stored %d, removed %d, dropped %d, unknown %d, rejected %d\n",
		m.Source, m.SecretType, m.Kind, m.Sequence, s.Elapsed.Round(time.Millisecond), s.Records,
		float64(s.Records)/max(s.Elapsed.Seconds(), 1e-9), s.Stored, s.Removed, s.Dropped, s.Unknown, s.Rejected)
	return nil
}

// proofingSecretKey keys the hashes of delivered secrets: sqin serve's
// prover checks them, sqin proofing import makes them.
func proofingSecretKey(master []byte) []byte { return derive(master, "proofing-secret") }

// secretProgress logs the second pass's progress at most every interval,
// and its end.
func secretProgress(log *slog.Logger, every time.Duration) func(done, total int64) {
	start, last := time.Now(), time.Now()
	return func(done, total int64) {
		if now := time.Now(); now.Sub(last) >= every || done >= total {
			last = now
			rate := float64(done) / max(now.Sub(start).Seconds(), 1e-9)
			log.Info("secret import progress", "records", done, "of", total, "records_per_second", int64(rate))
		}
	}
}
