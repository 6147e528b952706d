package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/registry"
)

// registryCmd runs sqin registry generate|import|digest.
func registryCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	const want = "generate, import or digest"
	if len(args) == 0 {
		return errors.New("registry: want " + want)
	}
	switch args[0] {
	case "generate":
		return registryGenerate(args[1:], stdout, getenv)
	case "import":
		return registryImport(ctx, args[1:], stdout, stderr, getenv)
	case "digest":
		return registryDigest(ctx, args[1:], stdout, getenv)
	}
	return fmt.Errorf("registry: unknown subcommand %q (want %s)", args[0], want)
}

// deliveryFlags binds the flags of a synthetic delivery generator (sqin
// registry generate, sqin proofing generate): the options, the output
// directory (default defOut) and the source (default defSource), with
// each command's help for the source, --count and --seed.
func deliveryFlags(fs *flag.FlagSet, o *registry.DeliveryOptions, out *string, defOut, defSource, sourceHelp, countHelp, seedHelp string) {
	fs.IntVar(&o.Count, "count", 1000, countHelp)
	fs.Uint64Var(&o.Seed, "seed", 1, seedHelp)
	fs.StringVar(out, "out", defOut, "directory to write the manifest and data file into")
	fs.StringVar(&o.Kind, "kind", registry.KindSnapshot, "snapshot or delta")
	fs.Int64Var(&o.Sequence, "seq", 0, "sequence number (default 1 for a snapshot, base-seq+1 for a delta)")
	fs.Int64Var(&o.BaseSeq, "base-seq", 1, "for a delta: the sequence of the snapshot it follows")
	fs.StringVar(&o.Format, "format", registry.FormatCSV, "csv or jsonl")
	fs.StringVar(&o.Source, "source", defSource, sourceHelp)
}

func registryGenerate(args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("sqin registry generate", flag.ContinueOnError)
	var (
		o   registry.DeliveryOptions
		out string
	)
	deliveryFlags(fs, &o, &out, "registry-delivery", registry.SyntheticSource, "source name",
		"people in the base population (the snapshot)", "seed: the same seed gives the same files")
	if err := parseCmd(fs, args, getenv); err != nil {
		return err
	}
	start := time.Now()
	m, path, err := registry.GenerateDelivery(out, o)
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "%s\n%d records (%s %d, %s) in %s, %.0f records/s\n", path, m.RecordCount, m.Kind,
		m.Sequence, m.Format, el.Round(time.Millisecond), float64(m.RecordCount)/max(el.Seconds(), 1e-9))
	return nil
}

// splitPositional parses fs from args where one positional argument may
// come before or after the flags, and returns it.
func splitPositional(fs *flag.FlagSet, args []string, getenv func(string) string) (string, error) {
	var pos string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = args[0], args[1:]
	}
	if err := config.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", errUsage
		}
		return "", err
	}
	rest := fs.Args()
	if pos == "" && len(rest) > 0 {
		pos, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("%s: unexpected argument %q", fs.Name(), rest[0])
	}
	return pos, nil
}

func registryImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("sqin registry import", flag.ContinueOnError)
	var (
		cfg config.Config
		o   registry.ImportOptions
	)
	dbFlags(fs, &cfg)
	fs.Float64Var(&o.MaxRejectRatio, "max-reject-ratio", 0.01, "refuse the delivery when more than this share of its records is rejected (0 allows none)")
	fs.StringVar(&o.RejectsPath, "rejects", "", "reject report (default: the data file's path + .rejects.csv)")
	fs.IntVar(&o.BatchSize, "batch", 50_000, "records per staging transaction")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the import to this file (go tool pprof)")
	manifest, err := splitPositional(fs, args, getenv)
	if err != nil {
		return err
	}
	if manifest == "" {
		return errors.New("registry import: give the manifest file: sqin registry import MANIFEST [--db URL]")
	}
	if o.MaxRejectRatio == 0 {
		o.MaxRejectRatio = -1 // the library's zero means the default
	}
	if getenv("GOMEMLIMIT") == "" {
		// Keep the Go heap (two batches, the duplicate filter) well under
		// the import's memory budget of 500 MB; SQLite's page cache is
		// outside it.
		debug.SetMemoryLimit(256 << 20)
	}
	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	o.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	o.Progress = progressReporter(stderr, o.Logger)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("registry import: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("registry import: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	s, err := registry.Import(ctx, db, manifest, o)
	if err != nil {
		return fmt.Errorf("registry import: %w", err)
	}
	if s.AlreadyImported {
		fmt.Fprintf(stdout, "delivery %s %d already imported; nothing to do (sessions ended: %d)\n", s.Source, s.Sequence, s.SessionsEnded)
		return nil
	}
	resumed := ""
	if s.Resumed {
		resumed = " (resumed)"
	}
	fmt.Fprintf(stdout, "imported %s %s %d%s in %s: %d records, %.0f records/s\n"+
		"created %d, changed %d, unchanged %d, deceased %d, removed %d, unknown %d, rejected %d, sessions ended %d\n",
		s.Source, s.Kind, s.Sequence, resumed, s.Elapsed.Round(time.Millisecond), s.Records,
		float64(s.Records)/max(s.Elapsed.Seconds(), 1e-9), s.Created, s.Changed, s.Unchanged, s.Deceased, s.Removed,
		s.Unknown, s.Rejected, s.SessionsEnded)
	return nil
}

// progressReporter draws a progress line on a terminal, or logs a line
// every 10 seconds otherwise.
func progressReporter(w io.Writer, log *slog.Logger) func(done, total int64) {
	f, ok := w.(*os.File)
	tty := false
	if ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	var (
		mu    sync.Mutex
		start = time.Now()
		last  time.Time
		ended bool
	)
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		finished := done >= total
		if finished && ended {
			return
		}
		ended = finished
		if !finished && now.Sub(last) < map[bool]time.Duration{true: 200 * time.Millisecond, false: 10 * time.Second}[tty] {
			return
		}
		last = now
		el := now.Sub(start).Seconds()
		rate := float64(done) / max(el, 1e-9)
		eta := time.Duration(0)
		if rate > 0 && total > done {
			eta = time.Duration(float64(total-done)/rate) * time.Second
		}
		pct := 100.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		if tty {
			const width = 30
			bar := strings.Repeat("#", int(pct/100*width)) + strings.Repeat(".", width-int(pct/100*width))
			fmt.Fprintf(f, "\r[%s] %5.1f%% %d/%d  %.0f records/s  ETA %s ", bar, pct, done, total, rate, eta.Round(time.Second))
			if finished {
				fmt.Fprintln(f)
			}
			return
		}
		log.Info("registry import progress", "records", done, "of", total, "percent", fmt.Sprintf("%.1f", pct),
			"records_per_second", int64(rate), "eta", eta.Round(time.Second))
	}
}

func registryDigest(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	var cfg config.Config
	fs := flag.NewFlagSet("sqin registry digest", flag.ContinueOnError)
	dbFlags(fs, &cfg)
	if err := parseCmd(fs, args, getenv); err != nil {
		return err
	}
	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	d, err := db.RegistryDigest(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, d)
	return nil
}
