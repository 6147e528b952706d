// Package signup is account creation and identity proofing, pages in
// French first and English: a citizen gives an email and a password and
// accepts the terms (/inscription), enters the 6-digit code mailed to the
// address (/inscription/code), which creates the account at level 1, then
// states who they are and proves it with shared secrets (/verification)
// until the proofing ladder reaches level 2 and the account is linked to
// its registry person.
//
// Nothing a page says reveals whether an email has an account or whether
// a person exists in the registry: the owner of an existing account is
// told by mail instead.
package signup

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/web"
)

// Audit actions of this package (lower-case words joined by dots).
const (
	ActionSignupStarted  = "signup.started"
	ActionAccountCreated = "account.created"
	ActionProofAttempt   = "proofing.attempt"
	ActionAccountProofed = "account.proofed"
)

// Config holds the handler's dependencies and settings.
type Config struct {
	Issuer string // scheme decides the cookies' attributes; links in mails
	// CSRFKey keys the form tokens; IdentityKey keys the claimed identity
	// (the per-person limit); both from the master key.
	CSRFKey     []byte
	IdentityKey []byte
	Catalogue   *proofing.Catalogue
	Prover      *proofing.Prover
	Hasher      *authn.Hasher
	Counter     proofing.Counter // sign-ups per address
	// Pseudonyms and Batcher record audit events; nil records none.
	Pseudonyms *audit.Pseudonymizer
	Batcher    interface {
		Append(ctx context.Context, events ...*audit.Event) error
	}
	Mailer interface{ Wake() } // told when a mail is queued; may be nil
	// Sessions signs the citizen in when proofing ends (and resumes the
	// pending authorization request) and tells who is signed in; nil
	// leaves the citizen to sign in with the form.
	Sessions Sessions
	// MailCodeKey keys the hashes of codes sent by mail (from the master
	// key; `sqin letters export` derives the same); nil: no codes by mail.
	MailCodeKey []byte
	// MailSealer encrypts the bodies of queued mails (email codes, reset
	// links) at rest in the outbox, under a key derived from the master
	// key; the Worker's Sealer opens them. nil queues them in clear.
	MailSealer *keys.Sealer

	CodeTTL         time.Duration // default 15 min
	FlowTTL         time.Duration // registration and proofing; default 2 h
	MaxCodeAttempts int           // default 5
	SignupsPerHour  int           // per network address; default 20
	// MailCodeTTL is the life of a printed code (shown on the pages; the
	// export applies it); default 30 days.
	MailCodeTTL time.Duration
	// MaxLetterAttempts is the number of wrong codes that void a letter;
	// default 5. LettersPer30Days bounds letter requests per account and
	// per claimed identity; default 3.
	MaxLetterAttempts int
	LettersPer30Days  int
	// LettersPerDay caps letter requests of every citizen together in a
	// sliding 24 hours (postage, and a scan of the registry by name and
	// birth date); reaching it logs an error with alert=letters_daily_cap
	// and refuses further requests with a "try again tomorrow" page, the
	// same for every identity. Default 2000.
	LettersPerDay int
	// ResetTTL is the life of a password reset link (default 30 min);
	// ResetsPerHour bounds reset requests per email address (default 3).
	ResetTTL      time.Duration
	ResetsPerHour int
	// MinResponse is the least time an answer takes when its work depends
	// on whether a person or an account exists: letter and password reset
	// requests, and the proofing answer (once per proof chosen, plus
	// once); default 400 ms, more than the prover's own padding.
	MinResponse time.Duration
	Now         func() time.Time
}

// Sessions is what the pages need from the provider's browser sessions
// (internal/oidc's Provider, through cmd/sqin).
type Sessions interface {
	// SignIn starts an SSO session for the account at its current level
	// and returns where the browser goes next: the pending authorization
	// request when authRequest names one that is still pending, else "/".
	// amr and authTime say how and when the citizen authenticated; when the
	// browser's session is the same account's, the new session keeps that
	// session's own (internal/oidc's SignIn).
	SignIn(w http.ResponseWriter, r *http.Request, accountID string, amr []string, authTime time.Time, authRequest string) (string, error)
	// SessionAccount returns the signed-in account, "" for none.
	SessionAccount(r *http.Request) (accountID, sessionID string)
	// EndSession ends a session (with its logout notifications).
	EndSession(ctx context.Context, sessionID string) error
	// ForgetFailedSignIns forgets the failed sign-ins counted against an
	// email address (after a password reset, so that the citizen is not
	// locked out by the attempts that made them reset it).
	ForgetFailedSignIns(ctx context.Context, email string) error
}

// Handler serves the account creation and proofing pages.
type Handler struct {
	cfg     Config
	st      Store
	rd      *web.Renderer
	log     *slog.Logger
	csrf    *web.CSRF
	cookies web.Cookies
}

