package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/sqlstore"
)

// auditCmd runs sqin audit verify|export|head|prove|key|redact.
func auditCmd(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	const want = "verify, export, head, prove, key or redact"
	if len(args) == 0 {
		return errors.New("audit: want " + want)
	}
	run := map[string]func(context.Context, *auditFlags, io.Writer) error{
		"verify": auditVerify, "export": auditExport, "head": auditHead, "prove": auditProve,
		"key": auditKey, "redact": auditRedact,
	}[args[0]]
	if run == nil {
		return fmt.Errorf("audit: unknown subcommand %q (want %s)", args[0], want)
	}
	f := newAuditFlags(args[0])
	if err := parseCmd(f.fs, args[1:], getenv); err != nil {
		return err
	}
	return run(ctx, f, stdout)
}

// auditFlags are the flags of every audit subcommand; each uses some.
type auditFlags struct {
	fs       *flag.FlagSet
	cfg      config.Config
	keyFile  string // audit key seed, instead of the one derived from the master key
	pubFile  string // public key to verify with (an auditor holds no secret)
	headFile string
	sign     bool
	jsonOut  bool
	from, to uint64
	id       uint64
	before   string
	batch    int
}

func newAuditFlags(sub string) *auditFlags {
	f := &auditFlags{fs: flag.NewFlagSet("sqin audit "+sub, flag.ContinueOnError)}
	fs := f.fs
	dbFlags(fs, &f.cfg)
	keys := func() {
		fs.StringVar(&f.cfg.MasterKeyFile, "master-key-file", "", "file holding the base64 master key (the audit key is derived from it)")
		fs.StringVar(&f.cfg.MasterKey, "master-key", "", "base64 master key (prefer SQIN_MASTER_KEY)")
		fs.BoolVar(&f.cfg.Demo, "demo", false, "use the demo master key in --data-dir")
		fs.StringVar(&f.keyFile, "audit-key-file", "", "file holding the base64 32-byte audit key seed, when it is not derived from the master key")
	}
	switch sub {
	case "verify":
		keys()
		fs.StringVar(&f.pubFile, "public-key", "", "PEM file of the audit public key (sqin audit key), instead of a secret key")
		fs.StringVar(&f.headFile, "from-tree-head", "", "JSON file of a signed tree head kept outside the database (sqin audit head): the log must extend it")
		fs.BoolVar(&f.jsonOut, "json", false, "print the report as JSON")
	case "export":
		fs.Uint64Var(&f.from, "from", 0, "first event")
		fs.Uint64Var(&f.to, "to", 0, "stop before this event (default: the end of the log)")
	case "head":
		keys()
		fs.BoolVar(&f.sign, "sign", false, "sign a new head covering every event first")
	case "prove":
		fs.Uint64Var(&f.id, "id", 0, "event number")
	case "key":
		keys()
	case "redact":
		fs.StringVar(&f.before, "before", "", "redact events older than this: a date (2025-01-31), a time (RFC 3339) or an age (8760h)")
		fs.IntVar(&f.batch, "batch", 10000, "events per transaction")
	}
	return f
}

func (f *auditFlags) open(ctx context.Context) (*sqlstore.DB, error) { return openCmdDB(ctx, &f.cfg) }

// signer returns the audit key: from --audit-key-file, or derived from the
// master key for the purpose "audit-signing".
func (f *auditFlags) signer() (ed25519.PrivateKey, error) {
	if f.keyFile != "" {
		return loadAuditKey(f.keyFile, nil)
	}
	if err := defaultDB(&f.cfg); err != nil {
		return nil, err
	}
	master, err := masterKey(&f.cfg)
	if err != nil {
		return nil, fmt.Errorf("%w (or give the audit key with --audit-key-file)", err)
	}
	return loadAuditKey("", master)
}

// loadAuditKey returns the audit signing key: from the base64 seed in file
// when file is not empty, or else derived from the master key for the
// purpose "audit-signing" (sqin serve and sqin audit agree on it).
func loadAuditKey(file string, master []byte) (ed25519.PrivateKey, error) {
	if file == "" {
		return audit.NewKey(derive(master, "audit-signing"))
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit key in %s must be 32 bytes in base64", file)
	}
	return audit.NewKey(seed)
}

// publicKey returns the key to verify tree heads with.
func (f *auditFlags) publicKey() (crypto.PublicKey, error) {
	if f.pubFile == "" {
		k, err := f.signer()
		if err != nil {
			return nil, fmt.Errorf("%w; an auditor without secrets gives --public-key", err)
		}
		return k.Public(), nil
	}
	b, err := os.ReadFile(f.pubFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%s: want a PEM PUBLIC KEY block", f.pubFile)
	}
	return x509.ParsePKIXPublicKey(blk.Bytes)
}

