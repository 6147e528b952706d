// Package demo holds the demonstration relying party that `sqin serve
// --demo` starts next to the OpenID Provider: « Service en ligne de
// démonstration — Ministère de la Famille », a small online service of a
// public body that lets its users sign in with SQIN.
//
// It is deliberately written as any third party would write it, with
// github.com/coreos/go-oidc and golang.org/x/oauth2 only, and shares no
// code with SQIN's provider: what works here works for a service that
// never saw SQIN's source.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// RPConfig configures the demonstration relying party.
type RPConfig struct {
	// Issuer is the OpenID Provider's issuer, e.g. http://127.0.0.1:8080;
	// its discovery document is read on first use.
	Issuer string
	// ClientID and ClientSecret are the client registered with the
	// provider. An empty secret makes a public client (PKCE only).
	ClientID     string
	ClientSecret string
	// BaseURL is where browsers reach this service, e.g.
	// http://127.0.0.1:8081. The client must be registered with the
	// redirect URI BaseURL + "/callback" and the post-logout redirect URI
	// BaseURL + "/".
	BaseURL string
	// Scopes to request; default openid, profile, email and address.
	// openid is always requested.
	Scopes []string
	// HTTPClient makes the calls to the provider (discovery, JWKS, token,
	// UserInfo); default a client with a 10-second timeout.
	HTTPClient *http.Client
}

// RP is the demonstration relying party.
type RP struct {
	cfg        RPConfig
	client     *http.Client
	scopes     []string
	secure     bool // BaseURL is https
	pages      map[string]*template.Template
	log        *slog.Logger
	now        func() time.Time
	retryDelay time.Duration // between discovery attempts

	discMu sync.Mutex
	disc   atomic.Pointer[discovered]

	flows    *memStore[flow]
	sessions *memStore[session]
}

// discovered is what the provider's discovery document gives.
type discovered struct {
	provider   *oidc.Provider
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string
	origins    []string // of the provider's browser-facing endpoints
}

// flow is a sign-in under way: what /login sent, to check what /callback
// receives.
type flow struct {
	state, nonce, verifier string
	acr, prompt            string
}

// session is a signed-in user of the demo service.
type session struct {
	idToken      string
	idClaims     []byte
	userinfo     []byte // nil when the UserInfo call failed
	acr          string
	requestedACR string
	scope        string
	csrf         string
}

// Cookie names. Browsers share cookies between ports of one host, and the
// provider runs on the same host in the demo: these names are the RP's own.
const (
	cookieFlow    = "sqin_demo_rp_flow"
	cookieSession = "sqin_demo_rp_session"
	cookieLogout  = "sqin_demo_rp_logout"
	cookieLang    = "sqin_demo_rp_lang"
)

const (
	flowTTL     = 10 * time.Minute
	sessionTTL  = time.Hour
	maxFlows    = 10000
	maxSessions = 10000
)

//go:embed templates/*.html static/style.css
var assets embed.FS

// NewRP returns the relying party; nothing is fetched until the first
// sign-in.
func NewRP(cfg RPConfig) *RP {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	rp := &RP{
		cfg:        cfg,
		client:     cfg.HTTPClient,
		secure:     strings.HasPrefix(cfg.BaseURL, "https://"),
		log:        slog.Default().With("component", "demo-rp"),
		now:        time.Now,
		retryDelay: 500 * time.Millisecond,
	}
	if rp.client == nil {
		rp.client = &http.Client{Timeout: 10 * time.Second}
	}
	rp.scopes = []string{oidc.ScopeOpenID}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{"profile", "email", "address"}
	}
	for _, s := range scopes {
		if !slices.Contains(rp.scopes, s) {
			rp.scopes = append(rp.scopes, s)
		}
	}
	rp.flows = newMemStore[flow](flowTTL, maxFlows, func() time.Time { return rp.now() })
	rp.sessions = newMemStore[session](sessionTTL, maxSessions, func() time.Time { return rp.now() })
	rp.pages = map[string]*template.Template{}
	funcs := template.FuncMap{"claimsTable": func(rows []claimRow, caption string, v *view) claimsTable {
		return claimsTable{Rows: rows, Caption: caption, V: v}
	}}
	for _, p := range []string{"home", "profile", "error"} {
		rp.pages[p] = template.Must(template.New(p).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+p+".html"))
	}
	return rp
}