// flowCookie holds a registration's token: a session cookie (gone with
// the browser), cleared and its flow deleted when proofing ends.
// resumeCookie keeps, once the flow is gone, the identifier of the
// service's authorization request that proofing resumed (bound to the new
// session, so worth nothing in another browser), for the done page shown
// again.
const (
	flowCookie   = "sqin_signup"
	resumeCookie = "sqin_signup_next"
)

// New returns the handler.
func New(cfg Config, st Store, rd *web.Renderer, log *slog.Logger) (*Handler, error) {
	if len(cfg.CSRFKey) < 32 || len(cfg.IdentityKey) < 32 {
		return nil, errors.New("signup: CSRF and identity keys of 32 bytes are required")
	}
	if cfg.Catalogue == nil || cfg.Prover == nil || cfg.Hasher == nil || cfg.Counter == nil {
		return nil, errors.New("signup: catalogue, prover, hasher and counter are required")
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 15 * time.Minute
	}
	if cfg.FlowTTL <= 0 {
		cfg.FlowTTL = 2 * time.Hour
	}
	if cfg.MaxCodeAttempts <= 0 {
		cfg.MaxCodeAttempts = 5
	}
	if cfg.SignupsPerHour <= 0 {
		cfg.SignupsPerHour = 20
	}
	if cfg.MailCodeTTL <= 0 {
		cfg.MailCodeTTL = 30 * 24 * time.Hour
	}
	if cfg.MaxLetterAttempts <= 0 {
		cfg.MaxLetterAttempts = 5
	}
	if cfg.LettersPer30Days <= 0 {
		cfg.LettersPer30Days = 3
	}
	if cfg.LettersPerDay <= 0 {
		cfg.LettersPerDay = 2000
	}
	if cfg.ResetTTL <= 0 {
		cfg.ResetTTL = 30 * time.Minute
	}
	if cfg.ResetsPerHour <= 0 {
		cfg.ResetsPerHour = 3
	}
	if cfg.MinResponse <= 0 {
		cfg.MinResponse = 400 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MailCodeKey != nil && len(cfg.MailCodeKey) < 32 {
		return nil, errors.New("signup: the mail-code key must be at least 32 bytes")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("signup: issuer %q is not a URL", cfg.Issuer)
	}
	cookies := web.Cookies{Secure: u.Scheme == "https"}
	return &Handler{cfg: cfg, st: st, rd: rd, log: log, cookies: cookies, csrf: web.NewCSRF(cfg.CSRFKey, cookies)}, nil
}

// Routes mounts the pages on mux, through the browser wrapper.
func (h *Handler) Routes(mux *http.ServeMux) {
	page := func(f http.HandlerFunc) http.Handler { return web.Browser(f, h.cookies.Secure) }
	mux.Handle("/inscription", page(h.handleRegister))
	mux.Handle("/inscription/code", page(h.handleCode))
	mux.Handle("/verification", page(h.handleProofing))
	mux.Handle("GET /conditions", page(h.handleTerms))
	if h.cfg.MailCodeKey != nil {
		mux.Handle("/verification/courrier", page(h.handleLetterCode))
		mux.Handle("/verification/courrier/demande", page(h.handleLetterRequest))
	}
	mux.Handle("/mot-de-passe-oublie", page(h.handleResetRequest))
	mux.Handle("/mot-de-passe-oublie/nouveau", page(h.handleResetPassword))
}

// FieldError is an error shown next to a field and in the summary.
type FieldError struct {
	Field string // id of the input
	Msg   string // translated message
}

// form is what every page's template gets beside its own data.
type form struct {
	Errors []FieldError
	Alert  string // translated message shown at the top (role=alert)
}

// Err returns the message of field, "" when none.
func (f form) Err(field string) string {
	for _, e := range f.Errors {
		if e.Field == field {
			return e.Msg
		}
	}
	return ""
}

func (h *Handler) lang(w http.ResponseWriter, r *http.Request) string {
	l := web.PickLang(r, "")
	if r.URL.Query().Has("lang") {
		http.SetCookie(w, &http.Cookie{Name: web.LangCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: h.cookies.Secure, SameSite: http.SameSiteLaxMode})
	}
	return l
}

func (h *Handler) t(lang, key string, args ...any) string {
	return h.rd.Catalog().T(lang, key, args...)
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, lang string, status int, name, title string, data any) {
	pg := h.rd.NewPage(r, lang, title, data)
	pg.CSRF = h.csrf.Token(w, r)
	h.rd.Render(w, status, name, pg)
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, lang string, status int, key string) {
	pg := h.rd.NewPage(r, lang, "error.title", struct{ Message string }{key})
	h.rd.Render(w, status, "error", pg)
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, lang, msg string, err error) {
	h.log.ErrorContext(r.Context(), msg, "request_id", web.RequestID(r.Context()), "err", err)
	h.errorPage(w, r, lang, http.StatusInternalServerError, "error.internal")
}

// remoteAddr is what the per-address limits of account creation and
// proofing count a request under (an IPv6 client by its /64).
func remoteAddr(r *http.Request) string { return web.LimitAddress(r) }

var reqRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// authReq keeps a pending authorization request's identifier when it is
// well-formed (the login page checks it exists).
func authReq(s string) string {
	if reqRE.MatchString(s) {
		return s
	}
	return ""
}

// ---- /conditions

func (h *Handler) handleTerms(w http.ResponseWriter, r *http.Request) {
	lang := h.lang(w, r)
	h.render(w, r, lang, http.StatusOK, "signup_terms", "terms.title", nil)
}

// ---- /inscription

type registerData struct {
	form
	Req   string
	Email string
	Terms bool
}

func (h *Handler) handleRegister(w http.ResponseWriter, r *http.Request) {
	lang := h.lang(w, r)
	switch r.Method {
	case http.MethodGet:
		h.render(w, r, lang, http.StatusOK, "signup_register", "signup.title",
			registerData{Req: authReq(r.URL.Query().Get("req"))})
	case http.MethodPost:
		h.postRegister(w, r, lang)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// normEmail trims and lower-cases an address and checks its form.
func normEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 || !strings.Contains(s[strings.LastIndex(s, "@"):], ".") {
		return s, false
	}
	return s, true
}

func (h *Handler) postRegister(w http.ResponseWriter, r *http.Request, lang string) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, lang, http.StatusRequestEntityTooLarge, "error.bad_request")
		return
	}
	d := registerData{Req: authReq(r.PostForm.Get("req")), Terms: r.PostForm.Get("terms") == "yes"}
	email, okEmail := normEmail(r.PostForm.Get("email"))
	d.Email = email
	password := r.PostForm.Get("password")
	if !h.csrf.Valid(r) {
		d.Alert = h.t(lang, "error.csrf")
		h.render(w, r, lang, http.StatusForbidden, "signup_register", "signup.title", d)
		return
	}
	if !okEmail {
		d.Errors = append(d.Errors, FieldError{"email", h.t(lang, "signup.error.email")})
	}
	if reason := CheckPassword(password, email); reason != "" {
		d.Errors = append(d.Errors, FieldError{"password", h.t(lang, reason, MinPassword)})
	} else if r.PostForm.Get("password2") != password {
		d.Errors = append(d.Errors, FieldError{"password2", h.t(lang, "signup.error.password_mismatch")})
	}
	if !d.Terms {
		d.Errors = append(d.Errors, FieldError{"terms", h.t(lang, "signup.error.terms")})
	}
	if len(d.Errors) > 0 {
		h.render(w, r, lang, http.StatusBadRequest, "signup_register", "signup.title", d)
		return
	}
	now := h.cfg.Now().UTC()
	n, err := h.cfg.Counter.Hit(ctx, "signup:addr:"+remoteAddr(r), time.Hour, now)
	if err != nil {
		h.internal(w, r, lang, "signup: rate limit", err)
		return
	}
	if n > h.cfg.SignupsPerHour {
		w.Header().Set("Retry-After", "3600")
		d.Alert = h.t(lang, "signup.error.throttled")
		h.render(w, r, lang, http.StatusTooManyRequests, "signup_register", "signup.title", d)
		return
	}
	// The password is hashed whether or not the email has an account: the
	// same work, the same answer.
	hash, err := h.cfg.Hasher.Hash(password)
	if err != nil {
		h.internal(w, r, lang, "signup: hash password", err)
		return
	}
	existing, err := h.st.GetAccountByEmail(ctx, email)
	if err != nil && !errors.Is(err, sqin.ErrNotFound) {
		h.internal(w, r, lang, "signup: look up email", err)
		return
	}
	token := keys.Random(32)
	f := &Flow{ID: keys.Hash(token), Email: email, PasswordHash: hash, Locale: lang, AuthRequest: d.Req,
		CodeExpiresAt: now.Add(h.cfg.CodeTTL), TermsAcceptedAt: now, CreatedAt: now, ExpiresAt: now.Add(h.cfg.FlowTTL)}
	var m *Mail
	if existing != nil {
		// Someone tried to create an account with an address that has one:
		// its owner is told, the page goes on as if nothing happened.
		f.Duplicate, f.PasswordHash = true, ""
		ml := cmpLang(existing.Locale, lang)
		m = h.newMail(existing.Email, "duplicate", ml, "mail.duplicate.subject", "mail.duplicate.body",
			h.cfg.Issuer+"/login", h.cfg.Issuer+"/inscription")
	} else {
		code, err := sixDigits()
		if err != nil {
			h.internal(w, r, lang, "signup: code", err)
			return
		}
		f.CodeHash = codeHash(f.ID, code)
		m = h.newMail(email, "code", lang, "mail.code.subject", "mail.code.body", code, int(h.cfg.CodeTTL.Minutes()))
		code = ""
	}
	if err := h.st.CreateSignupFlow(ctx, f, m); err != nil {
		h.internal(w, r, lang, "signup: create flow", err)
		return
	}
	if h.cfg.Mailer != nil {
		h.cfg.Mailer.Wake()
	}
	h.cookies.Set(w, flowCookie, token, 0)
	h.log.InfoContext(ctx, "sign-up started", "request_id", web.RequestID(ctx))
	http.Redirect(w, r, "/inscription/code", http.StatusSeeOther)
}