// auditVerify recomputes the log and reports every finding; any finding
// is an error (exit status 1).
func auditVerify(ctx context.Context, f *auditFlags, stdout io.Writer) error {
	pub, err := f.publicKey()
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	opt := audit.VerifyOptions{PublicKeys: []crypto.PublicKey{pub}}
	if f.headFile != "" {
		b, err := os.ReadFile(f.headFile)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		th, err := audit.ParseTreeHead(b)
		if err != nil {
			return fmt.Errorf("audit verify: %s: %w", f.headFile, err)
		}
		opt.External = append(opt.External, th)
	}
	db, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	rep, err := audit.Verify(ctx, db, opt)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if f.jsonOut {
		if err := jsonOut(stdout, rep); err != nil {
			return err
		}
	} else {
		root := "none (events missing)"
		if rep.Root != nil {
			b, _ := rep.Root.MarshalText()
			root = string(b) // base64, as in tree heads
		}
		fmt.Fprintf(stdout, "audit log: %d events (%d read, %d redacted), root %s\n", rep.Size, rep.Events, rep.Redacted, root)
		fmt.Fprintf(stdout, "tree heads: %d checked against the events, signatures checked with key %s\n", rep.TreeHeads, keyID(pub))
		for _, fd := range rep.Findings {
			fmt.Fprintln(stdout, "FINDING", fd)
		}
		if rep.MoreFindings > 0 {
			fmt.Fprintf(stdout, "FINDING … and %d more\n", rep.MoreFindings)
		}
		if rep.OK() {
			fmt.Fprintf(stdout, "OK (%s)\n", time.Since(start).Round(time.Millisecond))
		}
	}
	if !rep.OK() {
		return fmt.Errorf("audit verify: %d findings", len(rep.Findings)+rep.MoreFindings)
	}
	return nil
}

func keyID(pub crypto.PublicKey) string {
	id, err := audit.KeyID(pub)
	if err != nil {
		return "?"
	}
	return id
}

// auditExport writes events as JSON lines, for a SIEM or an auditor.
func auditExport(ctx context.Context, f *auditFlags, stdout io.Writer) error {
	db, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	end, err := db.AuditSize(ctx)
	if err != nil {
		return err
	}
	if f.to != 0 {
		end = min(end, f.to)
	}
	enc := json.NewEncoder(stdout)
	const chunk = 10000
	for from := f.from; from < end; from += chunk {
		rs, err := db.Events(ctx, from, min(from+chunk, end))
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// auditHead prints the latest signed tree head, after signing a new one
// with --sign.
func auditHead(ctx context.Context, f *auditFlags, stdout io.Writer) error {
	db, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	var th *audit.TreeHead
	if f.sign {
		key, err := f.signer()
		if err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
		if th, err = audit.NewLog(db, key).SignTreeHead(ctx); err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
	} else if th, err = db.LatestTreeHead(ctx); errors.Is(err, sqin.ErrNotFound) {
		return errors.New("audit head: no signed tree head yet (sign one: sqin audit head --sign)")
	} else if err != nil {
		return err
	}
	return jsonOut(stdout, th)
}

// auditProve prints an event with its inclusion proof in the latest head.
func auditProve(ctx context.Context, f *auditFlags, stdout io.Writer) error {
	db, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := audit.NewLog(db, nil).Prove(ctx, f.id)
	if errors.Is(err, sqin.ErrNotFound) {
		return fmt.Errorf("audit prove: event %d is not covered by a signed tree head (sqin audit head --sign)", f.id)
	}
	if err != nil {
		return err
	}
	return jsonOut(stdout, p)
}

// auditKey prints the audit public key, to publish with the tree heads.
func auditKey(_ context.Context, f *auditFlags, stdout io.Writer) error {
	k, err := f.signer()
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# sqin audit key %s (Ed25519)\n", keyID(k.Public()))
	return pem.Encode(stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// auditRedact applies retention: it drops the personal fields of old
// events, keeping what verification needs, and logs that it did so in the
// same transactions.
func auditRedact(ctx context.Context, f *auditFlags, stdout io.Writer) error {
	start := time.Now()
	before, err := parseBefore(f.before, start)
	if err != nil {
		return fmt.Errorf("audit redact: --before: %w", err)
	}
	// Never the events this run appends (stamped from now on), or it
	// would chase its own tail.
	if before.After(start) {
		before = start
	}
	db, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	var total int64
	for {
		ev := audit.Event{Actor: audit.Actor{Kind: audit.ActorSystem, ID: "sqin audit redact"}, Action: "audit.redacted",
			Outcome: audit.Success, Detail: "personal fields of events before " + before.Format(time.RFC3339)}
		n, err := db.RedactEvents(audit.With(ctx, ev), before, max(f.batch, 1))
		if err != nil {
			return fmt.Errorf("audit redact: %w", err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	fmt.Fprintf(stdout, "redacted %d events older than %s\n", total, before.Format(time.RFC3339))
	return nil
}

func parseBefore(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("required")
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an age, a date nor an RFC 3339 time", s)
}

// cliActor is the operator running a command: an administrator known by
// the account they run it under.
func cliActor(getenv func(string) string) audit.Actor {
	u := getenv("USER")
	if u == "" {
		u = "unknown"
	}
	return audit.Actor{Kind: audit.ActorAdmin, ID: "cli:" + u}
}

// keysRotated is the event that a key rotation from the command line
// commits with the new key.
func keysRotated(getenv func(string) string, alg string) audit.Event {
	return audit.Event{Actor: cliActor(getenv), Action: audit.KeysRotated, Outcome: audit.Success,
		Detail: "signing key rotated: " + alg + " (sqin keys rotate)"}
}
