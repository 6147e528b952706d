// Package oidc is SQIN's OpenID Provider: discovery, JWKS, the
// authorization endpoint with its sign-in and consent pages, the token,
// userinfo, revocation, introspection and end-session endpoints.
//
// Handlers speak HTTP and the protocol only; they reach storage through the
// small interfaces of internal/store.
package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/legal"
	"github.com/sqin/sqin/internal/store"
	"github.com/sqin/sqin/internal/web"
)

// Config holds the provider's settings.
type Config struct {
	Issuer         string
	CodeTTL        time.Duration // authorization codes (RFC 9700: short)
	AccessTTL      time.Duration // access tokens
	IDTokenTTL     time.Duration
	SessionTTL     time.Duration // browser SSO session, and online refresh tokens
	OfflineTTL     time.Duration // refresh tokens with offline_access
	AuthRequestTTL time.Duration // time a user has to sign in and consent
	// Failed sign-ins allowed per window, per account and per network
	// address, before the form refuses further attempts until the window
	// slides.
	LoginWindow     time.Duration
	LoginPerAccount int
	LoginPerAddress int
	// SubjectKey derives pairwise subject and sid values.
	SubjectKey []byte
	MaxBody    int64 // request body limit on protocol endpoints
	// DPoPNonce makes DPoP proofs carry a server nonce (RFC 9449 8, 9).
	DPoPNonce bool
	// RequirePAR makes every client use pushed authorization requests.
	RequirePAR bool
	PARTTL     time.Duration // life of a request_uri
	// HTTPClient fetches clients' jwks_uri; nil for a default with a
	// timeout that follows no redirects.
	HTTPClient *http.Client
	// Logout tunes back-channel logout delivery (backchannel.go).
	Logout LogoutConfig
	// Audit records and proves audit events (audit.go); nil: defaults.
	Audit *Auditor
	// AuditLog proves events (auditapi.go); nil for a log over the store
	// that cannot sign.
	AuditLog *audit.Log
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.CodeTTL, time.Minute)
	set(&c.AccessTTL, 5*time.Minute)
	set(&c.IDTokenTTL, 5*time.Minute)
	set(&c.SessionTTL, 8*time.Hour)
	set(&c.OfflineTTL, 30*24*time.Hour)
	set(&c.AuthRequestTTL, 30*time.Minute)
	set(&c.PARTTL, time.Minute)
	set(&c.LoginWindow, 15*time.Minute)
	if c.LoginPerAccount == 0 {
		c.LoginPerAccount = 5
	}
	if c.LoginPerAddress == 0 {
		c.LoginPerAddress = 50
	}
	if c.MaxBody == 0 {
		c.MaxBody = 64 << 10
	}
	c.Logout.defaults()
}

// Provider is the OpenID Provider.
type Provider struct {
	cfg       Config
	st        store.Store
	keys      *keys.Manager
	hasher    *authn.Hasher
	rd        *web.Renderer
	csrf      *web.CSRF
	cookies   web.Cookies
	log       *slog.Logger
	now       func() time.Time
	discovery []byte
	// clientKeys resolves clients' public keys (private_key_jwt, JAR).
	clientKeys *clientKeys
	// dpopKey makes DPoP nonces that every instance can check.
	dpopKey []byte
	// logoutWake starts back-channel delivery after a sign-out here.
	logoutWake logoutWake
	// clients caches clients briefly; verified caches the claims of access
	// tokens whose signature was checked (or that were signed here), by
	// tokenKey.
	clients  *cache[*sqin.Client]
	verified *cache[atClaims]
	// auditSlots bounds the proofs computed at once (auditapi.go).
	auditSlots chan struct{}
	// authorisations are the legal authorisations the release rule reads
	// (release.go).
	authorisations *legal.Cache
}

