package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sqin/sqin/internal/admin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/clientreg"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/oidc"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/web"
	assets "github.com/sqin/sqin/web"
)

var errUsage = errors.New("usage")

// Garbage collector defaults of serve (docs/PERFORMANCE.md, "Garbage
// collector").
const (
	serveGOGC     = 400
	hashingGOGC   = 100       // while a password hash runs (authn.Hasher.PaceGC)
	serveMemLimit = 256 << 20 // plus the argon2id memory of every hashing slot
)

// gcDefaults tunes the garbage collector for serving, unless GOGC or
// GOMEMLIMIT set it. An API request allocates tens of KiB that die with it
// over a live heap of tens of MiB: at GOGC=100 the collector ran every few
// thousand requests and took about a tenth of the server's CPU. GOGC=400
// lets the heap grow to five times the live heap between collections; the
// memory limit bounds that growth where the live heap is large (password
// hashing holds up to GOMAXPROCS argon2id arrays, which a burst of sign-ins
// fills): 256 MiB plus the argon2id memory of every slot, so that the
// collector still has room above a full set of slots. RSS at rest is not
// changed (memory is given back after start-up). While a password hash
// runs the collector paces at hashingGOGC instead: each hash's array dies
// with it, and at 400 the heap grew into fresh pages that the scavenger
// then gave back, a page fault per touched page of every hash. It returns
// whether it set GOGC (the pacing is then serve's to change).
func gcDefaults(getenv func(string) string, argon2KiB uint) bool {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemLimit + int64(runtime.GOMAXPROCS(0))*int64(argon2KiB)<<10)
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGOGC)
		return true
	}
	return false
}