func cmpLang(a, b string) string {
	if a == "fr" || a == "en" {
		return a
	}
	return b
}

func (h *Handler) newMail(to, kind, lang, subject, body string, args ...any) *Mail {
	m := &Mail{ID: keys.Random(16), To: to, Kind: kind, Subject: h.t(lang, subject), Body: h.t(lang, body, args...),
		CreatedAt: h.cfg.Now().UTC()}
	if h.cfg.MailSealer != nil {
		m.Body = SealBody(h.cfg.MailSealer, m)
	}
	return m
}

// sixDigits returns a uniformly random 6-digit code.
func sixDigits() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// codeHash binds the code to its flow: a 6-digit code alone has too little
// entropy for a bare hash to hide it, so the flow's identifier salts it.
func codeHash(flowID, code string) string {
	m := hmac.New(sha256.New, []byte(flowID))
	m.Write([]byte("sqin-signup-code/v1\x00" + code))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// flow returns the browser's registration, nil when it has none (or an
// expired one).
func (h *Handler) flow(r *http.Request) (*Flow, error) {
	tok := h.cookies.Get(r, flowCookie)
	if tok == "" || len(tok) > 100 {
		return nil, nil
	}
	f, err := h.st.GetSignupFlow(r.Context(), keys.Hash(tok), h.cfg.Now())
	if errors.Is(err, sqin.ErrNotFound) {
		return nil, nil
	}
	return f, err
}

// ---- /inscription/code

type codeData struct {
	form
	Email   string
	Minutes int
}

func (h *Handler) handleCode(w http.ResponseWriter, r *http.Request) {
	lang := h.lang(w, r)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f, err := h.flow(r)
	if err != nil {
		h.internal(w, r, lang, "signup: read flow", err)
		return
	}
	if f == nil {
		h.errorPage(w, r, lang, http.StatusBadRequest, "signup.error.flow_expired")
		return
	}
	if f.AccountID != "" {
		http.Redirect(w, r, "/verification", http.StatusSeeOther)
		return
	}
	d := codeData{Email: f.Email, Minutes: int(h.cfg.CodeTTL.Minutes())}
	if r.Method == http.MethodGet {
		h.render(w, r, lang, http.StatusOK, "signup_code", "signup.code.title", d)
		return
	}
	if err := r.ParseForm(); err != nil || !h.csrf.Valid(r) {
		d.Alert = h.t(lang, "error.csrf")
		h.render(w, r, lang, http.StatusForbidden, "signup_code", "signup.code.title", d)
		return
	}
	ctx := r.Context()
	code := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		if r == ' ' || r == '-' {
			return -1
		}
		return 'x'
	}, r.PostForm.Get("code"))
	if len(code) != 6 || strings.Contains(code, "x") {
		d.Errors = []FieldError{{"code", h.t(lang, "signup.code.error.format")}}
		h.render(w, r, lang, http.StatusBadRequest, "signup_code", "signup.code.title", d)
		return
	}
	now := h.cfg.Now().UTC()
	n, err := h.st.CountSignupCodeAttempt(ctx, f.ID, now)
	if err != nil {
		h.internal(w, r, lang, "signup: count attempt", err)
		return
	}
	if n > h.cfg.MaxCodeAttempts {
		h.cookies.Clear(w, flowCookie)
		h.errorPage(w, r, lang, http.StatusTooManyRequests, "signup.code.error.attempts")
		return
	}
	if !now.Before(f.CodeExpiresAt) {
		d.Errors = []FieldError{{"code", h.t(lang, "signup.code.error.expired")}}
		h.render(w, r, lang, http.StatusBadRequest, "signup_code", "signup.code.title", d)
		return
	}
	want := f.CodeHash
	if f.Duplicate || want == "" {
		want = codeHash(f.ID, "no code") // never equal; the same work
	}
	if subtle.ConstantTimeCompare([]byte(codeHash(f.ID, code)), []byte(want)) != 1 {
		left := h.cfg.MaxCodeAttempts - n
		d.Errors = []FieldError{{"code", h.t(lang, "signup.code.error.wrong", left)}}
		h.render(w, r, lang, http.StatusBadRequest, "signup_code", "signup.code.title", d)
		return
	}
	acct := &sqin.Account{ID: "acct-" + keys.Random(16), Email: f.Email, EmailVerified: true, PasswordHash: f.PasswordHash,
		LoA: sqin.LoA1, Locale: f.Locale, CreatedAt: now, UpdatedAt: now}
	created := h.withAudit(ctx, acct.ID, ActionAccountCreated, audit.Success, "email verified by code; loa=1", "")
	switch err := h.st.CompleteSignup(created, f.ID, acct, now); {
	case errors.Is(err, sqin.ErrConflict):
		// Another registration of this address finished first: whoever
		// holds the mailbox has an account already.
		h.cookies.Clear(w, flowCookie)
		h.errorPage(w, r, lang, http.StatusConflict, "signup.error.already")
		return
	case errors.Is(err, sqin.ErrNotFound):
		h.errorPage(w, r, lang, http.StatusBadRequest, "signup.error.flow_expired")
		return
	case err != nil:
		h.internal(w, r, lang, "signup: create account", err)
		return
	}
	h.log.InfoContext(ctx, "account created", "request_id", web.RequestID(ctx))
	http.Redirect(w, r, "/verification", http.StatusSeeOther)
}

