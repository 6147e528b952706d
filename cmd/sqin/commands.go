package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/clientreg"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/oidc"
	"github.com/sqin/sqin/internal/sqlstore"
)

// dbFlags registers --db and --data-dir on fs.
func dbFlags(fs *flag.FlagSet, cfg *config.Config) {
	fs.StringVar(&cfg.DB, "db", "", "database URL (default sqlite in --data-dir)")
	fs.StringVar(&cfg.DataDir, "data-dir", "sqin-data", "directory of the embedded database")
}

func parseCmd(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := config.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsage
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// openCmdDB opens (and migrates) the database a command names.
func openCmdDB(ctx context.Context, cfg *config.Config) (*sqlstore.DB, error) {
	if err := defaultDB(cfg); err != nil {
		return nil, err
	}
	return openDB(ctx, cfg.DB)
}

func migrate(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	var cfg config.Config
	fs := flag.NewFlagSet("sqin migrate", flag.ContinueOnError)
	dbFlags(fs, &cfg)
	if err := parseCmd(fs, args, getenv); err != nil {
		return err
	}
	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(stdout, "migrations applied:", redactDB(cfg.DB))
	return nil
}

// listFlag collects a repeatable, comma-separable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func jsonOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// adminEvent is the event of an administrator's change to client c at the
// command line (cmd names the command).
func adminEvent(getenv func(string) string, action string, c *sqin.Client, cmd string) audit.Event {
	return audit.Event{Actor: cliActor(getenv), Action: action, ClientID: c.ID, PublicBody: c.SectorID(),
		Outcome: audit.Success, Detail: cmd}
}

// client runs sqin client create|list|show|delete|import-subjects.
func client(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New("client: want create, list, show, delete or import-subjects")
	}
	switch args[0] {
	case "create":
		return clientCreate(ctx, args[1:], stdout, getenv)
	case "list", "show", "delete":
		return clientOther(ctx, args[0], args[1:], stdout, getenv)
	case "import-subjects":
		return importSubjects(ctx, args[1:], stdout, getenv)
	}
	return fmt.Errorf("client: unknown subcommand %q (want create, list, show, delete or import-subjects)", args[0])
}

// flagOf names the client create flag that sets each metadata member, so
// that the validator's errors point at what the operator typed.
var flagOf = map[string]string{
	"client_id": "--id", "client_secret": "--secret", "client_name": "--name", "redirect_uris": "--redirect-uri",
	"post_logout_redirect_uris": "--post-logout-redirect-uri", "grant_types": "--grant-types", "scope": "--scopes",
	"claims": "--claims", "token_endpoint_auth_method": "--auth", "jwks": "--jwks-file", "jwks_uri": "--jwks-uri",
	"id_token_signed_response_alg": "--signing-alg", "require_pushed_authorization_requests": "--require-par",
	"dpop_bound_access_tokens": "--require-dpop", "backchannel_logout_uri": "--backchannel-logout-uri",
	"frontchannel_logout_uri": "--frontchannel-logout-uri", "subject_type": "--subject-type",
	"sector_identifier": "--sector", "minimum_acr": "--min-loa", "profile": "--profile",
}

// metadataError words a validation error for the command line.
func metadataError(cmd string, err error) error {
	var e *clientreg.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if f := flagOf[e.Field]; f != "" {
		return fmt.Errorf("%s: %s: %s (%s)", cmd, f, e.Description, e.Code)
	}
	return fmt.Errorf("%s: %s (%s)", cmd, e.Description, e.Code)
}

