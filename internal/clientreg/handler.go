package clientreg

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/oidc"
	"github.com/sqin/sqin/internal/store"
	"github.com/sqin/sqin/internal/web"
)

// Store is what the registration API needs from storage.
type Store interface {
	store.Clients
	store.Registrations
	store.RateLimits
}

// Config holds the API's settings.
type Config struct {
	Issuer string // the provider's issuer: registration URIs are below it
	// Failed authentications (missing, unknown, expired, revoked or
	// wrong-sector tokens) allowed per network address and window before
	// every request from it is refused until the window slides.
	FailureWindow      time.Duration
	FailuresPerAddress int
}

// Handler serves the registration endpoint (RFC 7591) and the client
// configuration endpoint (RFC 7592).
type Handler struct {
	cfg Config
	st  Store
	log *slog.Logger
	now func() time.Time
}

// New returns the registration API.
func New(cfg Config, st Store, log *slog.Logger) *Handler {
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = 15 * time.Minute
	}
	if cfg.FailuresPerAddress <= 0 {
		cfg.FailuresPerAddress = 20
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, st: st, log: log, now: time.Now}
}

// Path of the registration endpoint, below the issuer.
const Path = "/register"

// Endpoint is the registration endpoint of issuer, for discovery.
func Endpoint(issuer string) string { return strings.TrimSuffix(issuer, "/") + Path }

// Routes mounts the endpoints through the API middleware: no cookies,
// bodies limited to MaxSize.
func (h *Handler) Routes(mux *http.ServeMux) {
	api := func(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
		return web.API(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, fn) }), MaxSize)
	}
	mux.Handle("POST "+Path, api(h.register))
	mux.Handle("GET "+Path+"/{client_id}", api(h.read))
	mux.Handle("PUT "+Path+"/{client_id}", api(h.update))
	mux.Handle("DELETE "+Path+"/{client_id}", api(h.remove))
}

// apiError is an error response.
type apiError struct {
	status int
	code   string
	desc   string
	auth   bool // an authentication failure: counted against the address
	err    error
}

func (e *apiError) Error() string { return e.code + ": " + e.desc }
func (e *apiError) Unwrap() error { return e.err }

func unauthorized(format string, args ...any) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "invalid_token", desc: fmt.Sprintf(format, args...), auth: true}
}

func badMetadata(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return &apiError{status: http.StatusBadRequest, code: e.Code, desc: e.Description}
	}
	return err
}

func internal(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: "server_error", desc: "internal error", err: err}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, fn func(http.ResponseWriter, *http.Request) error) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Pragma", "no-cache")
	ctx := r.Context()
	key := "clientreg-fail:" + web.LimitAddress(r)
	n, err := h.st.Count(ctx, key, h.cfg.FailureWindow, h.now())
	if err != nil {
		h.fail(w, r, internal(err))
		return
	}
	if n >= h.cfg.FailuresPerAddress {
		hd.Set("Retry-After", strconv.Itoa(int(h.cfg.FailureWindow.Seconds())))
		h.fail(w, r, &apiError{status: http.StatusTooManyRequests, code: "too_many_requests",
			desc: "too many failed authentications from this address; try again later"})
		return
	}
	if err := fn(w, r); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.auth {
			if _, herr := h.st.Hit(ctx, key, h.cfg.FailureWindow, h.now()); herr != nil {
				h.log.ErrorContext(ctx, "clientreg: count failure", "request_id", web.RequestID(ctx), "err", herr)
			}
		}
		h.fail(w, r, err)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = internal(err)
	}
	if ae.status >= 500 {
		h.log.ErrorContext(r.Context(), "clientreg", "request_id", web.RequestID(r.Context()), "err", err)
	} else {
		h.log.InfoContext(r.Context(), "clientreg: refused", "request_id", web.RequestID(r.Context()),
			"addr", remoteAddr(r), "error", ae.code, "error_description", ae.desc)
	}
	if ae.status == http.StatusUnauthorized {
		challenge := `Bearer realm="sqin-registration"`
		if _, err := bearer(r, ""); err == nil { // a token was presented (RFC 6750 section 3.1)
			challenge += `, error="invalid_token", error_description="` + strings.ReplaceAll(ae.desc, `"`, `'`) + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, ae.status, map[string]string{"error": ae.code, "error_description": ae.desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func remoteAddr(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// bearer returns the token of an Authorization: Bearer header; tokens are
// accepted nowhere else.
func bearer(r *http.Request, what string) (string, error) {
	v := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(v, " ")
	if v == "" || !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > 512 || strings.ContainsAny(tok, " \t") {
		return "", unauthorized("%s is required: Authorization: Bearer <token>", what)
	}
	return tok, nil
}

// readMetadata reads and decodes a JSON body.
func readMetadata(r *http.Request) (*Metadata, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/json" {
		return nil, &apiError{status: http.StatusUnsupportedMediaType, code: InvalidClientMetadata,
			desc: "the body must be client metadata in JSON (Content-Type: application/json)"}
	}
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: InvalidClientMetadata,
			desc: fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)}
	}
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: InvalidClientMetadata, desc: "the body could not be read"}
	}
	m, err := Decode(body)
	if err != nil {
		return nil, badMetadata(err)
	}
	return m, nil
}