// event builds an audit event of the account's citizen; nil without an
// audit log.
func (h *Handler) event(ctx context.Context, accountID, action, outcome, detail, legalBasis string) *audit.Event {
	if h.cfg.Pseudonyms == nil {
		return nil
	}
	e := &audit.Event{RequestID: web.RequestID(ctx), Actor: h.cfg.Pseudonyms.Citizen(accountID), Action: action,
		Outcome: outcome, Detail: detail, LegalBasis: legalBasis}
	e.Subject = e.Actor.ID
	return e
}

// personEvent builds an audit event about a registry person, made by the
// account's citizen: its subject is the person, so the citizen who acted
// does not read it (/api/v1/me/events) unless the person is theirs. nil
// without an audit log or a person.
func (h *Handler) personEvent(ctx context.Context, accountID, personID, action, outcome, detail, legalBasis string) *audit.Event {
	e := h.event(ctx, accountID, action, outcome, detail, legalBasis)
	if e == nil || personID == "" {
		return nil
	}
	e.Subject = h.cfg.Pseudonyms.Person(personID)
	return e
}

// withAudit returns ctx carrying the event, for the store's next write.
func (h *Handler) withAudit(ctx context.Context, accountID, action, outcome, detail, legalBasis string) context.Context {
	if e := h.event(ctx, accountID, action, outcome, detail, legalBasis); e != nil {
		return audit.With(ctx, *e)
	}
	return ctx
}