// parseServe loads the serve configuration.
func parseServe(args []string, stderr io.Writer, getenv func(string) string) (*config.Config, error) {
	var cfg config.Config
	fs := flag.NewFlagSet("sqin serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.Bind(fs)
	if err := config.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errUsage
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if cfg.Issuer == "" {
		if !cfg.Demo {
			return nil, errors.New("serve: --issuer (SQIN_ISSUER) is required outside the demo, e.g. https://auth.example.gouv.qc.ca")
		}
		cfg.Issuer = "http://" + cfg.Addr
	}
	if err := defaultDB(&cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func defaultDB(cfg *config.Config) error {
	if cfg.DB != "" {
		return nil
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DB = "sqlite://" + filepath.Join(dir, "sqin.db")
	return nil
}

// masterKey returns the 32-byte master key: from --master-key, from
// --master-key-file, or in the demo from DATA-DIR/master.key (created on
// first start).
func masterKey(cfg *config.Config) ([]byte, error) {
	decode := func(s, from string) ([]byte, error) {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("master key from %s must be 32 bytes in base64 (generate one: head -c 32 /dev/urandom | base64)", from)
		}
		return k, nil
	}
	if cfg.MasterKey != "" {
		return decode(cfg.MasterKey, "SQIN_MASTER_KEY/--master-key")
	}
	file := cfg.MasterKeyFile
	if file == "" {
		if !cfg.Demo {
			return nil, errors.New("no master key: set SQIN_MASTER_KEY or --master-key-file (generate one: head -c 32 /dev/urandom | base64)")
		}
		file = filepath.Join(cfg.DataDir, "master.key")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return nil, err
			}
			raw := make([]byte, 32)
			if _, err := rand.Read(raw); err != nil {
				return nil, err
			}
			k := base64.StdEncoding.EncodeToString(raw)
			if err := os.WriteFile(file, []byte(k+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("write demo master key: %w", err)
			}
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return decode(string(b), file)
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app is the assembled server.
type app struct {
	cfg    *config.Config
	log    *slog.Logger
	db     *sqlstore.DB
	keys   *keys.Manager
	op     *oidc.Provider
	hasher *authn.Hasher
	master []byte
	// auditLog signs tree heads and proves events; batcher commits the
	// events that record no change of their own. close stops the batcher.
	auditLog *audit.Log
	batcher  *audit.Batcher
	// signup serves account creation and proofing; mailer delivers its
	// outbox (nil when account creation is off).
	signup *signup.Handler
	mailer *signup.Worker
	// catalogue is the shared-secret catalogue account creation uses.
	catalogue *proofing.Catalogue
	// proxies are the trusted reverse proxies (--trusted-proxies).
	proxies []netip.Prefix
}

// close releases what newApp started, database last.
func (a *app) close() {
	if a.batcher != nil {
		a.batcher.Close()
	}
	a.db.Close()
}

func openDB(ctx context.Context, url string) (*sqlstore.DB, error) {
	db, err := sqlstore.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	return db, nil
}

func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	master, err := masterKey(cfg)
	if err != nil {
		return nil, err
	}
	proxies, err := web.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	db, err := openDB(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, db: db, master: master, proxies: proxies}
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()
	// The audit log (docs/audit.md): the signing key as sqin audit makes
	// it, pseudonyms under their own key, one batcher per process.
	auditKey, err := loadAuditKey(cfg.AuditKeyFile, master)
	if err != nil {
		return nil, err
	}
	pseudonyms, err := audit.NewPseudonymizer(derive(master, "audit-pseudonym"))
	if err != nil {
		return nil, err
	}
	a.auditLog = audit.NewLog(db, auditKey)
	a.batcher = audit.NewBatcher(db, 1000, 0)
	sealer, err := keys.NewSealer(derive(master, "key-encryption"))
	if err != nil {
		return nil, err
	}
	maxTTL := max(cfg.AccessTTL, cfg.IDTokenTTL)
	if a.keys, err = keys.NewManager(ctx, db, sealer, keys.Config{Keep: maxTTL + time.Minute}); err != nil {
		return nil, err
	}
	params := authn.Argon2Params{Time: uint32(cfg.Argon2Time), MemoryKiB: uint32(cfg.Argon2MemoryKiB),
		Threads: uint8(cfg.Argon2Threads), KeyLen: 32, SaltLen: 16}
	if cfg.Demo && cfg.DemoFastHash {
		params = authn.DemoArgon2
	}
	if a.hasher, err = authn.NewHasher(params); err != nil {
		return nil, err
	}
	cat, err := web.LoadCatalog(assets.FS)
	if err != nil {
		return nil, err
	}
	rd, err := web.NewRenderer(assets.FS, cat, log)
	if err != nil {
		return nil, err
	}
	a.op, err = oidc.New(oidc.Config{
		Issuer: cfg.Issuer, CodeTTL: cfg.CodeTTL, AccessTTL: cfg.AccessTTL, IDTokenTTL: cfg.IDTokenTTL,
		SessionTTL: cfg.SessionTTL, OfflineTTL: cfg.OfflineTTL, LoginWindow: cfg.LoginWindow,
		LoginPerAccount: cfg.LoginPerAccount, LoginPerAddress: cfg.LoginPerAddress,
		SubjectKey: derive(master, "pairwise-subject"), DPoPNonce: cfg.DPoPNonce, RequirePAR: cfg.RequirePAR,
		Audit: &oidc.Auditor{Pseudonyms: pseudonyms, Batcher: a.batcher}, AuditLog: a.auditLog,
	}, db, a.keys, a.hasher, rd, log)
	if err != nil {
		return nil, err
	}
	if err := a.setupSignup(rd, pseudonyms); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// handler is the server's whole HTTP surface.
func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	a.op.Routes(mux)
	if a.signup != nil {
		a.signup.Routes(mux)
	}
	// Client registration by integrators (RFC 7591/7592), /register.
	clientreg.New(clientreg.Config{Issuer: a.cfg.Issuer}, a.db, a.log).Routes(mux)
	// Administration API (/admin/v1): legal authorisations.
	admin.New(a.db, knownAttribute, a.log).Routes(mux)
	mux.Handle("GET /static/", web.Static(assets.FS))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.db.Ping(ctx); err != nil {
			a.log.Error("readyz: database unreachable", "err", err)
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		if !a.keys.Ready() {
			http.Error(w, "signing keys not loaded", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", metricsHandler(a.db))
	return web.TrustProxies(web.ObserveWith(mux, a.log, countStatus), a.proxies)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parseServe(args, stderr, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	paceGC := gcDefaults(getenv, cfg.Argon2MemoryKiB)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	if paceGC {
		a.hasher.PaceGC(hashingGOGC, serveGOGC)
	}
	// After the HTTP servers have finished (below): the batcher commits
	// what it holds, then the database closes.
	defer a.close()

	// Demo data is in place before the server answers /readyz.
	var signupPeople []demoIdentity
	if cfg.Demo {
		if err := a.seedDemo(ctx); err != nil {
			return err
		}
		if signupPeople, err = a.seedSignupDemo(ctx, 3); err != nil {
			return err
		}
	}
	// Start-up hashed passwords (argon2id's memory) and generated keys:
	// give that memory back before idling.
	debug.FreeOSMemory()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := newServer(a.handler())
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()

	if cfg.Demo {
		rpSrv, err := a.startDemo(ctx, stdout, errc)
		if err != nil {
			srv.Close()
			return err
		}
		if rpSrv != nil {
			servers = append(servers, rpSrv)
		}
		a.printSignupDemo(stdout, signupPeople)
	}
	go a.janitor(ctx)
	go a.runMailer(ctx)
	// Signed tree heads (and retention) stop with ctx; the heads job never
	// holds a transaction across a tick, so stopping it needs no wait.
	go a.auditJobs(ctx)
	go a.sequenceAudit(ctx)
	// Back-channel logouts queued by any instance are sent by every one.
	// On the way out (deferred, so before the database closes) the worker
	// stops claiming and finishes the sends in flight.
	logoutCtx, stopLogouts := context.WithCancel(ctx)
	logoutsDone := make(chan struct{})
	go func() {
		defer close(logoutsDone)
		a.op.RunLogoutDelivery(logoutCtx)
	}()
	defer func() {
		stopLogouts()
		<-logoutsDone
	}()
	log.Info("sqin started", "addr", cfg.Addr, "issuer", cfg.Issuer, "db", redactDB(cfg.DB), "version", version)

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			log.Error("shutdown", "err", err)
		}
	}
	log.Info("stopped")
	return nil
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// janitor removes expired rows periodically.
func (a *app) janitor(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.db.Prune(ctx, time.Now()); err != nil && ctx.Err() == nil {
				a.log.Warn("janitor: prune", "err", err)
			}
		}
	}
}

// auditJobs signs a tree head every --audit-head-interval (at start too)
// and, with --audit-retention, redacts the personal fields of old events
// every hour. Every instance may run them: heads agree (a head already
// covering every event is not signed again) and redaction is idempotent.
func (a *app) auditJobs(ctx context.Context) {
	if a.cfg.AuditHeadInterval <= 0 {
		return
	}
	heads := time.NewTicker(a.cfg.AuditHeadInterval)
	defer heads.Stop()
	const retentionEvery = time.Hour
	lastRedact := time.Time{}
	for {
		a.signHead(ctx)
		if a.cfg.AuditRetention > 0 && time.Since(lastRedact) >= retentionEvery {
			lastRedact = time.Now()
			a.redactOld(ctx, lastRedact.Add(-a.cfg.AuditRetention))
		}
		select {
		case <-ctx.Done():
			return
		case <-heads.C:
		}
	}
}

// sequenceAudit moves into the log, at start and every few seconds, the
// events that an instance stopped between its commit and its sequencing
// round left queued (PostgreSQL; a no-op on SQLite). They are safe in the
// queue meanwhile, and any audited write sequences them too.
func (a *app) sequenceAudit(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if n, err := a.db.SequenceAudit(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("audit: sequence queued events", "err", err)
		} else if n > 0 {
			a.log.Info("audit: sequenced events left queued", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// signHead signs a tree head over every event; a log that no longer
// extends its last signed head is an alert for the operator.
func (a *app) signHead(ctx context.Context) {
	th, err := a.auditLog.SignTreeHead(ctx)
	switch {
	case errors.Is(err, audit.ErrInconsistent):
		a.log.Error("ALERT: the audit log does not extend its last signed tree head; run sqin audit verify", "err", err)
	case err != nil && ctx.Err() == nil:
		a.log.Warn("audit: sign tree head", "err", err)
	case err == nil:
		a.log.Debug("audit: tree head", "tree_size", th.TreeSize)
	}
}

// redactOld applies --audit-retention, in batches, each with its
// audit.redacted event (as sqin audit redact does).
func (a *app) redactOld(ctx context.Context, before time.Time) {
	var total int64
	for ctx.Err() == nil {
		ev := audit.Event{Actor: audit.Actor{Kind: audit.ActorSystem, ID: "sqin serve"}, Action: "audit.redacted",
			Outcome: audit.Success, Detail: "personal fields of events before " + before.UTC().Format(time.RFC3339) + " (--audit-retention)"}
		n, err := a.db.RedactEvents(audit.With(ctx, ev), before, 10000)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("audit: retention", "err", err)
			}
			return
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total > 0 {
		a.log.Info("audit: retention applied", "redacted", total, "before", before.UTC().Format(time.RFC3339))
	}
}

// redactDB hides a password in a database URL.
func redactDB(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.LastIndex(u, "@"); at > i {
			if colon := strings.Index(u[i+3:at], ":"); colon >= 0 {
				return u[:i+3+colon] + ":***" + u[at:]
			}
		}
	}
	return u
}

// derive returns a 32-byte subkey of the master key for one purpose, so
// that one secret from the operator yields independent keys.
func derive(master []byte, purpose string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("sqin/" + purpose))
	return m.Sum(nil)
}
