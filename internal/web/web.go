// Package web is SQIN's shared HTTP plumbing: the browser middleware (CSP,
// HSTS, CSRF, cross-origin protection, cookies), the API middleware, page
// rendering with translations, request IDs and access logs.
package web

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// Cookies builds cookies with the right attributes for the issuer's
// scheme: under https the names take the __Host- prefix and are Secure.
type Cookies struct{ Secure bool }

// Name returns the cookie name, prefixed under https.
func (c Cookies) Name(base string) string {
	if c.Secure {
		return "__Host-" + base
	}
	return base
}

// Set writes an HttpOnly, SameSite=Lax, host-only cookie for path "/".
func (c Cookies) Set(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	ck := &http.Cookie{Name: c.Name(base), Value: value, Path: "/", HttpOnly: true,
		Secure: c.Secure, SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		ck.MaxAge = int(maxAge.Seconds())
	}
	http.SetCookie(w, ck)
}

// Clear deletes the cookie.
func (c Cookies) Clear(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{Name: c.Name(base), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteLaxMode})
}

// Get returns the cookie's value, "" when absent.
func (c Cookies) Get(r *http.Request, base string) string {
	ck, err := r.Cookie(c.Name(base))
	if err != nil {
		return ""
	}
	return ck.Value
}

const csrfCookie = "sqin_csrf"

// CSRF issues and checks form tokens bound to a per-browser cookie: the
// token is an HMAC of the cookie value, so a page from another origin can
// neither read nor forge it.
type CSRF struct {
	key     []byte
	cookies Cookies
}

// NewCSRF returns a CSRF guard with a secret key shared by every instance.
func NewCSRF(key []byte, c Cookies) *CSRF { return &CSRF{key: key, cookies: c} }

// Token returns the form token for this browser, setting its cookie when
// needed.
func (c *CSRF) Token(w http.ResponseWriter, r *http.Request) string {
	v := c.cookies.Get(r, csrfCookie)
	if len(v) != 43 {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		c.cookies.Set(w, csrfCookie, v, 0)
		// Later reads in this request see the new value.
		r.AddCookie(&http.Cookie{Name: c.cookies.Name(csrfCookie), Value: v})
	}
	return c.mac(v)
}

// Valid reports whether the request's csrf form field matches its cookie.
func (c *CSRF) Valid(r *http.Request) bool {
	v := c.cookies.Get(r, csrfCookie)
	if v == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(c.mac(v))) == 1
}

func (c *CSRF) mac(v string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// SecurityHeaders are the headers every browser page carries.
func SecurityHeaders(h http.Header, hsts bool) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if hsts {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

// AllowFormAction widens the page's CSP form-action to origins, for pages
// whose form ends in a redirect to a client (Chromium applies form-action
// to the redirects that follow a submission).
func AllowFormAction(w http.ResponseWriter, origins ...string) {
	csp := w.Header().Get("Content-Security-Policy")
	extra := strings.Join(origins, " ")
	if extra == "" {
		return
	}
	w.Header().Set("Content-Security-Policy", strings.Replace(csp, "form-action 'self'", "form-action 'self' "+extra, 1))
}

// Browser wraps page handlers: security headers, no caching, cross-origin
// protection for state-changing requests and a body limit.
func Browser(h http.Handler, hsts bool) http.Handler {
	cop := http.NewCrossOriginProtection()
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header(), hsts)
		w.Header().Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		h.ServeHTTP(w, r)
	}))
}

// API wraps protocol and JSON endpoints: no cookies are read or set, CORS
// is open without credentials (public clients run in browsers), responses
// are not cached and bodies are limited.
func API(h http.Handler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			hd.Set("Access-Control-Allow-Methods", "GET, POST")
			hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
			hd.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h.ServeHTTP(w, r)
	})
}

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the request's identifier.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Observe gives each request an ID (X-Request-Id), recovers panics into a
// plain 500 without a stack trace on the wire, and logs method, path
// (never the query, which may hold codes), status and duration.
func Observe(h http.Handler, log *slog.Logger) http.Handler { return ObserveWith(h, log, nil) }

