// Package admin is SQIN's administration API: what operators do with the
// CLI, over HTTPS for automation (declarative configuration, pipelines).
// Callers authenticate with a bearer token made by `sqin admin token
// create`; every change is audited in the transaction that makes it, with
// the token as the actor.
//
// Today it manages the legal authorisations (docs/authorisations.md):
//
//	GET  /admin/v1/authorisations              list, with their status now
//	POST /admin/v1/authorisations              create (JSON legal.Input)
//	GET  /admin/v1/authorisations/{ref}        one
//	POST /admin/v1/authorisations/{ref}/end    end now, or at {"at": "..."}
package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/legal"
	"github.com/sqin/sqin/internal/store"
	"github.com/sqin/sqin/internal/web"
)

// Store is what the API needs from storage.
type Store interface {
	store.AdminTokens
	store.Authorisations
	store.RateLimits
}

// Audit actions of the API (and of the CLI that shares them).
const (
	ActionAuthorisationCreated = "authorisation.created"
	ActionAuthorisationEnded   = "authorisation.ended"
)

// Limits of the API.
const (
	maxBody         = 64 << 10
	failureWindow   = 15 * time.Minute
	failuresAllowed = 20 // failed authentications per address and window
)

// Handler serves the administration API.
type Handler struct {
	st    Store
	known func(string) bool // registry attribute names
	log   *slog.Logger
	now   func() time.Time
}

// New returns the API; known says whether a registry attribute exists.
func New(st Store, known func(string) bool, log *slog.Logger) *Handler {
	return &Handler{st: st, known: known, log: log, now: time.Now}
}

// Routes mounts the API.
func (h *Handler) Routes(mux *http.ServeMux) {
	api := func(fn func(http.ResponseWriter, *http.Request, *store.AdminToken)) http.Handler {
		return web.API(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tok, ok := h.authenticate(w, r); ok {
				fn(w, r, tok)
			}
		}), maxBody)
	}
	mux.Handle("GET /admin/v1/authorisations", api(h.list))
	mux.Handle("POST /admin/v1/authorisations", api(h.create))
	mux.Handle("GET /admin/v1/authorisations/{ref}", api(h.show))
	mux.Handle("POST /admin/v1/authorisations/{ref}/end", api(h.end))
}