// ---- /verification

// secretView is one secret type as the page shows it.
type secretView struct {
	ID, Label, Help, Holder, Image string
	Fields                         []fieldView
	Chosen                         bool
	Status                         string // translated outcome of the last check
	StatusKind                     string // ok, error, info
	Proved                         bool
}

type fieldView struct {
	ID, Name, Label, Hint, Value, Autocomplete, Error string
}

type proofingData struct {
	form
	Family, Given, Birth string
	Secrets              []secretView
	Proved, Needed       int
	Done                 bool
	MailCode             bool   // codes by mail are offered
	SignedIn             bool   // the citizen was signed in: Next goes on without the form
	Next                 string // where the citizen goes after success
}

func (h *Handler) handleProofing(w http.ResponseWriter, r *http.Request) {
	lang := h.lang(w, r)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	acct, f, err := h.current(r)
	if err != nil {
		h.internal(w, r, lang, "signup: current account", err)
		return
	}
	if acct == nil {
		h.errorPage(w, r, lang, http.StatusBadRequest, "signup.error.flow_expired")
		return
	}
	d := h.proofingView(lang, r)
	d.Next = next(f)
	if acct.LoA >= sqin.LoA2 {
		d.Done = true
		if h.cfg.Sessions != nil {
			// Shown again (a reload): signed in already, the request (bound
			// to that session when proofing ended) resumes from here.
			if id, _ := h.cfg.Sessions.SessionAccount(r); id == acct.ID {
				d.SignedIn, d.Next = true, "/"
				req := authReq(h.cookies.Get(r, resumeCookie))
				if f != nil {
					req = f.AuthRequest
				}
				if req != "" {
					d.Next = "/authorize/resume?req=" + url.QueryEscape(req)
				}
			}
		}
		h.render(w, r, lang, http.StatusOK, "signup_done", "signup.done.title", d)
		return
	}
	if r.Method == http.MethodGet {
		h.render(w, r, lang, http.StatusOK, "signup_proofing", "proofing.title", d)
		return
	}
	if err := r.ParseForm(); err != nil || !h.csrf.Valid(r) {
		d.Alert = h.t(lang, "error.csrf")
		h.render(w, r, lang, http.StatusForbidden, "signup_proofing", "proofing.title", d)
		return
	}
	h.postProofing(w, r, lang, f, acct)
}

// current returns the account the browser works on: the one signed in
// (f is then nil), or else the one its registration created (with the
// registration); nil when neither. A registration of another account than
// the one signed in is ignored: the signed-in citizen is the one at the
// keyboard.
func (h *Handler) current(r *http.Request) (acct *sqin.Account, f *Flow, err error) {
	f, err = h.flow(r)
	if err != nil {
		return nil, nil, err
	}
	id := ""
	if f != nil {
		id = f.AccountID
	}
	if h.cfg.Sessions != nil {
		if sid, _ := h.cfg.Sessions.SessionAccount(r); sid != "" && sid != id {
			id, f = sid, nil
		}
	}
	if id == "" {
		f = nil
	}
	if id == "" {
		return nil, f, nil
	}
	acct, err = h.st.GetAccount(r.Context(), id)
	if errors.Is(err, sqin.ErrNotFound) {
		return nil, f, nil
	}
	return acct, f, err
}

