// Package config loads SQIN's one typed configuration from, in increasing
// precedence: defaults, a JSON file (--config), SQIN_* environment
// variables and command-line flags. Each setting has one name: the flag
// --issuer is SQIN_ISSUER in the environment and "issuer" in the file.
package config

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Config is every setting of the server.
type Config struct {
	Addr       string
	Issuer     string
	DB         string
	DataDir    string
	Demo       bool
	DemoUsers  int
	DemoRPAddr string
	// DemoFastHash lowers the argon2id cost in the demo (default on).
	DemoFastHash bool
	// MasterKeyFile holds the 32-byte master key (base64) that encrypts
	// signing keys at rest and derives the server's other secrets.
	MasterKeyFile string
	MasterKey     string // base64; prefer the file or SQIN_MASTER_KEY
	LogLevel      string
	LogFormat     string

	Argon2Time      uint
	Argon2MemoryKiB uint
	Argon2Threads   uint

	CodeTTL    time.Duration
	AccessTTL  time.Duration
	IDTokenTTL time.Duration
	SessionTTL time.Duration
	OfflineTTL time.Duration

	LoginPerAccount int
	LoginPerAddress int
	LoginWindow     time.Duration

	ShutdownTimeout time.Duration

	DPoPNonce  bool
	RequirePAR bool

	// AuditKeyFile holds the audit signing key's seed (base64, 32 bytes)
	// when it is not derived from the master key.
	AuditKeyFile string
	// AuditHeadInterval is how often a signed tree head is made.
	AuditHeadInterval time.Duration
	// TrustedProxies lists the reverse proxies (addresses or CIDR
	// prefixes) whose X-Forwarded-For and X-Request-Id are believed.
	TrustedProxies string
	// AuditRetention is the age after which events lose their personal
	// fields (0: kept for ever).
	AuditRetention time.Duration

	// SMTPAddr is the mail relay (host:port) of the outbox sender; empty
	// outside the demo disables account creation, in the demo mails go to
	// DATA-DIR/mail/*.eml.
	SMTPAddr string
	MailFrom string
	// ProofingCatalogue is a JSON file of shared-secret types and the
	// ladder (internal/proofing); empty means the built-in one.
	ProofingCatalogue string
	// MailCodeTTL is the life of a code sent by letter (sqin serve shows
	// it, sqin letters export applies it).
	MailCodeTTL time.Duration
	// LettersPerDay caps letter requests of all citizens together in 24
	// hours (signup.Config.LettersPerDay).
	LettersPerDay int
}