// ObserveWith is Observe that also reports each response's status to done
// (for metrics) when done is not nil.
func ObserveWith(h http.Handler, log *slog.Logger, done func(status int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// A request ID from the outside ends up in logs and audit events:
		// taken only from a trusted proxy (TrustProxies).
		id := r.Header.Get("X-Request-Id")
		if !FromTrustedProxy(r) || len(id) > 64 || id == "" || strings.ContainsFunc(id, func(c rune) bool { return c < '!' || c > '~' }) {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = base64.RawURLEncoding.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic", "request_id", id, "panic", p, "stack", string(debug.Stack()))
				if sw.status == 0 {
					http.Error(sw, "internal error", http.StatusInternalServerError)
				}
			}
			if done != nil {
				done(cmp.Or(sw.status, http.StatusOK))
			}
			if log.Enabled(r.Context(), slog.LevelDebug) || sw.status >= 500 {
				log.Log(r.Context(), levelFor(sw.status), "http", "request_id", id, "method", r.Method,
					"path", r.URL.Path, "status", sw.status, "ms", time.Since(start).Milliseconds())
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelDebug
}

// Renderer renders the embedded page templates in the page's language.
type Renderer struct {
	pages map[string]*template.Template
	cat   *Catalog
	log   *slog.Logger
}

// Page is what every template receives.
type Page struct {
	Lang  string
	Title string // catalogue key
	CSRF  string
	Path  string // current path and query, for the language switch
	Data  any
	cat   *Catalog
}

// T translates key into the page's language.
func (p *Page) T(key string, args ...any) string { return p.cat.T(p.Lang, key, args...) }

// OtherLang is the language the switch offers.
func (p *Page) OtherLang() string {
	if p.Lang == "fr" {
		return "en"
	}
	return "fr"
}

// SwitchURL is the current page in the other language.
func (p *Page) SwitchURL() string {
	path, q, _ := strings.Cut(p.Path, "?")
	var kept []string
	for _, kv := range strings.Split(q, "&") {
		if kv != "" && !strings.HasPrefix(kv, "lang=") {
			kept = append(kept, kv)
		}
	}
	kept = append(kept, "lang="+p.OtherLang())
	return path + "?" + strings.Join(kept, "&")
}

// NewRenderer parses every templates/*.html page with templates/layout.html
// once, at start.
func NewRenderer(fsys fs.FS, cat *Catalog, log *slog.Logger) (*Renderer, error) {
	names, err := fs.Glob(fsys, "templates/*.html")
	if err != nil {
		return nil, err
	}
	rd := &Renderer{pages: map[string]*template.Template{}, cat: cat, log: log}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").ParseFS(fsys, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		rd.pages[base] = t
	}
	return rd, nil
}

// Catalog returns the translation catalogue.
func (rd *Renderer) Catalog() *Catalog { return rd.cat }

// NewPage returns a page in lang for request r.
func (rd *Renderer) NewPage(r *http.Request, lang, title string, data any) *Page {
	return &Page{Lang: lang, Title: title, Path: r.URL.RequestURI(), Data: data, cat: rd.cat}
}

// Render writes page name with status.
func (rd *Renderer) Render(w http.ResponseWriter, status int, name string, p *Page) {
	t, ok := rd.pages[name]
	if !ok {
		rd.log.Error("web: no such page", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", p.Lang)
	w.WriteHeader(status)
	if err := t.Execute(w, p); err != nil {
		rd.log.Error("web: render", "page", name, "err", err)
	}
}

// Static serves the embedded static files with a long cache lifetime.
func Static(fsys fs.FS) http.Handler {
	sub, _ := fs.Sub(fsys, "static")
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fsrv.ServeHTTP(w, r)
	})
}
