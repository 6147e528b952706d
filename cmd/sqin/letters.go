package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/web"
	assets "github.com/sqin/sqin/web"
)

// lettersCmd is `sqin letters export`: the batch job that prints the
// queued codes by mail for the print shop (signup.ExportLetters). It
// needs the master key (the codes' hashes are keyed by it) and may run
// while servers run. One export at a time runs into a given --out: it
// holds a lock on a file there for its whole run, and a second one stops
// at once with an error (exports into different directories never print
// the same letter).
func lettersCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "export" {
		return errors.New("letters: want export (sqin letters export --out DIR)")
	}
	var cfg config.Config
	fs := flag.NewFlagSet("sqin letters export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbFlags(fs, &cfg)
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "file holding the base64 master key")
	fs.StringVar(&cfg.MasterKey, "master-key", "", "base64 master key (prefer SQIN_MASTER_KEY)")
	fs.BoolVar(&cfg.Demo, "demo", false, "use the demo master key in --data-dir")
	fs.StringVar(&cfg.Issuer, "issuer", "", "the service's address printed in the letters (required outside --demo)")
	fs.DurationVar(&cfg.MailCodeTTL, "mail-code-ttl", 30*24*time.Hour, "life of the printed codes (as sqin serve's --mail-code-ttl)")
	out := fs.String("out", "", "directory of the batches: each export writes DIR/<batch>/ with one PDF per letter and manifest.json; one export at a time per directory (a second one stops with an error)")
	max := fs.Int("max", 1000, "letters per batch")
	if err := parseCmd(fs, args[1:], getenv); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("letters export: --out DIR is required")
	}
	if cfg.Issuer == "" {
		if !cfg.Demo {
			return errors.New("letters export: --issuer is required (the address printed in the letters)")
		}
		cfg.Issuer = "http://127.0.0.1:8080"
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
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
	cat, err := web.LoadCatalog(assets.FS)
	if err != nil {
		return err
	}
	pseudonyms, err := audit.NewPseudonymizer(derive(master, "audit-pseudonym"))
	if err != nil {
		return err
	}
	res, err := signup.ExportLetters(ctx, db, signup.ExportOptions{Dir: *out, Key: mailCodeKey(master), TTL: cfg.MailCodeTTL,
		Issuer: cfg.Issuer, Catalog: cat, Max: *max, Actor: cliActor(getenv), Pseudonyms: pseudonyms,
		Log: slog.New(slog.NewTextHandler(stderr, nil))})
	if err != nil {
		return err
	}
	if res.Printed == 0 {
		fmt.Fprintln(stderr, "no letter to print")
	}
	return jsonOut(stdout, res)
}