// Handler serves the demo service's pages:
//
//	GET  /          home page, « Se connecter avec SQIN »
//	GET  /login     starts the authorization code flow (PKCE S256, state,
//	                nonce); optional acr (sent as acr_values) and prompt
//	GET  /callback  the redirect URI
//	GET  /profile   the claims received
//	POST /logout    local sign-out, then RP-initiated logout at the provider
//
// ?lang=en or ?lang=fr on any page switches the language (kept in a cookie).
func (rp *RP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", rp.home)
	mux.HandleFunc("GET /login", rp.login)
	mux.HandleFunc("GET /callback", rp.callback)
	mux.HandleFunc("GET /profile", rp.profile)
	mux.HandleFunc("POST /logout", rp.logout)
	mux.HandleFunc("GET /static/style.css", rp.style)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		rp.fail(w, r, http.StatusNotFound, "error.notfound.title", "error.notfound", false)
	})
	return rp.secureHeaders(mux)
}

// discover reads the provider's discovery document once, lazily: the
// provider may start at the same time as this service. A failure is not
// remembered; the next request tries again.
func (rp *RP) discover(ctx context.Context) (*discovered, error) {
	if d := rp.disc.Load(); d != nil {
		return d, nil
	}
	rp.discMu.Lock()
	defer rp.discMu.Unlock()
	if d := rp.disc.Load(); d != nil {
		return d, nil
	}
	var (
		p   *oidc.Provider
		err error
	)
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(rp.retryDelay):
			}
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		p, err = oidc.NewProvider(oidc.ClientContext(actx, rp.client), rp.cfg.Issuer)
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var meta struct {
		EndSession  string   `json:"end_session_endpoint"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, err
	}
	ep := p.Endpoint()
	switch {
	case rp.cfg.ClientSecret == "":
		ep.AuthStyle = oauth2.AuthStyleInParams // client_id only
	case len(meta.AuthMethods) == 0 || slices.Contains(meta.AuthMethods, "client_secret_basic"):
		ep.AuthStyle = oauth2.AuthStyleInHeader // the default when the list is absent
	case slices.Contains(meta.AuthMethods, "client_secret_post"):
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	d := &discovered{
		provider: p,
		oauth: oauth2.Config{
			ClientID:     rp.cfg.ClientID,
			ClientSecret: rp.cfg.ClientSecret,
			Endpoint:     ep,
			RedirectURL:  rp.cfg.BaseURL + "/callback",
			Scopes:       rp.scopes,
		},
		verifier:   p.Verifier(&oidc.Config{ClientID: rp.cfg.ClientID}),
		endSession: meta.EndSession,
	}
	for _, u := range []string{rp.cfg.Issuer, ep.AuthURL, meta.EndSession} {
		if o := origin(u); o != "" && !slices.Contains(d.origins, o) {
			d.origins = append(d.origins, o)
		}
	}
	rp.disc.Store(d)
	rp.log.Info("provider discovered", "issuer", rp.cfg.Issuer)
	return d, nil
}

func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || p.Host == "" {
		return ""
	}
	return p.Scheme + "://" + p.Host
}

// secureHeaders sets the headers every response carries.
func (rp *RP) secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Forms lead to the provider (sign-in, sign-out): allow its origin.
		formAction := "'self'"
		if o := origin(rp.cfg.Issuer); o != "" {
			formAction += " " + o
		}
		if d := rp.disc.Load(); d != nil {
			formAction = "'self' " + strings.Join(d.origins, " ")
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action "+formAction)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if rp.secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if l := r.URL.Query().Get("lang"); l == langFR || l == langEN {
			rp.setCookie(w, cookieLang, l, 365*24*3600)
		}
		next.ServeHTTP(w, r)
	})
}

// view is what every template receives.
type view struct {
	Lang      string
	OtherLang string
	SwitchURL string
	Title     string
	D         any // the page's own data
}

// T translates key into the page's language.
func (v *view) T(key string, args ...any) string { return t(v.Lang, key, args...) }

// langOf picks the page language: ?lang=, then the cookie, then French.
func langOf(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == langFR || l == langEN {
		return l
	}
	if c, err := r.Cookie(cookieLang); err == nil && c.Value == langEN {
		return langEN
	}
	return langFR
}

func (rp *RP) render(w http.ResponseWriter, r *http.Request, status int, page, titleKey string, data any) {
	lang := langOf(r)
	v := &view{Lang: lang, OtherLang: langEN, D: data}
	if lang == langEN {
		v.OtherLang = langFR
	}
	v.Title = t(lang, titleKey)
	path := "/"
	if r.Method == http.MethodGet && (r.URL.Path == "/profile" || r.URL.Path == "/") {
		path = r.URL.Path
	}
	v.SwitchURL = path + "?lang=" + v.OtherLang
	var buf bytes.Buffer
	if err := rp.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		rp.log.Error("render", "page", page, "err", err)
		http.Error(w, t(lang, "error.internal"), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Language", lang)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage is the data of the error template.
type errorPage struct {
	Message  string
	Code     string // OAuth error code, when the provider sent one
	Detail   string // the provider's description
	RetryURL string
}

// fail shows an error page; retry adds a link to a new sign-in.
func (rp *RP) fail(w http.ResponseWriter, r *http.Request, status int, titleKey, msgKey string, retry bool) {
	rp.failPage(w, r, status, titleKey, msgKey, &errorPage{RetryURL: retryURL(retry, "", "")})
}

// failPage shows an error page; e.Code and e.Detail come from the provider
// and are shown as they are (escaped, the detail shortened).
func (rp *RP) failPage(w http.ResponseWriter, r *http.Request, status int, titleKey, msgKey string, e *errorPage) {
	e.Message = t(langOf(r), msgKey)
	e.Code = shorten(e.Code, 64)
	e.Detail = shorten(e.Detail, 300)
	rp.render(w, r, status, "error", titleKey, e)
}

// shorten cuts s to at most n bytes on a character boundary.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func retryURL(retry bool, acr, prompt string) string {
	if !retry {
		return ""
	}
	q := url.Values{}
	if acr != "" {
		q.Set("acr", acr)
	}
	if prompt != "" && prompt != "none" {
		q.Set("prompt", prompt)
	}
	if len(q) == 0 {
		return "/login"
	}
	return "/login?" + q.Encode()
}

type homePage struct {
	SignedIn  bool
	LoggedOut bool
	ACRs      []acrChoice
}

type acrChoice struct {
	Value, LabelKey, ID string
	Checked             bool
}

func (rp *RP) home(w http.ResponseWriter, r *http.Request) {
	p := &homePage{ACRs: []acrChoice{
		{"", "home.acr.none", "acr-none", false},
		{"urn:sqin:loa:1", "home.acr.1", "acr-1", false},
		{"urn:sqin:loa:2", "home.acr.2", "acr-2", true},
		{"urn:sqin:loa:3", "home.acr.3", "acr-3", false},
	}}
	if _, ok := rp.currentSession(r); ok {
		p.SignedIn = true
	}
	if st := r.URL.Query().Get("state"); st != "" {
		if c, err := r.Cookie(cookieLogout); err == nil && equal(st, c.Value) {
			p.LoggedOut = true
			rp.clearCookie(w, cookieLogout)
		}
	}
	rp.render(w, r, http.StatusOK, "home", "home.title", p)
}

// validACRValues accepts a space-separated list of URIs or names.
func validACRValues(s string) bool {
	if len(s) > 512 {
		return false
	}
	for _, v := range strings.Fields(s) {
		for i := 0; i < len(v); i++ {
			if c := v[i]; c <= ' ' || c > '~' || c == '"' || c == '<' || c == '>' || c == '\\' {
				return false
			}
		}
	}
	return strings.TrimSpace(s) != ""
}

var prompts = []string{"none", "login", "consent", "select_account"}

func validPrompt(s string) bool {
	f := strings.Fields(s)
	for _, p := range f {
		if !slices.Contains(prompts, p) {
			return false
		}
	}
	return len(f) > 0 && (len(f) == 1 || !slices.Contains(f, "none"))
}

func (rp *RP) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	acr := strings.Join(strings.Fields(q.Get("acr")), " ")
	prompt := strings.Join(strings.Fields(q.Get("prompt")), " ")
	if (q.Get("acr") != "" && !validACRValues(acr)) || (q.Get("prompt") != "" && !validPrompt(prompt)) {
		rp.fail(w, r, http.StatusBadRequest, "error.title", "error.badparam", true)
		return
	}
	d, err := rp.discover(r.Context())
	if err != nil {
		rp.log.Warn("discovery failed", "issuer", rp.cfg.Issuer, "err", err)
		rp.failPage(w, r, http.StatusServiceUnavailable, "error.title", "error.discovery",
			&errorPage{RetryURL: retryURL(true, acr, prompt)})
		return
	}
	f := flow{state: rand.Text(), nonce: rand.Text(), verifier: oauth2.GenerateVerifier(), acr: acr, prompt: prompt}
	id, err := rp.flows.put(f)
	if err != nil {
		rp.fail(w, r, http.StatusServiceUnavailable, "error.title", "error.busy", false)
		return
	}
	rp.setCookie(w, cookieFlow, id, int(flowTTL/time.Second))
	locales := "fr-CA fr en"
	if langOf(r) == langEN {
		locales = "en-CA en fr"
	}
	opts := []oauth2.AuthCodeOption{
		oidc.Nonce(f.nonce),
		oauth2.S256ChallengeOption(f.verifier),
		oauth2.SetAuthURLParam("ui_locales", locales),
	}
	if acr != "" {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", acr))
	}
	if prompt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", prompt))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, d.oauth.AuthCodeURL(f.state, opts...), http.StatusFound)
}

func (rp *RP) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// The flow is single use, whatever the outcome.
	var (
		f  flow
		ok bool
	)
	if c, err := r.Cookie(cookieFlow); err == nil {
		f, ok = rp.flows.take(c.Value)
	}
	rp.clearCookie(w, cookieFlow)
	if !ok {
		rp.fail(w, r, http.StatusBadRequest, "error.title", "error.expired", true)
		return
	}
	retry := retryURL(true, f.acr, f.prompt)
	bad := func(status int, msgKey string, e *errorPage) {
		if e == nil {
			e = &errorPage{}
		}
		e.RetryURL = retry
		rp.failPage(w, r, status, "error.title", msgKey, e)
	}
	if !equal(q.Get("state"), f.state) {
		bad(http.StatusBadRequest, "error.state", nil)
		return
	}
	// RFC 9207: when the provider names itself, it must be the one we asked.
	if q.Has("iss") && q.Get("iss") != rp.cfg.Issuer {
		bad(http.StatusBadRequest, "error.issuer", nil)
		return
	}
	if code := q.Get("error"); code != "" {
		key, ok := opErrorKeys[code]
		if !ok {
			key = "op.other"
		}
		bad(http.StatusBadRequest, key, &errorPage{Code: code, Detail: q.Get("error_description")})
		return
	}
	code := q.Get("code")
	if code == "" {
		bad(http.StatusBadRequest, "error.nocode", nil)
		return
	}
	d, err := rp.discover(r.Context())
	if err != nil {
		rp.log.Warn("discovery failed", "issuer", rp.cfg.Issuer, "err", err)
		bad(http.StatusServiceUnavailable, "error.discovery", nil)
		return
	}
	ctx := oidc.ClientContext(r.Context(), rp.client)
	tok, err := d.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.verifier))
	if err != nil {
		rp.log.Warn("token exchange failed", "err", err)
		e := &errorPage{}
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			e.Code, e.Detail = re.ErrorCode, re.ErrorDescription
		}
		bad(http.StatusBadGateway, "error.exchange", e)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		rp.log.Warn("token response without id_token")
		bad(http.StatusBadGateway, "error.idtoken", nil)
		return
	}
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		rp.log.Warn("ID token refused", "err", err)
		bad(http.StatusBadGateway, "error.idtoken", nil)
		return
	}
	// go-oidc leaves the nonce to the caller.
	if !equal(idt.Nonce, f.nonce) {
		rp.log.Warn("ID token nonce mismatch")
		bad(http.StatusBadRequest, "error.nonce", nil)
		return
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			rp.log.Warn("at_hash mismatch", "err", err)
			bad(http.StatusBadGateway, "error.athash", nil)
			return
		}
	}
	var idClaims json.RawMessage
	var std struct {
		ACR string `json:"acr"`
	}
	if err := idt.Claims(&idClaims); err != nil || json.Unmarshal(idClaims, &std) != nil {
		bad(http.StatusBadGateway, "error.idtoken", nil)
		return
	}
	s := session{idToken: raw, idClaims: idClaims, acr: std.ACR, requestedACR: f.acr, csrf: rand.Text()}
	s.scope, _ = tok.Extra("scope").(string)

	if ui, err := d.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
		rp.log.Warn("UserInfo failed", "err", err)
	} else if ui.Subject != idt.Subject {
		// OpenID Connect Core 5.3.2: the response must not be used.
		rp.log.Warn("UserInfo subject differs from the ID token's")
		bad(http.StatusBadGateway, "error.subject", nil)
		return
	} else {
		var uiClaims json.RawMessage
		if err := ui.Claims(&uiClaims); err == nil {
			s.userinfo = uiClaims
		}
	}

	if c, err := r.Cookie(cookieSession); err == nil {
		rp.sessions.delete(c.Value)
	}
	id, err := rp.sessions.put(s)
	if err != nil {
		bad(http.StatusServiceUnavailable, "error.busy", nil)
		return
	}
	rp.setCookie(w, cookieSession, id, 0)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/profile", http.StatusSeeOther)
}

// claimsTable is the data of the claims template.
type claimsTable struct {
	Rows    []claimRow
	Caption string
	V       *view
}

type profilePage struct {
	ACR          string
	RequestedACR string
	Below        bool
	Scope        string
	IDRows       []claimRow
	UserinfoRows []claimRow
	UserinfoFail bool
	RawID        string
	RawUserinfo  string
	CSRF         string
}

func (rp *RP) profile(w http.ResponseWriter, r *http.Request) {
	s, ok := rp.currentSession(r)
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	lang := langOf(r)
	p := &profilePage{Scope: s.scope, CSRF: s.csrf, UserinfoFail: s.userinfo == nil}
	p.ACR = acrLabel(lang, s.acr)
	if s.requestedACR != "" {
		p.RequestedACR = acrLabel(lang, s.requestedACR)
		if want := minLevel(s.requestedACR); want > 0 && acrLevel(s.acr) < want {
			p.Below = true
		}
	}
	if m, err := decodeClaims(s.idClaims); err == nil {
		p.IDRows = claimRows(lang, m)
	}
	p.RawID = indent(s.idClaims)
	if s.userinfo != nil {
		if m, err := decodeClaims(s.userinfo); err == nil {
			p.UserinfoRows = claimRows(lang, m)
		}
		p.RawUserinfo = indent(s.userinfo)
	}
	rp.render(w, r, http.StatusOK, "profile", "profile.title", p)
}

// minLevel is the lowest SQIN level among requested acr values: any of
// them satisfies the request.
func minLevel(acrValues string) int {
	lowest := 0
	for _, v := range strings.Fields(acrValues) {
		if n := acrLevel(v); n > 0 && (lowest == 0 || n < lowest) {
			lowest = n
		}
	}
	return lowest
}

func indent(raw []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

func (rp *RP) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		rp.fail(w, r, http.StatusBadRequest, "error.csrf.title", "error.csrf", false)
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != origin(rp.cfg.BaseURL) {
		rp.fail(w, r, http.StatusForbidden, "error.csrf.title", "error.csrf", false)
		return
	}
	c, err := r.Cookie(cookieSession)
	if err != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s, ok := rp.sessions.get(c.Value)
	if !ok {
		rp.clearCookie(w, cookieSession)
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if !equal(r.PostForm.Get("csrf"), s.csrf) {
		rp.fail(w, r, http.StatusForbidden, "error.csrf.title", "error.csrf", false)
		return
	}
	rp.sessions.delete(c.Value)
	rp.clearCookie(w, cookieSession)

	state := rand.Text()
	rp.setCookie(w, cookieLogout, state, int(flowTTL/time.Second))
	target := "/?state=" + url.QueryEscape(state)
	if d := rp.disc.Load(); d != nil && d.endSession != "" {
		if u, err := url.Parse(d.endSession); err == nil {
			q := u.Query()
			q.Set("id_token_hint", s.idToken)
			q.Set("post_logout_redirect_uri", rp.cfg.BaseURL+"/")
			q.Set("state", state)
			q.Set("client_id", rp.cfg.ClientID)
			locales := "fr-CA fr en"
			if langOf(r) == langEN {
				locales = "en-CA en fr"
			}
			q.Set("ui_locales", locales)
			u.RawQuery = q.Encode()
			target = u.String()
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (rp *RP) style(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("static/style.css")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

func (rp *RP) currentSession(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieSession)
	if err != nil {
		return session{}, false
	}
	return rp.sessions.get(c.Value)
}

// setCookie sets an HttpOnly, SameSite=Lax cookie; maxAge 0 makes a
// browser-session cookie.
func (rp *RP) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: rp.secure, SameSite: http.SameSiteLaxMode})
}

func (rp *RP) clearCookie(w http.ResponseWriter, name string) {
	rp.setCookie(w, name, "", -1)
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
