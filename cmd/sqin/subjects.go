package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/clientreg"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/store"
)

// maxSubLen is the longest sub OpenID Connect allows (Core 1.0 section 2).
const maxSubLen = 255

// importSubjects runs sqin client import-subjects: the sub a public body
// knew its users by in a legacy service is kept for them, all lines or
// none. The report names lines, not people: the operator has the file.
func importSubjects(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	const cmd = "client import-subjects"
	var cfg config.Config
	fs := flag.NewFlagSet("sqin client import-subjects", flag.ContinueOnError)
	dbFlags(fs, &cfg)
	sector := fs.String("sector", "", "public body (sector) whose clients knew the citizens by these subs")
	file := fs.String("file", "", "CSV file with the header account_email,sub (- for standard input)")
	dryRun := fs.Bool("dry-run", false, "check and report every line, import nothing")
	if err := parseCmd(fs, args, getenv); err != nil {
		return err
	}
	if *sector == "" || *file == "" {
		return fmt.Errorf("%s: --sector and --file are required", cmd)
	}
	if err := clientreg.CheckSector(*sector); err != nil {
		return metadataError(cmd, err)
	}
	var in io.Reader = os.Stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		defer f.Close()
		in = f
	}
	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()

	type line struct {
		n      int
		result string // set when the line cannot be imported before the store sees it
		item   int    // index in items otherwise
	}
	var (
		lines []line
		items []store.LegacySubject
	)
	r := csv.NewReader(in)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: %s: no header line account_email,sub: %v", cmd, *file, err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // a BOM from spreadsheets
	}
	if len(header) != 2 || strings.ToLower(strings.TrimSpace(header[0])) != "account_email" || strings.ToLower(strings.TrimSpace(header[1])) != "sub" {
		return fmt.Errorf("%s: %s: the first line must be the header account_email,sub", cmd, *file)
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %v; nothing imported", cmd, *file, err)
		}
		n, _ := r.FieldPos(0)
		if len(rec) != 2 {
			lines = append(lines, line{n: n, result: "invalid: want 2 fields, account_email,sub"})
			continue
		}
		email, sub := strings.ToLower(strings.TrimSpace(rec[0])), rec[1]
		if msg := checkSub(sub); msg != "" {
			lines = append(lines, line{n: n, result: "invalid: " + msg})
			continue
		}
		acct, err := db.GetAccountByEmail(ctx, email)
		switch {
		case errors.Is(err, sqin.ErrNotFound) || email == "":
			lines = append(lines, line{n: n, result: "unknown account"})
			continue
		case err != nil:
			return fmt.Errorf("%s: line %d: %w", cmd, n, err)
		}
		lines = append(lines, line{n: n, item: len(items)})
		items = append(items, store.LegacySubject{AccountID: acct.ID, Sub: sub})
	}
	if len(lines) == 0 {
		return fmt.Errorf("%s: %s has no lines after the header", cmd, *file)
	}

	refused := 0
	for _, l := range lines {
		if l.result != "" {
			refused++
		}
	}
	// The event commits with the import; a dry run or a refusal rolls both
	// back. It counts lines and names the sector, never an account.
	ev := audit.Event{Actor: cliActor(getenv), Action: audit.SubjectsImported, PublicBody: *sector, Outcome: audit.Success,
		Attributes: []string{"sub"}, Detail: fmt.Sprintf("sqin client import-subjects: %d lines", len(items))}
	outcomes, err := db.ImportLegacySubjects(audit.With(ctx, ev), *sector, items, *dryRun || refused > 0)
	if err != nil && !errors.Is(err, sqin.ErrConflict) {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	counts := map[string]int{}
	for _, l := range lines {
		res := l.result
		if res == "" {
			o := outcomes[l.item]
			res = o.String()
			if o.Conflict() {
				refused++
			}
		}
		key, _, _ := strings.Cut(res, ":")
		counts[key]++
		fmt.Fprintf(stdout, "line %d: %s\n", l.n, res)
	}
	fmt.Fprintf(stdout, "%d lines: %d imported, %d unchanged, %d unknown accounts, %d conflicts, %d invalid\n", len(lines),
		counts["imported"], counts["unchanged"], counts["unknown account"], counts["conflict"], counts["invalid"])
	if refused > 0 {
		return fmt.Errorf("%s: nothing imported: %d lines cannot be imported (see above); correct them and run again", cmd, refused)
	}
	if *dryRun {
		fmt.Fprintln(stdout, "dry run: nothing imported")
		return nil
	}
	if !sectorHasClients(ctx, db, *sector) {
		fmt.Fprintf(stdout, "note: no client of sector %q exists yet; its clients will see these subs once registered with --sector %s\n", *sector, *sector)
	}
	return nil
}

// checkSub returns why s cannot be a sub, or "".
func checkSub(s string) string {
	switch {
	case s == "":
		return "empty sub"
	case len(s) > maxSubLen:
		return fmt.Sprintf("sub longer than %d characters", maxSubLen)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }):
		return "sub must be printable ASCII without spaces"
	}
	return ""
}

func sectorHasClients(ctx context.Context, db interface {
	ListClients(context.Context) ([]*sqin.Client, error)
}, sector string) bool {
	cs, err := db.ListClients(ctx)
	if err != nil {
		return true // say nothing
	}
	for _, c := range cs {
		if c.SectorID() == sector {
			return true
		}
	}
	return false
}