// clientCreate builds RFC 7591 metadata from the flags and registers it
// after the same validation as the registration API.
func clientCreate(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	const cmd = "client create"
	var cfg config.Config
	fs := flag.NewFlagSet("sqin client create", flag.ContinueOnError)
	dbFlags(fs, &cfg)
	var (
		m                             clientreg.Metadata
		jwksFile                      string
		minLoA                        int
		requirePAR, requireDPoP       bool
		redirects, postLogout, claims listFlag
		grants                        = listFlag{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken}
		scopes                        = listFlag{"openid", "profile", "email"}
	)
	fs.StringVar(&m.ClientID, "id", "", "client identifier: up to 128 characters among A-Z a-z 0-9 . _ ~ -")
	fs.StringVar(&m.ClientSecret, "secret", "", "client secret (at least 12 characters; generated and printed when absent)")
	fs.StringVar(&m.TokenEndpointAuthMethod, "auth", "", "token endpoint authentication: client_secret_basic (default), client_secret_post, none, private_key_jwt (default with --profile fapi2)")
	fs.StringVar(&jwksFile, "jwks-file", "", "public keys of the client (private_key_jwt, signed requests), JWKS JSON")
	fs.StringVar(&m.JWKSURI, "jwks-uri", "", "https URL where the provider fetches the client's public keys (instead of --jwks-file)")
	fs.StringVar(&m.SectorIdentifier, "sector", "", "public body whose clients share one pairwise sub (default: the client itself)")
	fs.StringVar(&m.ClientName, "name", "", "name shown to citizens (default: the id)")
	fs.StringVar(&m.IDTokenSignedAlg, "signing-alg", "", "ID token signing algorithm: ES256 (default), RS256 or PS256")
	fs.IntVar(&minLoA, "min-loa", 1, "minimum level of assurance: 1, 2 or 3")
	fs.Var(&redirects, "redirect-uri", "redirect URI, exact (repeatable)")
	fs.Var(&postLogout, "post-logout-redirect-uri", "post-logout redirect URI (repeatable)")
	fs.Func("grant-types", "grant types, comma-separated (default authorization_code,refresh_token)", func(s string) error {
		grants = listFlag{}
		return grants.Set(s)
	})
	fs.Func("scopes", "scopes the client may request (default openid,profile,email)", func(s string) error {
		scopes = nil
		return scopes.Set(s)
	})
	fs.Var(&claims, "claims", "restrict the claims the client may receive (default: those of its scopes)")
	fs.BoolVar(&requirePAR, "require-par", false, "authorization requests only through PAR (RFC 9126)")
	fs.BoolVar(&requireDPoP, "require-dpop", false, "tokens only bound to a DPoP key (RFC 9449)")
	fs.StringVar(&m.Profile, "profile", "", "security profile: fapi2 (FAPI 2.0: private_key_jwt, PAR, DPoP, PS256 or ES256; nothing weaker accepted)")
	fs.StringVar(&m.Purpose, "purpose", "", "purpose code the service declares, e.g. allocation-famille: registry attributes reach it under a legal authorisation for that purpose (sqin authorisation)")
	fs.StringVar(&m.SubjectType, "subject-type", "", "pairwise (default: a different sub per public body) or public (the same sub everywhere: only when the law allows linking)")
	fs.StringVar(&m.BackchannelLogoutURI, "backchannel-logout-uri", "", "URL that receives logout tokens (Back-Channel Logout 1.0)")
	fs.StringVar(&m.FrontchannelLogoutURI, "frontchannel-logout-uri", "", "URL loaded in a frame at logout (Front-Channel Logout 1.0), on the origin of a redirect URI")
	if err := parseCmd(fs, args, getenv); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	m.RedirectURIs, m.PostLogoutRedirectURIs, m.GrantTypes, m.Claims = redirects, postLogout, grants, claims
	m.Scope = strings.Join(scopes, " ")
	if set["min-loa"] {
		m.MinimumACR = sqin.LoA(minLoA).ACR()
	}
	if set["require-par"] {
		m.RequirePAR = &requirePAR
	}
	if set["require-dpop"] {
		m.DPoPBound = &requireDPoP
	}
	if jwksFile != "" {
		b, err := os.ReadFile(jwksFile)
		if err != nil {
			return fmt.Errorf("%s: --jwks-file: %w", cmd, err)
		}
		m.JWKS = b
	}
	// The operator may grant a public subject: asking for it is enough.
	c, err := clientreg.Validate(&m, clientreg.Options{AllowPublicSubject: true})
	if err != nil {
		return metadataError(cmd, err)
	}
	generated := ""
	if c.AuthMethod == sqin.AuthSecretBasic || c.AuthMethod == sqin.AuthSecretPost {
		secret := m.ClientSecret
		if secret == "" {
			secret = keys.Random(32)
			generated = secret
		}
		c.SecretHash = oidc.HashSecret(secret)
	}
	c.CreatedAt = time.Now().UTC()

	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	// The client and its event commit together.
	created := audit.With(ctx, adminEvent(getenv, audit.ClientCreated, c, "sqin client create"))
	if err := db.CreateClient(created, c); err != nil {
		if errors.Is(err, sqin.ErrConflict) {
			return fmt.Errorf("%s: a client with id %q already exists", cmd, c.ID)
		}
		return fmt.Errorf("%s: %w", cmd, err)
	}
	out := clientreg.FromClient(c)
	if generated != "" {
		never := int64(0)
		out.ClientSecret, out.ClientSecretExpiresAt = generated, &never
	}
	return jsonOut(stdout, out)
}

