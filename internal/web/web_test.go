package web

import (
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	assets "github.com/sqin/sqin/web"
)

func TestPickLang(t *testing.T) {
	tests := []struct {
		name, query, ui, cookie, accept, want string
	}{
		{"default", "", "", "", "", "fr"},
		{"accept english", "", "", "", "en-CA,en;q=0.9", "en"},
		{"accept french first", "", "", "", "fr-CA,en;q=0.5", "fr"},
		{"accept unknown", "", "", "", "de-DE", "fr"},
		{"cookie over accept", "", "", "en", "fr", "en"},
		{"ui_locales over cookie", "", "fr-CA", "en", "", "fr"},
		{"ui_locales list", "", "de en-CA", "", "", "en"},
		{"query wins", "en", "fr", "fr", "fr", "en"},
		{"bad query ignored", "xx", "", "", "", "fr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/?lang="+url.QueryEscape(tt.query), nil)
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: LangCookie, Value: tt.cookie})
			}
			if tt.accept != "" {
				r.Header.Set("Accept-Language", tt.accept)
			}
			if got := PickLang(r, tt.ui); got != tt.want {
				t.Fatalf("PickLang = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCSRF(t *testing.T) {
	c := NewCSRF([]byte("0123456789abcdef0123456789abcdef"), Cookies{})
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/login", nil)
	tok := c.Token(w, r)
	cookie := w.Result().Cookies()[0]
	if cookie.Name != "sqin_csrf" || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie %+v", cookie)
	}
	post := func(token string, withCookie bool) bool {
		r := httptest.NewRequest("POST", "/login", strings.NewReader("csrf="+url.QueryEscape(token)))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if withCookie {
			r.AddCookie(cookie)
		}
		return c.Valid(r)
	}
	if !post(tok, true) {
		t.Fatal("valid token refused")
	}
	if post(tok, false) || post("forged", true) || post("", true) {
		t.Fatal("invalid token accepted")
	}
	other := NewCSRF([]byte("another key, another key, anothe"), Cookies{})
	r2 := httptest.NewRequest("POST", "/login", strings.NewReader("csrf="+url.QueryEscape(tok)))
	r2.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r2.AddCookie(cookie)
	if other.Valid(r2) {
		t.Fatal("token valid under another key")
	}
	if (Cookies{Secure: true}).Name("x") != "__Host-x" {
		t.Fatal("secure cookies must use the __Host- prefix")
	}
}

// Every message a template uses exists in both catalogues.
func TestTemplatesUseKnownMessages(t *testing.T) {
	cat, err := LoadCatalog(assets.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRenderer(assets.FS, cat, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\.T "([a-z_.]+)"`)
	names, _ := fs.Glob(assets.FS, "templates/*.html")
	for _, n := range names {
		b, _ := fs.ReadFile(assets.FS, n)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if !cat.Has(m[1]) {
				t.Errorf("%s uses unknown message %q", n, m[1])
			}
		}
	}
}

func TestSwitchURL(t *testing.T) {
	p := &Page{Lang: "fr", Path: "/login?req=abc&lang=fr"}
	if got := p.SwitchURL(); got != "/login?req=abc&lang=en" {
		t.Fatal(got)
	}
}

func TestObserveRecoversPanics(t *testing.T) {
	h := Observe(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }), slog.New(slog.NewTextHandler(io.Discard, nil)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 500 || strings.Contains(w.Body.String(), "boom") || w.Header().Get("X-Request-Id") == "" {
		t.Fatalf("%d %q", w.Code, w.Body.String())
	}
}
