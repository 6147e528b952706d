// Command sqin is SQIN's one binary: the OpenID Provider server and the
// operator's commands.
//
//	sqin serve [--demo] [flags]       run the server
//	sqin migrate --db URL             apply database migrations
//	sqin client create|list|show|delete|import-subjects    manage relying parties
//	sqin registration token create|list|revoke              initial access tokens (RFC 7591)
//	sqin keys rotate --db URL         rotate the token signing keys
//	sqin audit verify|export|head|prove|key|redact   the audit log
//	sqin version                      print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Main runs one subcommand and returns the process exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr, getenv)
	case "migrate":
		err = migrate(ctx, args[1:], stdout, getenv)
	case "client":
		err = client(ctx, args[1:], stdout, getenv)
	case "keys":
		err = keysCmd(ctx, args[1:], stdout, getenv)
	case "registration":
		err = registration(ctx, args[1:], stdout, getenv)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, getenv)
	case "registry":
		err = registryCmd(ctx, args[1:], stdout, stderr, getenv)
	case "authorisation":
		err = authorisationCmd(ctx, args[1:], stdout, getenv)
	case "admin":
		err = adminCmd(ctx, args[1:], stdout, getenv)
	case "letters":
		err = lettersCmd(ctx, args[1:], stdout, stderr, getenv)
	case "proofing":
		err = proofingCmd(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "sqin", version)
	case "help", "--help", "-h", "-help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "sqin: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintln(stderr, "sqin:", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `sqin — Service québécois d'identité numérique

Usage:
  sqin serve [--demo] [flags]      run the OpenID Provider (sqin serve --help)
  sqin migrate --db URL            apply database migrations
  sqin client create|list|show|delete   manage relying parties (sqin client create --help)
  sqin client import-subjects --db URL --sector S --file F.csv
                                   keep the subs a public body's legacy service used
  sqin registration token create|list|revoke
                                   initial access tokens for POST /register (RFC 7591)
  sqin keys rotate --db URL        rotate the token signing keys
  sqin audit verify|export|head|prove|key|redact
                                   the tamper-evident audit log (docs/audit.md)
  sqin registry generate|import|digest
                                   registry deliveries (docs/formats/registry-import.md)
  sqin authorisation create|list|show|end|report
                                   legal authorisations to release registry attributes
  sqin admin token create|list|revoke
                                   bearer tokens of the administration API (/admin/v1)
  sqin letters export --out DIR    print the queued proofing codes by mail: one PDF
                                   per letter and a manifest, for the print shop
  sqin proofing generate|import    shared secrets delivered by their holder, stored as
                                   keyed hashes (docs/formats/proofing-secrets.md)
  sqin version                     print the version

Every serve flag can also be set as SQIN_<FLAG> in the environment or in a
JSON file given with --config.
`)
}
