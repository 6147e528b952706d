package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/admin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/legal"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/sqlstore"
)

// noAuthorisation says that ref names no authorisation.
func noAuthorisation(ref string) string {
	return fmt.Sprintf("no authorisation %q (sqin authorisation list)", ref)
}

func knownAttribute(name string) bool {
	_, ok := registry.AttributeByName(name)
	return ok
}

// authorisationCmd runs sqin authorisation create|list|show|end: the legal
// authorisations under which registry attributes reach public bodies.
func authorisationCmd(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New("authorisation: want create, list, show, end or report")
	}
	sub := args[0]
	var cfg config.Config
	fs := flag.NewFlagSet("sqin authorisation "+sub, flag.ContinueOnError)
	dbFlags(fs, &cfg)
	var (
		in                     legal.Input
		recipients, attributes listFlag
		from, to, at           string
		refFlag, format        string
	)
	switch sub {
	case "create":
		fs.StringVar(&in.Ref, "ref", "", "reference of the authorisation, e.g. the decree number (unique)")
		fs.StringVar(&in.Title, "title", "", "plain-language title")
		fs.StringVar(&in.Purpose, "purpose", "", "purpose code the receiving services declare, e.g. allocation-famille")
		fs.StringVar(&in.LegalBasis, "legal-basis", "", "the legal text it rests on (law, section, decree)")
		fs.StringVar(&in.Source, "source", "", "data source, e.g. Fichier des personnes assurées (RAMQ)")
		fs.Var(&recipients, "recipient", "client:<client id> or body:<public body sector> (repeatable)")
		fs.Var(&attributes, "attribute", "registry attribute name, e.g. family_name (repeatable)")
		fs.StringVar(&in.From, "from", "", "start, inclusive: a date (midnight, Québec time) or an RFC 3339 time")
		fs.StringVar(&in.To, "to", "", "end, exclusive: a date (midnight, Québec time) or an RFC 3339 time; until 31 March is --to 2027-04-01")
	case "show", "end", "report":
		fs.StringVar(&refFlag, "ref", "", "reference of the authorisation")
		switch sub {
		case "end":
			fs.StringVar(&at, "at", "", "when releases stop (default now): a date or an RFC 3339 time")
		case "report":
			fs.StringVar(&from, "from", "", "start of the period reported (default: the authorisation's start)")
			fs.StringVar(&to, "to", "", "end of the period, exclusive (default: the authorisation's end)")
			fs.StringVar(&format, "format", "csv", "csv or json")
		}
	case "list":
	default:
		return fmt.Errorf("authorisation: unknown subcommand %q (want create, list, show, end or report)", sub)
	}
	if err := parseCmd(fs, args[1:], getenv); err != nil {
		return err
	}
	cmd := "authorisation " + sub
	now := time.Now().UTC()
	var (
		end time.Time
		a   *legal.Authorisation
	)
	switch sub {
	case "create":
		in.Recipients, in.Attributes = recipients, attributes
		var err error
		if a, err = in.Authorisation(now, knownAttribute); err != nil {
			return fmt.Errorf("%s: %s", cmd, legal.Problem(err))
		}
	case "show", "end", "report":
		if refFlag == "" {
			return fmt.Errorf("%s: --ref is required", cmd)
		}
		if sub == "report" && format != "csv" && format != "json" {
			return fmt.Errorf("%s: --format is csv or json", cmd)
		}
		end = now
		if at != "" {
			var err error
			if end, err = legal.ParseWhen(at); err != nil {
				return fmt.Errorf("%s: --at: %w", cmd, err)
			}
		}
	}
	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "create":
		ev := audit.Event{Actor: cliActor(getenv), Action: admin.ActionAuthorisationCreated, LegalBasis: a.Ref,
			Attributes: a.Attributes, Outcome: audit.Success, Detail: "purpose " + a.Purpose}
		if err := db.CreateAuthorisation(audit.With(ctx, ev), a); err != nil {
			if errors.Is(err, sqin.ErrConflict) {
				return fmt.Errorf("%s: an authorisation %q already exists (sqin authorisation show --ref %q)", cmd, a.Ref, a.Ref)
			}
			return fmt.Errorf("%s: %w", cmd, err)
		}
		return jsonOut(stdout, a.View(now))
	case "list":
		as, err := db.ListAuthorisations(ctx)
		return listOut(stdout, cmd, as, err, func(a *legal.Authorisation) legal.View { return a.View(now) })
	case "report":
		return authorisationReport(ctx, db, refFlag, from, to, format, stdout)
	case "show":
		got, err := db.GetAuthorisation(ctx, refFlag)
		if err != nil {
			return cmdError(cmd, err, noAuthorisation(refFlag))
		}
		return jsonOut(stdout, got.View(now))
	default: // end
		ev := audit.Event{Actor: cliActor(getenv), Action: admin.ActionAuthorisationEnded, LegalBasis: refFlag,
			Outcome: audit.Success, Detail: "ends " + end.UTC().Format(time.RFC3339)}
		if err := db.EndAuthorisation(audit.With(ctx, ev), refFlag, end); err != nil {
			if errors.Is(err, sqin.ErrConflict) {
				return fmt.Errorf("%s: %q has already ended, or its term is before %s", cmd, refFlag, end.In(legal.Zone()).Format(time.RFC3339))
			}
			return cmdError(cmd, err, noAuthorisation(refFlag))
		}
		fmt.Fprintf(stdout, "authorisation %s ends %s; releases under it stop then, without a restart\n",
			refFlag, end.In(legal.Zone()).Format(time.RFC3339))
		return nil
	}
}

// authorisationReport writes the communication report of ref: per
// recipient and attribute, persons and communications, from the audit log.
func authorisationReport(ctx context.Context, db *sqlstore.DB, ref, from, to, format string, w io.Writer) error {
	const cmd = "authorisation report"
	a, err := db.GetAuthorisation(ctx, ref)
	if err != nil {
		return cmdError(cmd, err, noAuthorisation(ref))
	}
	start, end := a.From, a.To
	if from != "" {
		if start, err = legal.ParseWhen(from); err != nil {
			return fmt.Errorf("%s: --from: %w", cmd, err)
		}
	}
	if to != "" {
		if end, err = legal.ParseWhen(to); err != nil {
			return fmt.Errorf("%s: --to: %w", cmd, err)
		}
	}
	if !end.After(start) {
		return fmt.Errorf("%s: the period must have a start before its end", cmd)
	}
	rp := legal.NewReporter(a, start, end)
	size, err := db.AuditSize(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	const chunk = 10000
	for next := uint64(0); next < size; next += chunk {
		rs, err := db.Events(ctx, next, min(next+chunk, size))
		if err != nil {
			return fmt.Errorf("%s: read the audit log: %w", cmd, err)
		}
		for _, r := range rs {
			rp.Add(&r.Event)
		}
	}
	if format == "json" {
		return rp.Report().WriteJSON(w)
	}
	return rp.Report().WriteCSV(w)
}