// Bind registers the serve settings on fs with their defaults.
func (c *Config) Bind(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address of the provider, portal and admin")
	fs.StringVar(&c.Issuer, "issuer", "", "issuer URL (default http://ADDR in demo; required otherwise)")
	fs.StringVar(&c.DB, "db", "", "database URL: sqlite:///path/file.db or postgres://… (default sqlite in --data-dir)")
	fs.StringVar(&c.DataDir, "data-dir", "sqin-data", "directory for the embedded database and generated secrets")
	fs.BoolVar(&c.Demo, "demo", false, "seed synthetic registry data, demo accounts and the demo relying party")
	fs.IntVar(&c.DemoUsers, "demo-users", 5, "number of demo accounts citoyenN@demo.sqin.test")
	fs.StringVar(&c.DemoRPAddr, "demo-rp-addr", "127.0.0.1:8081", "listen address of the demo relying party (empty: disabled)")
	fs.BoolVar(&c.DemoFastHash, "demo-fast-hash", true, "in the demo, use a cheap argon2id cost (--demo-fast-hash=false keeps the configured one)")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", "", "file holding the base64 32-byte master key (default DATA-DIR/master.key in demo)")
	fs.StringVar(&c.MasterKey, "master-key", "", "base64 32-byte master key (prefer SQIN_MASTER_KEY or --master-key-file)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.UintVar(&c.Argon2Time, "argon2-time", 3, "argon2id iterations")
	fs.UintVar(&c.Argon2MemoryKiB, "argon2-memory-kib", 64*1024, "argon2id memory in KiB")
	fs.UintVar(&c.Argon2Threads, "argon2-threads", 2, "argon2id parallelism")
	fs.DurationVar(&c.CodeTTL, "code-ttl", time.Minute, "authorization code lifetime")
	fs.DurationVar(&c.AccessTTL, "access-token-ttl", 5*time.Minute, "access token lifetime")
	fs.DurationVar(&c.IDTokenTTL, "id-token-ttl", 5*time.Minute, "ID token lifetime")
	fs.DurationVar(&c.SessionTTL, "session-ttl", 8*time.Hour, "browser session (and online refresh token) lifetime")
	fs.DurationVar(&c.OfflineTTL, "offline-ttl", 30*24*time.Hour, "refresh token lifetime with offline_access")
	fs.IntVar(&c.LoginPerAccount, "login-limit-account", 5, "failed sign-ins per account per window")
	fs.IntVar(&c.LoginPerAddress, "login-limit-address", 50, "failed sign-ins per network address per window")
	fs.DurationVar(&c.LoginWindow, "login-window", 15*time.Minute, "sliding window of the sign-in limits")
	fs.BoolVar(&c.DPoPNonce, "dpop-nonce", true, "require server-provided nonces in DPoP proofs (RFC 9449 8, 9)")
	fs.BoolVar(&c.RequirePAR, "require-par", false, "every client must use pushed authorization requests (RFC 9126)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "time in-flight requests get to finish on SIGTERM")
	fs.StringVar(&c.AuditKeyFile, "audit-key-file", "", "file holding the base64 32-byte audit signing key seed (default: derived from the master key)")
	fs.DurationVar(&c.AuditHeadInterval, "audit-head-interval", time.Minute, "how often a signed tree head of the audit log is made")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", "", "reverse proxies (IP addresses or CIDR prefixes, comma-separated) whose X-Forwarded-For and X-Request-Id are believed; none by default")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", "", "mail relay host:port for account-creation mails (demo default: files in DATA-DIR/mail)")
	fs.StringVar(&c.MailFrom, "mail-from", "SQIN <no-reply@sqin.invalid>", "sender address of the mails")
	fs.StringVar(&c.ProofingCatalogue, "proofing-catalogue", "", "JSON file of shared-secret types and proofing ladder (default: built-in)")
	fs.DurationVar(&c.MailCodeTTL, "mail-code-ttl", 30*24*time.Hour, "life of a proofing code sent by letter (sqin letters export prints codes valid this long)")
	fs.IntVar(&c.LettersPerDay, "letters-per-day", 2000, "letter requests allowed per 24 hours for all citizens together; reaching it logs an error with alert=letters_daily_cap")
	fs.DurationVar(&c.AuditRetention, "audit-retention", 0, "age after which audit events lose their personal fields, e.g. 43800h (0: never)")
}

// EnvName is the environment variable of a setting.
func EnvName(flagName string) string {
	return "SQIN_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse applies file, environment and args to fs, in that order of
// precedence (args win). getenv is os.Getenv outside tests.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	file := getenv("SQIN_CONFIG")
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "config" {
			if hasVal {
				file = val
			} else if i+1 < len(args) {
				file = args[i+1]
			}
		}
	}
	fs.String("config", file, "JSON configuration file (keys are flag names)")
	if file != "" {
		if err := applyFile(fs, file); err != nil {
			return err
		}
	}
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(EnvName(f.Name)); v != "" && f.Name != "config" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", EnvName(f.Name), err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return fs.Parse(args)
}

func applyFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if fs.Lookup(k) == nil || k == "config" {
			return fmt.Errorf("config: %s: unknown setting %q", path, k)
		}
		var s string
		switch v := m[k].(type) {
		case string:
			s = v
		case bool, float64:
			s = fmt.Sprint(v)
		default:
			return fmt.Errorf("config: %s: setting %q must be a string, number or boolean", path, k)
		}
		if err := fs.Set(k, s); err != nil {
			return fmt.Errorf("config: %s: %s: %w", path, k, err)
		}
	}
	return nil
}
