package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/oidc"
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

func migrate(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	var cfg config.Config
	fs := flag.NewFlagSet("sqin migrate", flag.ContinueOnError)
	dbFlags(fs, &cfg)
	if err := parseCmd(fs, args, getenv); err != nil {
		return err
	}
	if err := defaultDB(&cfg); err != nil {
		return err
	}
	db, err := openDB(ctx, cfg.DB)
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

// clientJSON is how the CLI shows a client (RFC 7591 member names).
type clientJSON struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	Scope                   string   `json:"scope"`
	Claims                  []string `json:"claims,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	IDTokenSignedAlg        string   `json:"id_token_signed_response_alg"`
	MinACR                  string   `json:"minimum_acr"`
	Sector                  string   `json:"sector_identifier"`
	CreatedAt               string   `json:"created_at"`
}

func toJSON(c *sqin.Client, secret string) clientJSON {
	return clientJSON{ClientID: c.ID, ClientSecret: secret, ClientName: c.Name, RedirectURIs: c.RedirectURIs,
		PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, GrantTypes: c.GrantTypes, Scope: strings.Join(c.Scopes, " "),
		Claims: c.Claims, TokenEndpointAuthMethod: c.AuthMethod, IDTokenSignedAlg: c.SigningAlg,
		MinACR: c.MinLoA.ACR(), Sector: c.SectorID(), CreatedAt: c.CreatedAt.Format(time.RFC3339)}
}

func client(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New("client: want create, list or delete")
	}
	var cfg config.Config
	fs := flag.NewFlagSet("sqin client "+args[0], flag.ContinueOnError)
	dbFlags(fs, &cfg)
	var (
		id, secret, auth, jwksFile, sector, name, alg string
		minLoA                                        int
		redirects, postLogout, grants, scopes, claims listFlag
	)
	if args[0] == "create" || args[0] == "delete" {
		fs.StringVar(&id, "id", "", "client identifier")
	}
	if args[0] == "create" {
		fs.StringVar(&secret, "secret", "", "client secret (at least 12 characters; generated when absent)")
		fs.StringVar(&auth, "auth", sqin.AuthSecretBasic, "token endpoint authentication: client_secret_basic, client_secret_post, none, private_key_jwt")
		fs.StringVar(&jwksFile, "jwks-file", "", "public keys of the client (private_key_jwt), JWKS JSON")
		fs.StringVar(&sector, "sector", "", "public body whose clients share one pairwise sub (default: the client itself)")
		fs.StringVar(&name, "name", "", "name shown to citizens (default: the id)")
		fs.StringVar(&alg, "signing-alg", keys.ES256, "ID token signing algorithm: ES256, RS256 or PS256")
		fs.IntVar(&minLoA, "min-loa", 1, "minimum level of assurance: 1, 2 or 3")
		fs.Var(&redirects, "redirect-uri", "redirect URI, exact (repeatable)")
		fs.Var(&postLogout, "post-logout-redirect-uri", "post-logout redirect URI (repeatable)")
		grants = listFlag{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken}
		fs.Func("grant-types", "grant types, comma-separated (default authorization_code,refresh_token)", func(s string) error {
			grants = nil
			return grants.Set(s)
		})
		scopes = listFlag{"openid", "profile", "email"}
		fs.Func("scopes", "scopes the client may request (default openid,profile,email)", func(s string) error {
			scopes = nil
			return scopes.Set(s)
		})
		fs.Var(&claims, "claims", "restrict the claims the client may receive (default: those of its scopes)")
	}
	if err := parseCmd(fs, args[1:], getenv); err != nil {
		return err
	}
	if err := defaultDB(&cfg); err != nil {
		return err
	}
	db, err := openDB(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	switch args[0] {
	case "list":
		cs, err := db.ListClients(ctx)
		if err != nil {
			return err
		}
		out := make([]clientJSON, 0, len(cs))
		for _, c := range cs {
			out = append(out, toJSON(c, ""))
		}
		return enc.Encode(out)
	case "delete":
		if id == "" {
			return errors.New("client delete: --id is required")
		}
		if err := db.DeleteClient(ctx, id); err != nil {
			return fmt.Errorf("client delete %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "client %s deleted; its grants and consents are revoked\n", id)
		return nil
	case "create":
		c := &sqin.Client{ID: id, Name: name, RedirectURIs: redirects, PostLogoutRedirectURIs: postLogout,
			GrantTypes: grants, Scopes: scopes, Claims: claims, AuthMethod: auth, SigningAlg: alg,
			MinLoA: sqin.LoA(minLoA), Sector: sector, CreatedAt: time.Now().UTC()}
		if c.Name == "" {
			c.Name = c.ID
		}
		generated := ""
		if auth == sqin.AuthSecretBasic || auth == sqin.AuthSecretPost {
			if secret == "" {
				secret = keys.Random(32)
				generated = secret
			}
			c.SecretHash = oidc.HashSecret(secret)
		} else if secret != "" {
			return fmt.Errorf("client create: --secret makes no sense with --auth %s", auth)
		}
		if jwksFile != "" {
			if c.JWKS, err = os.ReadFile(jwksFile); err != nil {
				return fmt.Errorf("client create: %w", err)
			}
		}
		if err := validateClient(c, secret); err != nil {
			return fmt.Errorf("client create: %w", err)
		}
		if err := db.CreateClient(ctx, c); err != nil {
			if errors.Is(err, sqin.ErrConflict) {
				return fmt.Errorf("client create: a client with id %q already exists", c.ID)
			}
			return fmt.Errorf("client create: %w", err)
		}
		return enc.Encode(toJSON(c, generated))
	}
	return fmt.Errorf("client: unknown subcommand %q (want create, list or delete)", args[0])
}

var knownScopes = []string{"openid", "profile", "email", "address", "offline_access"}

// validateClient checks client metadata strictly: exact https redirect URIs
// (http only on loopback), no fragments, no wildcards, known values only.
func validateClient(c *sqin.Client, secret string) error {
	if c.ID == "" || len(c.ID) > 128 || strings.ContainsAny(c.ID, " \t\r\n:/?#") {
		return errors.New("--id is required: up to 128 characters, no spaces or : / ? #")
	}
	switch c.AuthMethod {
	case sqin.AuthSecretBasic, sqin.AuthSecretPost:
		if len(secret) < 12 {
			return errors.New("--secret must be at least 12 characters (omit it to generate a strong one)")
		}
	case sqin.AuthNone:
	case sqin.AuthPrivateKey:
		if len(c.JWKS) == 0 {
			return errors.New("--auth private_key_jwt needs --jwks-file")
		}
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if json.Unmarshal(c.JWKS, &set) != nil || len(set.Keys) == 0 {
			return errors.New("--jwks-file must hold a JWKS with at least one key")
		}
	default:
		return fmt.Errorf("unknown --auth %q", c.AuthMethod)
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains([]string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken, sqin.GrantClientCredentials}, g) {
			return fmt.Errorf("unknown grant type %q", g)
		}
	}
	if c.HasGrant(sqin.GrantClientCredentials) && c.Public() {
		return errors.New("a public client (--auth none) cannot use client_credentials")
	}
	if c.HasGrant(sqin.GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return errors.New("--redirect-uri is required for the authorization_code grant")
	}
	for _, s := range c.Scopes {
		if !slices.Contains(knownScopes, s) {
			return fmt.Errorf("unknown scope %q (known: %s)", s, strings.Join(knownScopes, ", "))
		}
	}
	if !slices.Contains(keys.SupportedAlgs, c.SigningAlg) {
		return fmt.Errorf("--signing-alg must be one of %s", strings.Join(keys.SupportedAlgs, ", "))
	}
	if !c.MinLoA.Valid() {
		return errors.New("--min-loa must be 1, 2 or 3")
	}
	for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
		if err := checkRedirectURI(u); err != nil {
			return err
		}
	}
	return nil
}

func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("redirect URI %q must be an absolute URL", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("redirect URI %q must not have a fragment", s)
	}
	if strings.Contains(s, "*") {
		return fmt.Errorf("redirect URI %q must not contain wildcards", s)
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q must not contain credentials", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			return fmt.Errorf("redirect URI %q: http is allowed only on loopback; use https", s)
		}
	default:
		return fmt.Errorf("redirect URI %q: scheme must be https (or http on loopback)", s)
	}
	return nil
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
		if err := m.Rotate(ctx, a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotated %s; the previous key stays published for %s\n", a, *keep)
	}
	return nil
}
