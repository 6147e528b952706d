package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/store"
	"github.com/sqin/sqin/internal/web"
	assets "github.com/sqin/sqin/web"
)

const (
	testSecret   = "s3cret-for-tests-only"
	testPassword = "correct horse battery staple"
	testEmail    = "marie-eve.cote@example.test"
	testRedirect = "https://rp.example.test/cb"
)

// env is a provider on a real SQLite store, served over httptest.
type env struct {
	t    testing.TB
	p    *Provider
	db   *sqlstore.DB
	srv  *httptest.Server
	now  time.Time
	keys *keys.Manager

	trOnce sync.Once
	tr     *http.Transport
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "op.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sealer, _ := keys.NewSealer(make([]byte, 32))
	km, err := keys.NewManager(ctx, db, sealer, keys.Config{Keep: time.Hour, RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, keys: km, now: time.Now()}
	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	p := testProvider(t, db, km, Config{Issuer: e.srv.URL})
	h := p.hasher
	p.now = func() time.Time { return e.now }
	e.p = p
	mux := http.NewServeMux()
	p.Routes(mux)
	mux.Handle("GET /static/", web.Static(assets.FS))
	e.srv.Config.Handler = web.Observe(mux, p.log)

	e.addClient(&sqin.Client{ID: "rp", Name: "Service de test", AuthMethod: sqin.AuthSecretBasic,
		RedirectURIs: []string{testRedirect}, PostLogoutRedirectURIs: []string{"https://rp.example.test/bye"},
		GrantTypes: []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken, sqin.GrantClientCredentials},
		Scopes:     []string{"openid", "profile", "email", "address", "offline_access"}, MinLoA: sqin.LoA1})
	person := &sqin.Person{ID: "p1", FamilyName: "Côté", GivenName: "Marie-Ève", BirthDate: "1985-03-14", Sex: "F",
		HealthNo: "COTM85531499", Language: "fr", Address: sqin.Address{CivicNumber: "12", Street: "rue des Érables",
			Municipality: "Québec", Province: "QC", PostalCode: "G1R 2B5", Country: "CA"}}
	if err := db.CreatePerson(ctx, person); err != nil {
		t.Fatal(err)
	}
	hash, _ := h.Hash(testPassword)
	if err := db.CreateAccount(ctx, &sqin.Account{ID: "a1", Email: testEmail, EmailVerified: true, PasswordHash: hash,
		LoA: sqin.LoA2, PersonID: "p1", Locale: "fr", CreatedAt: e.now, UpdatedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	return e
}

// testProvider builds a provider on st with km, the test subject key, the
// demo password cost and the real templates; cfg.Issuer must be set.
func testProvider(t testing.TB, st store.Store, km *keys.Manager, cfg Config) *Provider {
	t.Helper()
	h, err := authn.NewHasher(authn.DemoArgon2)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := web.LoadCatalog(assets.FS)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rd, err := web.NewRenderer(assets.FS, cat, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SubjectKey = make([]byte, 32)
	p, err := New(cfg, st, km, h, rd, log)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) addClient(c *sqin.Client) {
	e.t.Helper()
	if c.AuthMethod != sqin.AuthNone {
		c.SecretHash = HashSecret(testSecret)
	}
	if c.SigningAlg == "" {
		c.SigningAlg = keys.ES256
	}
	c.CreatedAt = e.now
	if err := e.db.CreateClient(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
}

// browser is a user agent with cookies that does not follow redirects.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, Transport: e.transport(), CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// transport is the env's HTTP transport, which keeps enough idle
// connections to the test server for every benchmark goroutine (the
// default keeps two per host, and a benchmark would time the dials).
func (e *env) transport() *http.Transport {
	e.trOnce.Do(func() {
		e.tr = http.DefaultTransport.(*http.Transport).Clone()
		e.tr.MaxIdleConnsPerHost = 256
		e.t.Cleanup(e.tr.CloseIdleConnections)
	})
	return e.tr
}

// client is a plain HTTP client (a relying party's back channel) on the
// env's transport.
func (e *env) client() *http.Client { return &http.Client{Transport: e.transport()} }

func (b *browser) get(u string) (*http.Response, string) {
	b.e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.e.srv.URL + u
	}
	resp, err := b.c.Get(u)
	if err != nil {
		b.e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.e.srv.URL + u
	}
	resp, err := b.c.PostForm(u, form)
	if err != nil {
		b.e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

var inputRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hiddenInputs returns a page's hidden form fields.
func hiddenInputs(page string) url.Values {
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

type authParams struct {
	verifier string
	query    url.Values
}

// authorizeURL returns a valid authorization request URL with PKCE.
func (e *env) authorizeURL(mod func(url.Values)) (string, authParams) {
	verifier := keys.Random(32)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id": {"rp"}, "redirect_uri": {testRedirect}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {"st-123"}, "nonce": {"n-456"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	if mod != nil {
		mod(q)
	}
	return e.srv.URL + "/authorize?" + q.Encode(), authParams{verifier: verifier, query: q}
}

// follow walks redirects on the OP until one leaves it, signing in and
// consenting on the way; it returns the final redirect URL.
func (b *browser) follow(start string) *url.URL {
	b.e.t.Helper()
	next := start
	for range 10 {
		resp, body := b.get(next)
		switch {
		case resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound:
			loc, _ := resp.Location()
			if !strings.HasPrefix(loc.String(), b.e.srv.URL) {
				return loc
			}
			next = loc.String()
		case resp.StatusCode == http.StatusOK && strings.Contains(body, `name="password"`):
			form := hiddenInputs(body)
			form.Set("username", testEmail)
			form.Set("password", testPassword)
			r2, body2 := b.post("/login", form)
			if r2.StatusCode != http.StatusSeeOther {
				b.e.t.Fatalf("login: status %d: %s", r2.StatusCode, body2)
			}
			loc, _ := r2.Location()
			next = loc.String()
		case resp.StatusCode == http.StatusOK && strings.Contains(body, `name="approve"`):
			form := hiddenInputs(body)
			form.Set("approve", "yes")
			r2, body2 := b.post("/consent", form)
			if r2.StatusCode != http.StatusSeeOther {
				b.e.t.Fatalf("consent: status %d: %s", r2.StatusCode, body2)
			}
			loc, _ := r2.Location()
			if !strings.HasPrefix(loc.String(), b.e.srv.URL) {
				return loc
			}
			next = loc.String()
		default:
			b.e.t.Fatalf("unexpected page %s: %d\n%s", next, resp.StatusCode, body)
		}
	}
	b.e.t.Fatal("too many redirects")
	return nil
}

// tokenRequest posts to the token endpoint with basic auth as client rp.
func (e *env) tokenRequest(form url.Values, auth func(*http.Request)) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != nil {
		auth(req)
	} else {
		req.SetBasicAuth("rp", testSecret)
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, map[string]any, http.Header) {
	e.t.Helper()
	resp, err := e.client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, resp.Header
}

// signIn runs a full code flow and returns the token response.
func (e *env) signIn(b *browser, mod func(url.Values)) map[string]any {
	e.t.Helper()
	u, ap := e.authorizeURL(mod)
	loc := b.follow(u)
	code := loc.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	status, tok, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {testRedirect}, "code_verifier": {ap.verifier}}, nil)
	if status != http.StatusOK {
		e.t.Fatalf("token: %d %v", status, tok)
	}
	return tok
}

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