// serverAssigned clears the members that the server sets, which a request
// may echo back but never chooses.
func (m *Metadata) serverAssigned() {
	m.ClientIDIssuedAt, m.ClientSecretExpiresAt = 0, nil
	m.RegistrationAccessToken, m.RegistrationClientURI = "", ""
}

func (h *Handler) clientURI(id string) string { return h.cfg.Issuer + Path + "/" + id }

// newClientID is random, prefixed with the sector when there is one.
func newClientID(sector string) string {
	id := strings.ToLower(rand.Text())
	if sector != "" {
		return sector + "." + id
	}
	return "rp." + id
}

// Prefixes make leaked tokens easy to recognise (secret scanners).
const (
	initialTokenPrefix      = "sqin_iat_"
	registrationTokenPrefix = "sqin_rat_"
)

// NewInitialAccessToken returns a new token value and its stored hash.
func NewInitialAccessToken() (token, hash string) {
	token = initialTokenPrefix + keys.Random(32)
	return token, keys.Hash(token)
}

func newRegistrationToken() (token, hash string) {
	token = registrationTokenPrefix + keys.Random(32)
	return token, keys.Hash(token)
}

func secretAuth(method string) bool {
	return method == sqin.AuthSecretBasic || method == sqin.AuthSecretPost
}

// register is POST /register (RFC 7591 section 3).
func (h *Handler) register(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	tok, err := bearer(r, "an initial access token")
	if err != nil {
		return err
	}
	hash := keys.Hash(tok)
	t, err := h.st.GetInitialAccessToken(ctx, hash)
	switch {
	case errors.Is(err, sqin.ErrNotFound):
		return unauthorized("the initial access token is not valid")
	case err != nil:
		return internal(err)
	case subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1:
		return unauthorized("the initial access token is not valid")
	}
	now := h.now().UTC()
	switch {
	case !t.RevokedAt.IsZero():
		return unauthorized("the initial access token was revoked")
	case !now.Before(t.ExpiresAt):
		return unauthorized("the initial access token expired")
	case !t.Usable(now):
		return unauthorized("the initial access token was used as many times as allowed")
	}
	m, err := readMetadata(r)
	if err != nil {
		return err
	}
	m.serverAssigned()
	m.ClientSecret = ""
	if t.Sector != "" {
		switch m.SectorIdentifier {
		case "":
			m.SectorIdentifier = t.Sector
		case t.Sector:
		default:
			return unauthorized("this initial access token registers clients of sector %q only, not %q", t.Sector, m.SectorIdentifier)
		}
	}
	m.ClientID = newClientID(m.SectorIdentifier)
	c, err := Validate(m, Options{AllowPublicSubject: t.AllowPublicSubject})
	if err != nil {
		return badMetadata(err)
	}
	secret := ""
	if secretAuth(c.AuthMethod) {
		secret = keys.Random(32)
		c.SecretHash = oidc.HashSecret(secret)
	}
	c.CreatedAt = now
	rat, ratHash := newRegistrationToken()
	reg := &store.Registration{ClientID: c.ID, TokenHash: ratHash, InitialTokenID: t.ID, Sector: t.Sector,
		AllowPublicSubject: t.AllowPublicSubject, CreatedAt: now, UpdatedAt: now}
	// The client, its registration and its event commit together. The
	// registrant is known by the client it registers and the initial
	// access token it used (by identifier, never the value).
	created := audit.With(ctx, clientEvent(ctx, audit.ClientCreated, c, "registered (RFC 7591) with initial access token "+t.ID))
	err = h.st.RegisterClient(created, c, reg, now)
	switch {
	case errors.Is(err, sqin.ErrNotFound), errors.Is(err, sqin.ErrRevoked), errors.Is(err, sqin.ErrExpired):
		return unauthorized("the initial access token is no longer valid")
	case err != nil:
		return internal(err)
	}
	h.log.InfoContext(ctx, "client registered", "request_id", web.RequestID(ctx), "client_id", c.ID,
		"sector", c.SectorID(), "initial_token", t.ID, "addr", remoteAddr(r))
	resp := h.response(c, secret)
	resp.RegistrationAccessToken = rat
	w.Header().Set("Location", resp.RegistrationClientURI)
	writeJSON(w, http.StatusCreated, resp)
	return nil
}

// clientEvent is the event of a client managing its own registration.
func clientEvent(ctx context.Context, action string, c *sqin.Client, detail string) audit.Event {
	return audit.Event{RequestID: web.RequestID(ctx), Actor: audit.Actor{Kind: audit.ActorClient, ID: c.ID},
		Action: action, ClientID: c.ID, PublicBody: c.SectorID(), Outcome: audit.Success, Detail: detail}
}