// clientOther runs client list, show and delete.
func clientOther(ctx context.Context, sub string, args []string, stdout io.Writer, getenv func(string) string) error {
	var cfg config.Config
	fs := flag.NewFlagSet("sqin client "+sub, flag.ContinueOnError)
	dbFlags(fs, &cfg)
	var id string
	if sub != "list" {
		fs.StringVar(&id, "id", "", "client identifier")
	}
	if err := parseCmd(fs, args, getenv); err != nil {
		return err
	}
	if sub != "list" && id == "" {
		return fmt.Errorf("client %s: --id is required", sub)
	}
	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "list":
		cs, err := db.ListClients(ctx)
		if err != nil {
			return err
		}
		out := make([]*clientreg.Metadata, 0, len(cs))
		for _, c := range cs {
			out = append(out, clientreg.FromClient(c))
		}
		return jsonOut(stdout, out)
	case "show":
		c, err := db.GetClient(ctx, id)
		if errors.Is(err, sqin.ErrNotFound) {
			return fmt.Errorf("client show: no client %q", id)
		}
		if err != nil {
			return err
		}
		return jsonOut(stdout, clientreg.FromClient(c))
	default: // delete
		// The deletion commits with its event; an unknown client is
		// refused and records nothing.
		deleted := ctx
		if c, err := db.GetClient(ctx, id); err == nil {
			deleted = audit.With(ctx, adminEvent(getenv, audit.ClientDeleted, c, "sqin client delete"))
		}
		if err := db.DeleteClient(deleted, id); err != nil {
			return fmt.Errorf("client delete %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "client %s deleted; its grants, consents and registration access token are revoked\n", id)
		return nil
	}
}

func keysCmd(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("keys: want rotate")
	}
	var cfg config.Config
	fs := flag.NewFlagSet("sqin keys rotate", flag.ContinueOnError)
	dbFlags(fs, &cfg)
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "file holding the base64 master key")
	fs.StringVar(&cfg.MasterKey, "master-key", "", "base64 master key (prefer SQIN_MASTER_KEY)")
	fs.BoolVar(&cfg.Demo, "demo", false, "use the demo master key in --data-dir")
	alg := fs.String("alg", "all", "algorithm to rotate: ES256, RS256 or all")
	keep := fs.Duration("keep", 10*time.Minute, "how long retired keys stay in the JWKS (at least the longest token lifetime)")
	if err := parseCmd(fs, args[1:], getenv); err != nil {
		return err
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
	sealer, err := keys.NewSealer(derive(master, "key-encryption"))
	if err != nil {
		return err
	}
	m, err := keys.NewManager(ctx, db, sealer, keys.Config{Keep: *keep})
	if err != nil {
		return err
	}
	algs := []string{keys.ES256, keys.RS256}
	if *alg != "all" {
		algs = []string{*alg}
	}
	for _, a := range algs {
		if err := m.Rotate(audit.With(ctx, keysRotated(getenv, a)), a); err != nil { // the event commits with the key
			return err
		}
		fmt.Fprintf(stdout, "rotated %s; the previous key stays published for %s\n", a, *keep)
	}
	return nil
}