// NewToken returns a new admin token and the hash under which it is
// stored.
func NewToken() (token, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token = "sqa_" + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is the stored form of a token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// authenticate checks the bearer token. Unknown, expired and revoked
// tokens get the same answer; failures are limited per address. The
// lookup is by hash, so its timing says nothing about stored tokens.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*store.AdminToken, bool) {
	ctx := r.Context()
	now := h.now()
	key := "admin-auth:" + web.LimitAddress(r)
	if n, err := h.st.Count(ctx, key, failureWindow, now); err != nil {
		h.fail(w, r, err)
		return nil, false
	} else if n >= failuresAllowed {
		w.Header().Set("Retry-After", strconv.Itoa(int(failureWindow.Seconds())))
		web.Problem(w, http.StatusTooManyRequests, "too many failed authentications from this address: retry later")
		return nil, false
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	var t *store.AdminToken
	if strings.EqualFold(scheme, "Bearer") && tok != "" && len(tok) < 200 {
		got, err := h.st.GetAdminToken(ctx, HashToken(tok))
		switch {
		case err == nil && got.Usable(now):
			t = got
		case err != nil && !errors.Is(err, sqin.ErrNotFound):
			h.fail(w, r, err)
			return nil, false
		}
	}
	if t == nil {
		if _, err := h.st.Hit(ctx, key, failureWindow, now); err != nil {
			h.log.ErrorContext(ctx, "admin: count a failed authentication", "err", err)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="sqin-admin", error="invalid_token"`)
		web.Problem(w, http.StatusUnauthorized, "a valid admin token is required (sqin admin token create)")
		return nil, false
	}
	return t, true
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.ErrorContext(r.Context(), "admin API", "request_id", web.RequestID(r.Context()), "err", err)
	web.Problem(w, http.StatusInternalServerError, "internal error")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readJSON decodes a JSON body strictly (unknown members refused).
func readJSON(r *http.Request, v any, optional bool) error {
	if r.ContentLength == 0 && optional {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errors.New("the body must be application/json")
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if optional && errors.Is(err, io.EOF) {
			return nil
		}
		return errors.New("the body is not the expected JSON object: " + err.Error())
	}
	if dec.More() {
		return errors.New("the body holds more than one JSON object")
	}
	return nil
}

func actor(t *store.AdminToken) audit.Actor {
	return audit.Actor{Kind: audit.ActorAdmin, ID: "admin-token:" + t.ID}
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, _ *store.AdminToken) {
	as, err := h.st.ListAuthorisations(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.now()
	out := make([]legal.View, 0, len(as))
	for _, a := range as {
		out = append(out, a.View(now))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request, _ *store.AdminToken) {
	a, err := h.st.GetAuthorisation(r.Context(), r.PathValue("ref"))
	switch {
	case errors.Is(err, sqin.ErrNotFound):
		web.Problem(w, http.StatusNotFound, "no such authorisation")
	case err != nil:
		h.fail(w, r, err)
	default:
		writeJSON(w, http.StatusOK, a.View(h.now()))
	}
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, t *store.AdminToken) {
	var in legal.Input
	if err := readJSON(r, &in, false); err != nil {
		web.Problem(w, http.StatusBadRequest, err.Error())
		return
	}
	now := h.now()
	a, err := in.Authorisation(now, h.known)
	if err != nil {
		web.Problem(w, http.StatusUnprocessableEntity, legal.Problem(err))
		return
	}
	ev := audit.Event{RequestID: web.RequestID(r.Context()), Actor: actor(t), Action: ActionAuthorisationCreated,
		LegalBasis: a.Ref, Attributes: a.Attributes, Outcome: audit.Success, Detail: "purpose " + a.Purpose}
	switch err := h.st.CreateAuthorisation(audit.With(r.Context(), ev), a); {
	case errors.Is(err, sqin.ErrConflict):
		web.Problem(w, http.StatusConflict, "an authorisation with this reference already exists")
	case err != nil:
		h.fail(w, r, err)
	default:
		w.Header().Set("Location", "/admin/v1/authorisations/"+a.Ref)
		writeJSON(w, http.StatusCreated, a.View(now))
	}
}

func (h *Handler) end(w http.ResponseWriter, r *http.Request, t *store.AdminToken) {
	var body struct {
		At string `json:"at"`
	}
	if err := readJSON(r, &body, true); err != nil {
		web.Problem(w, http.StatusBadRequest, err.Error())
		return
	}
	at := h.now()
	if body.At != "" {
		var err error
		if at, err = legal.ParseWhen(body.At); err != nil {
			web.Problem(w, http.StatusUnprocessableEntity, "at: "+err.Error())
			return
		}
	}
	ref := r.PathValue("ref")
	ctx := r.Context()
	ev := audit.Event{RequestID: web.RequestID(ctx), Actor: actor(t), Action: ActionAuthorisationEnded,
		LegalBasis: ref, Outcome: audit.Success, Detail: "ends " + at.UTC().Format(time.RFC3339)}
	switch err := h.st.EndAuthorisation(audit.With(ctx, ev), ref, at); {
	case errors.Is(err, sqin.ErrNotFound):
		web.Problem(w, http.StatusNotFound, "no such authorisation")
	case errors.Is(err, sqin.ErrConflict):
		web.Problem(w, http.StatusConflict, "the authorisation has already ended, or its term is before "+legal.Local(at))
	case err != nil:
		h.fail(w, r, err)
	default:
		a, err := h.st.GetAuthorisation(ctx, ref)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, a.View(h.now()))
	}
}

// CreateToken stores a new token for note, valid for life, recording the
// creation by actor; it returns the token (shown once) and its record.
func CreateToken(ctx context.Context, st store.AdminTokens, note string, life time.Duration, by audit.Actor, now time.Time) (string, *store.AdminToken, error) {
	tok, hash := NewToken()
	t := &store.AdminToken{ID: "adm-" + strings.ToLower(rand.Text()[:12]), Hash: hash, Note: note, CreatedAt: now, ExpiresAt: now.Add(life)}
	ev := audit.Event{Actor: by, Action: "admin_token.created", Outcome: audit.Success, Detail: "token " + t.ID}
	if err := st.CreateAdminToken(audit.With(ctx, ev), t); err != nil {
		return "", nil, err
	}
	return tok, t, nil
}