// New returns a provider.
func New(cfg Config, st store.Store, km *keys.Manager, h *authn.Hasher, rd *web.Renderer, log *slog.Logger) (*Provider, error) {
	cfg.Defaults()
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oidc: issuer %q must be an http(s) URL without query or fragment", cfg.Issuer)
	}
	if len(cfg.SubjectKey) < 32 {
		return nil, fmt.Errorf("oidc: subject key must be at least 32 bytes")
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	cookies := web.Cookies{Secure: u.Scheme == "https"}
	p := &Provider{cfg: cfg, st: st, keys: km, hasher: h, rd: rd, cookies: cookies, log: log, now: time.Now,
		csrf: web.NewCSRF(derive(cfg.SubjectKey, "csrf"), cookies), clientKeys: newClientKeys(cfg.HTTPClient),
		dpopKey: derive(cfg.SubjectKey, "dpop-nonce"), logoutWake: newLogoutWake(),
		clients: newCache[*sqin.Client](10_000), verified: newCache[atClaims](100_000)}
	if p.discovery, err = json.Marshal(p.discoveryDoc()); err != nil {
		return nil, err
	}
	p.authorisations = legal.NewCache(st, 5*time.Second, func() time.Time { return p.now() })
	p.auditDefaults()
	return p, nil
}

// Routes mounts the provider's endpoints: protocol endpoints through the
// API middleware, pages through the browser middleware.
func (p *Provider) Routes(mux *http.ServeMux) {
	api := func(h http.HandlerFunc) http.Handler { return web.API(h, p.cfg.MaxBody) }
	page := func(h http.HandlerFunc) http.Handler { return web.Browser(h, p.cookies.Secure) }
	mux.Handle("GET /.well-known/openid-configuration", api(p.handleDiscovery))
	mux.Handle("GET /jwks.json", api(p.handleJWKS))
	mux.Handle("/token", api(p.handleToken))
	mux.Handle("/par", api(p.handlePAR))
	mux.Handle("/userinfo", api(p.handleUserinfo))
	mux.Handle("/revoke", api(p.handleRevoke))
	mux.Handle("/introspect", api(p.handleIntrospect))
	mux.Handle("/authorize", page(p.handleAuthorize))
	mux.Handle("GET /authorize/resume", page(p.handleResume))
	mux.Handle("/login", page(p.handleLogin))
	mux.Handle("/consent", page(p.handleConsent))
	mux.Handle("/logout", page(p.handleLogout))
	mux.Handle("GET /{$}", page(p.HandleHome))
	mux.Handle("/consents", page(p.handleConsents))
	p.auditRoutes(mux)
}

// derive returns an HMAC-SHA256 subkey of key for purpose.
func derive(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("sqin " + purpose))
	return m.Sum(nil)
}

// Subject returns the sub client c knows the account by: the sub its public
// body used before SQIN when one was imported (legacy migration), the
// account's public identifier for clients explicitly registered with
// subject_type public, and otherwise the pairwise subject of the client's
// sector: a keyed hash, stable across key rotation and restarts, different
// per public body.
func (p *Provider) Subject(ctx context.Context, c *sqin.Client, accountID string) (string, error) {
	legacy, err := p.st.GetLegacySubject(ctx, c.SectorID(), accountID)
	switch {
	case err == nil:
		return legacy, nil
	case !errors.Is(err, sqin.ErrNotFound):
		return "", err
	}
	if c.SubjectType == sqin.SubjectPublic {
		return accountID, nil
	}
	return p.pairwise(c.SectorID(), accountID), nil
}

func (p *Provider) pairwise(sector, accountID string) string {
	m := hmac.New(sha256.New, p.cfg.SubjectKey)
	m.Write([]byte("sub\x00" + sector + "\x00" + accountID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:24])
}

// sid is the public session identifier put in ID tokens.
func (p *Provider) sid(sessionID string) string {
	m := hmac.New(sha256.New, p.cfg.SubjectKey)
	m.Write([]byte("sid\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

func (p *Provider) logErr(ctx context.Context, msg string, err error) {
	p.log.ErrorContext(ctx, msg, "request_id", web.RequestID(ctx), "err", err)
}