func next(f *Flow) string {
	if f != nil && f.AuthRequest != "" {
		return "/login?req=" + url.QueryEscape(f.AuthRequest)
	}
	return "/"
}

// proofingView builds the page from the catalogue, with the values posted.
func (h *Handler) proofingView(lang string, r *http.Request) proofingData {
	d := proofingData{Needed: h.needed(), MailCode: h.cfg.MailCodeKey != nil}
	get := func(k string) string {
		if r.Method == http.MethodPost {
			return r.PostFormValue(k)
		}
		return ""
	}
	d.Family, d.Given, d.Birth = get("family_name"), get("given_names"), get("birth_date")
	for _, s := range h.cfg.Catalogue.Secrets {
		v := secretView{ID: s.ID, Label: s.Label.In(lang), Help: s.Help.In(lang), Holder: s.Holder, Image: s.Image,
			Chosen: get("use-"+s.ID) == "yes"}
		for _, fl := range s.Fields {
			v.Fields = append(v.Fields, fieldView{ID: s.ID + "-" + fl.Name, Name: s.ID + "." + fl.Name,
				Label: fl.Label.In(lang), Hint: fl.Hint.In(lang), Autocomplete: cmpStr(fl.Autocomplete, "off")})
		}
		d.Secrets = append(d.Secrets, v)
	}
	return d
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// needed is the smallest number of proofs a level-2 rule asks for (shown
// to the citizen as a goal).
func (h *Handler) needed() int {
	n := 0
	for _, rl := range h.cfg.Catalogue.Ladder {
		if rl.Level == sqin.LoA2 && !slices.Contains(rl.From, proofing.ProofMailCode) && (n == 0 || rl.Min < n) {
			n = rl.Min
		}
	}
	return max(n, 1)
}

// MinAge is the age from which a person may have an account.
const MinAge = 14

var birthRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// IdentityKey is the keyed hash of a claimed identity (names in their
// canonical form, registry.NameKey, the one the registry lookup matches
// with, and birth date): the key of the per-person limits for an identity
// the registry does not know.
func IdentityKey(key []byte, family, given, birth string) string {
	return keyOf(key, registry.NameKey(family), registry.NameKey(given), birth)
}

// PersonKey is the key of the per-person limits for a registry person:
// every spelling that designates the person counts under it.
func PersonKey(key []byte, personID string) string {
	return keyOf(key, "\x00person", personID)
}

func keyOf(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, s := range parts {
		m.Write([]byte(strconv.Itoa(len(s)) + ":" + s))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// limitKey is the per-person limit key of a claimed identity: the person's
// when the registry knows it, else the claimed identity's.
func (h *Handler) limitKey(personID, family, given, birth string) string {
	if personID != "" {
		return PersonKey(h.cfg.IdentityKey, personID)
	}
	return IdentityKey(h.cfg.IdentityKey, family, given, birth)
}

// checkIdentity validates the claimed identity (names and birth date),
// adds an error per field to errs and returns the normalised values.
func (h *Handler) checkIdentity(lang string, errs *[]FieldError, family, given, birth string) (string, string, string) {
	family = registry.NormalizeName(family)
	given = registry.NormalizeName(given)
	birth = strings.TrimSpace(birth)
	if family == "" || len(family) > 100 {
		*errs = append(*errs, FieldError{"family_name", h.t(lang, "proofing.error.family")})
	}
	if given == "" || len(given) > 100 {
		*errs = append(*errs, FieldError{"given_names", h.t(lang, "proofing.error.given")})
	}
	bd, err := time.Parse(time.DateOnly, birth)
	switch {
	case !birthRE.MatchString(birth) || err != nil || bd.After(h.cfg.Now()) || bd.Year() < 1900:
		*errs = append(*errs, FieldError{"birth_date", h.t(lang, "proofing.error.birth")})
	case bd.AddDate(MinAge, 0, 0).After(h.cfg.Now()):
		// SAG accounts are for people aged 14 and over (consent to care).
		*errs = append(*errs, FieldError{"birth_date", h.t(lang, "proofing.error.age", MinAge)})
	}
	return family, given, birth
}

// person looks the claimed identity up in the registry: its person and
// attribute values, or "" and nil when the registry knows no such person.
func (h *Handler) person(ctx context.Context, family, given, birth string) (string, map[string]string, error) {
	personID, err := h.st.FindPersonByNameAndBirthDate(ctx, family, given, birth)
	if errors.Is(err, sqin.ErrNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("find person: %w", err)
	}
	e, err := h.st.GetRegistryEntry(ctx, personID)
	if err != nil {
		return "", nil, fmt.Errorf("read registry entry: %w", err)
	}
	attrs := map[string]string{}
	for _, a := range e.Attributes {
		attrs[a.Name] = a.Value
	}
	return personID, attrs, nil
}

// pad holds the answer until d after start (real time, whatever the
// handler's clock), so that its timing does not tell which path it took.
func pad(ctx context.Context, start time.Time, d time.Duration) {
	wait := time.Until(start.Add(d))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (h *Handler) postProofing(w http.ResponseWriter, r *http.Request, lang string, f *Flow, acct *sqin.Account) {
	ctx := r.Context()
	d := h.proofingView(lang, r)
	d.Next = next(f)
	family, given, birth := h.checkIdentity(lang, &d.Errors, d.Family, d.Given, d.Birth)
	chosen := 0
	for i := range d.Secrets {
		if d.Secrets[i].Chosen {
			chosen++
		}
	}
	if chosen == 0 {
		d.Errors = append(d.Errors, FieldError{"use-" + d.Secrets[0].ID, h.t(lang, "proofing.error.choose")})
	}
	if len(d.Errors) > 0 {
		h.render(w, r, lang, http.StatusBadRequest, "signup_proofing", "proofing.title", d)
		return
	}
	// From here the work depends on whether the person exists and which
	// secrets match: every answer takes at least the same time.
	defer pad(ctx, time.Now(), h.cfg.MinResponse*time.Duration(chosen+1))
	personID, attrs, err := h.person(ctx, family, given, birth)
	if err != nil {
		h.internal(w, r, lang, "signup: proofing", err)
		return
	}
	identity := h.limitKey(personID, family, given, birth)
	var proofs []string
	status := http.StatusOK
	for i := range d.Secrets {
		sv := &d.Secrets[i]
		if !sv.Chosen {
			continue
		}
		st, _ := h.cfg.Catalogue.Secret(sv.ID)
		values := map[string]string{}
		for _, fl := range st.Fields {
			values[fl.Name] = r.PostFormValue(sv.ID + "." + fl.Name)
		}
		res, err := h.cfg.Prover.Check(ctx, proofing.Attempt{SecretType: st.ID, Values: values, AccountID: acct.ID,
			Address: remoteAddr(r), Identity: identity, PersonID: personID, Person: attrs})
		if err != nil {
			h.internal(w, r, lang, "signup: proofing check", err)
			return
		}
		// The event names the secret type and the outcome, never a value;
		// the legal basis is the citizen's consent to this check.
		outcome := audit.Failure
		if res.Outcome == proofing.Match {
			outcome = audit.Success
		} else if res.Outcome == proofing.Locked {
			outcome = audit.Denied
		}
		ev := h.event(ctx, acct.ID, ActionProofAttempt, outcome, "secret="+st.ID+" holder="+st.Holder+" outcome="+res.Outcome.String(),
			"consent:proofing:"+st.ID)
		switch res.Outcome {
		case proofing.Match:
			wctx := ctx
			if ev != nil {
				wctx = audit.With(ctx, *ev)
			}
			p, err := h.st.AddProof(wctx, acct.ID, personID, st.ID, h.cfg.Now().UTC())
			if err != nil {
				h.internal(w, r, lang, "signup: record proof", err)
				return
			}
			proofs = p
			sv.Status, sv.StatusKind, sv.Proved = h.t(lang, "proofing.outcome.match"), "ok", true
		default:
			if err := h.appendEvent(ctx, ev); err != nil {
				h.internal(w, r, lang, "signup: audit attempt", err)
				return
			}
			sv.StatusKind = "error"
			switch res.Outcome {
			case proofing.NoMatch:
				sv.Status = h.t(lang, "proofing.outcome.no_match")
			case proofing.Unavailable:
				sv.Status = h.t(lang, "proofing.outcome.unavailable", st.Holder)
			case proofing.Locked:
				sv.Status = h.t(lang, "proofing.outcome.locked", h.when(lang, res.RetryAfter))
				status = http.StatusTooManyRequests
				w.Header().Set("Retry-After", strconv.Itoa(int(res.RetryAfter.Seconds())))
			case proofing.BadFormat:
				sv.Status = h.t(lang, "proofing.outcome.bad_format")
				for j := range sv.Fields {
					if sv.Fields[j].Name == sv.ID+"."+res.Field {
						sv.Fields[j].Error = h.t(lang, "proofing.outcome.bad_format")
						d.Errors = append(d.Errors, FieldError{sv.Fields[j].ID, sv.Label + " : " + h.t(lang, "proofing.outcome.bad_format")})
					}
				}
			}
		}
		// Values are never shown back: the citizen types them again.
	}
	if personID != "" && proofs == nil {
		// Earlier proofs of this identity (a previous submission) count too.
		p, err := h.st.Proofs(ctx, acct.ID, personID)
		if err != nil {
			h.internal(w, r, lang, "signup: read proofs", err)
			return
		}
		proofs = p
	}
	d.Proved = len(proofs)
	for i := range d.Secrets {
		if slices.Contains(proofs, d.Secrets[i].ID) {
			d.Secrets[i].Proved = true
		}
	}
	level := h.cfg.Catalogue.Level(proofs)
	if level < sqin.LoA2 {
		d.Alert = h.t(lang, "proofing.progress", d.Proved, d.Needed)
		h.render(w, r, lang, status, "signup_proofing", "proofing.title", d)
		return
	}
	h.finishProofing(w, r, lang, f, acct, personID, level, "secrets:"+strings.Join(proofs, ","))
}

// appendEvent commits events that go with no write of their own (nil
// ones are skipped).
func (h *Handler) appendEvent(ctx context.Context, evs ...*audit.Event) error {
	evs = slices.DeleteFunc(evs, func(e *audit.Event) bool { return e == nil })
	if len(evs) == 0 || h.cfg.Batcher == nil {
		return nil
	}
	if err := h.cfg.Batcher.Append(ctx, evs...); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// withEvents returns ctx carrying the events (nil ones skipped), for the
// store's next write.
func withEvents(ctx context.Context, evs []*audit.Event) context.Context {
	var out []audit.Event
	for _, e := range evs {
		if e != nil {
			out = append(out, *e)
		}
	}
	if len(out) == 0 {
		return ctx
	}
	return audit.With(ctx, out...)
}

// finishProofing links the account to the person at level, or, when the
// person already has another account, leaves the account as it is and
// writes to that other account's owner to offer recovery. The browser
// sees the same page either way (saying both), so that the person typing
// does not learn whether the identity had an account; the citizen is then
// signed in at the account's real level and continues to the service.
func (h *Handler) finishProofing(w http.ResponseWriter, r *http.Request, lang string, f *Flow, acct *sqin.Account, personID string,
	level sqin.LoA, how string) {
	ctx := r.Context()
	now := h.cfg.Now().UTC()
	proofed := h.withAudit(ctx, acct.ID, ActionAccountProofed, audit.Success, "loa="+strconv.Itoa(int(level))+" by "+how, "")
	res, err := h.st.ProveAccount(proofed, acct.ID, personID, level, how, now, func(other *sqin.Account) *Mail {
		return h.newMail(other.Email, "person_taken", cmpLang(other.Locale, lang), "mail.person_taken.subject",
			"mail.person_taken.body", h.cfg.Issuer+"/login", h.cfg.Issuer+"/mot-de-passe-oublie")
	})
	if err != nil {
		h.internal(w, r, lang, "signup: prove account", err)
		return
	}
	if res.OtherAccount != "" {
		// About the person (whose owner reads it), not the account: the
		// citizen who typed is not told by an event that the person has
		// an account.
		e := h.personEvent(ctx, acct.ID, personID, ActionAccountProofed, audit.Denied,
			"proved by an account that was not linked: the person already has one; its owner was told", "")
		if err := h.appendEvent(ctx, e); err != nil {
			h.log.WarnContext(ctx, "signup: audit", "request_id", web.RequestID(ctx), "err", err)
		}
		if h.cfg.Mailer != nil {
			h.cfg.Mailer.Wake()
		}
	} else {
		h.log.InfoContext(ctx, "account proofed", "request_id", web.RequestID(ctx), "loa", int(res.LoA))
	}
	d := proofingData{Done: true, Next: next(f)}
	// Proofing ends the registration: its flow, which signed this browser
	// in, is deleted, so that it signs nobody in again.
	authReq, amr, authTime := "", []string(nil), time.Time{}
	if f != nil {
		if err := h.st.DeleteSignupFlow(ctx, f.ID); err != nil {
			h.internal(w, r, lang, "signup: end the registration", err)
			return
		}
		h.cookies.Clear(w, flowCookie)
		// What authenticated the citizen in this flow: the email code,
		// entered when the account was created. (A signed-in citizen's
		// session keeps its own amr and time.)
		authReq, amr, authTime = f.AuthRequest, []string{"otp"}, acct.CreatedAt
	}
	if h.cfg.Sessions != nil {
		nxt, err := h.cfg.Sessions.SignIn(w, r, acct.ID, amr, authTime, authReq)
		if err != nil {
			h.internal(w, r, lang, "signup: sign in", err)
			return
		}
		d.Next, d.SignedIn = nxt, true
		if authReq != "" {
			h.cookies.Set(w, resumeCookie, authReq, 0)
		}
	}
	h.render(w, r, lang, http.StatusOK, "signup_done", "signup.done.title", d)
}

// when says, in lang, when a locked check may be tried again.
func (h *Handler) when(lang string, after time.Duration) string {
	at := h.cfg.Now().Add(after)
	loc, err := time.LoadLocation("America/Toronto")
	if err != nil {
		loc = time.UTC
	}
	at = at.In(loc)
	if lang == "en" {
		return at.Format("January 2, 2006 at 3:04 PM")
	}
	return strconv.Itoa(at.Day()) + " " + frMonths[at.Month()-1] + " " + strconv.Itoa(at.Year()) + " à " + at.Format("15 h 04")
}

var frMonths = []string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
	"octobre", "novembre", "décembre"}
