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
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/clientreg"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/oidc"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/web"
	assets "github.com/sqin/sqin/web"
)

var errUsage = errors.New("usage")

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
	db, err := openDB(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, db: db, master: master}
	ok := false
	defer func() {
		if !ok {
			db.Close()
		}
	}()
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
	}, db, a.keys, a.hasher, rd, log)
	if err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// handler is the server's whole HTTP surface.
func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	a.op.Routes(mux)
	// Client registration by integrators (RFC 7591/7592), /register.
	clientreg.New(clientreg.Config{Issuer: a.cfg.Issuer}, a.db, a.log).Routes(mux)
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
	mux.Handle("GET /metrics", metricsHandler())
	return web.ObserveWith(mux, a.log, countStatus)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parseServe(args, stderr, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.db.Close()

	// Demo data is in place before the server answers /readyz.
	if cfg.Demo {
		if err := a.seedDemo(ctx); err != nil {
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
	}
	go a.janitor(ctx)
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