func (h *Handler) response(c *sqin.Client, secret string) *Metadata {
	m := FromClient(c)
	m.RegistrationClientURI = h.clientURI(c.ID)
	if secret != "" {
		never := int64(0)
		m.ClientSecret, m.ClientSecretExpiresAt = secret, &never
	}
	return m
}

// registration authenticates a request to the client configuration
// endpoint with the client's registration access token.
func (h *Handler) registration(ctx context.Context, r *http.Request) (*store.Registration, *sqin.Client, error) {
	tok, err := bearer(r, "the registration access token")
	if err != nil {
		return nil, nil, err
	}
	hash := keys.Hash(tok)
	reg, err := h.st.GetRegistration(ctx, r.PathValue("client_id"))
	switch {
	case errors.Is(err, sqin.ErrNotFound): // client IDs are not secret
		return nil, nil, unauthorized("the registration access token is not valid for this client")
	case err != nil:
		return nil, nil, internal(err)
	case subtle.ConstantTimeCompare([]byte(reg.TokenHash), []byte(hash)) != 1:
		return nil, nil, unauthorized("the registration access token is not valid for this client")
	}
	c, err := h.st.GetClient(ctx, reg.ClientID)
	switch {
	case errors.Is(err, sqin.ErrNotFound):
		return nil, nil, unauthorized("the registration access token is not valid for this client")
	case err != nil:
		return nil, nil, internal(err)
	}
	return reg, c, nil
}

// read is GET /register/{client_id} (RFC 7592 section 2.1).
func (h *Handler) read(w http.ResponseWriter, r *http.Request) error {
	_, c, err := h.registration(r.Context(), r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.response(c, ""))
	return nil
}

// update is PUT /register/{client_id} (RFC 7592 section 2.2): the body
// replaces the metadata; members left out take their defaults. The
// registration access token is rotated; the secret is kept, or generated
// when the client moves to a secret-based method.
func (h *Handler) update(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	reg, cur, err := h.registration(ctx, r)
	if err != nil {
		return err
	}
	m, err := readMetadata(r)
	if err != nil {
		return err
	}
	m.serverAssigned()
	if m.ClientID != cur.ID {
		return badMetadata(invalid("client_id", "client_id must be this client's identifier, %q", cur.ID))
	}
	if m.ClientSecret != "" {
		if cur.SecretHash == "" || !oidc.VerifySecret(cur.SecretHash, m.ClientSecret) {
			return badMetadata(invalid("client_secret", "client_secret does not match the client's current secret (a client cannot choose its secret)"))
		}
		m.ClientSecret = ""
	}
	switch m.SectorIdentifier {
	case "":
		m.SectorIdentifier = cur.SectorID()
	case cur.SectorID():
	default:
		return badMetadata(invalid("sector_identifier", "sector_identifier cannot change (from %q): every citizen would get a new identifier", cur.SectorID()))
	}
	c, err := Validate(m, Options{AllowPublicSubject: reg.AllowPublicSubject})
	if err != nil {
		return badMetadata(err)
	}
	c.CreatedAt = cur.CreatedAt
	secret := ""
	switch {
	case !secretAuth(c.AuthMethod):
	case secretAuth(cur.AuthMethod) && cur.SecretHash != "":
		c.SecretHash = cur.SecretHash
	default:
		secret = keys.Random(32)
		c.SecretHash = oidc.HashSecret(secret)
	}
	rat, ratHash := newRegistrationToken()
	updated := audit.With(ctx, clientEvent(ctx, audit.ClientUpdated, c, "updated (RFC 7592)"))
	err = h.st.UpdateRegisteredClient(updated, c, reg.TokenHash, ratHash, h.now().UTC())
	switch {
	case errors.Is(err, sqin.ErrNotFound):
		return unauthorized("the registration access token is not valid for this client")
	case err != nil:
		return internal(err)
	}
	h.log.InfoContext(ctx, "client registration updated", "request_id", web.RequestID(ctx), "client_id", c.ID,
		"addr", remoteAddr(r))
	resp := h.response(c, secret)
	resp.RegistrationAccessToken = rat
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// remove is DELETE /register/{client_id} (RFC 7592 section 2.3): the
// client, its registration, grants and consents go.
func (h *Handler) remove(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	_, c, err := h.registration(ctx, r)
	if err != nil {
		return err
	}
	err = h.st.DeleteClient(audit.With(ctx, clientEvent(ctx, audit.ClientDeleted, c, "deleted (RFC 7592)")), c.ID)
	switch {
	case errors.Is(err, sqin.ErrNotFound):
		return unauthorized("the registration access token is not valid for this client")
	case err != nil:
		return internal(err)
	}
	h.log.InfoContext(ctx, "client registration deleted", "request_id", web.RequestID(ctx), "client_id", c.ID,
		"addr", remoteAddr(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
