package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// env is a test OP, the RP in front of it and a browser.
type env struct {
	t       *testing.T
	op      *testOP
	rp      *RP
	base    string
	browser *http.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	op := newTestOP(t)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	rp := NewRP(RPConfig{
		Issuer: op.issuer(), ClientID: testClientID, ClientSecret: testClientSecret,
		BaseURL: srv.URL + "/", HTTPClient: op.srv.Client(),
	})
	rp.retryDelay = time.Millisecond
	h = rp.Handler()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &env{t: t, op: op, rp: rp, base: srv.URL, browser: browser}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(method, target string, form url.Values) page {
	e.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = e.base + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := e.browser.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(b)}
}

func (e *env) get(target string) page { return e.do(http.MethodGet, target, nil) }

// login runs /login?query and returns the authorization request URL.
func (e *env) login(query string) string {
	e.t.Helper()
	p := e.get("/login" + query)
	if p.status != http.StatusFound {
		e.t.Fatalf("/login: status %d\n%s", p.status, p.body)
	}
	return p.header.Get("Location")
}

// signIn runs the whole flow and returns the profile page.
func (e *env) signIn() page {
	e.t.Helper()
	cb := e.op.authorize(e.login("?acr=urn:sqin:loa:2"), "urn:sqin:loa:2")
	p := e.get(cb)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/profile" {
		e.t.Fatalf("callback: status %d, location %q\n%s", p.status, p.header.Get("Location"), p.body)
	}
	return e.get("/profile")
}

func contains(t *testing.T, p page, parts ...string) {
	t.Helper()
	for _, s := range parts {
		if !strings.Contains(p.body, s) {
			t.Errorf("page (status %d) does not contain %q:\n%s", p.status, s, p.body)
		}
	}
}

func (e *env) signedIn() bool {
	return e.get("/profile").status == http.StatusOK
}

func TestHomePage(t *testing.T) {
	e := newEnv(t)
	p := e.get("/")
	if p.status != 200 {
		t.Fatalf("status %d", p.status)
	}
	contains(t, p, `<html lang="fr">`, "Se connecter avec SQIN", "Ministère de la Famille",
		`href="#contenu"`, `id="contenu"`, `<label for="acr-2">`, `<legend>`, `action="/login"`, `hreflang="en"`)
	csp := p.header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "frame-ancestors 'none'", "form-action 'self' " + e.op.issuer()} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if p.header.Get("X-Content-Type-Options") != "nosniff" || p.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers %v", p.header)
	}
	if strings.Contains(p.body, "<script") || strings.Contains(p.body, "style=") {
		t.Error("page has script or inline style")
	}
	if css := e.get("/static/style.css"); css.status != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Errorf("style sheet: %d %s", css.status, css.header.Get("Content-Type"))
	}
	if nf := e.get("/nowhere"); nf.status != 404 || !strings.Contains(nf.body, "Page introuvable") {
		t.Errorf("not found page: %d", nf.status)
	}
}

func TestEnglish(t *testing.T) {
	e := newEnv(t)
	contains(t, e.get("/?lang=en"), `<html lang="en">`, "Sign in with SQIN", `href="/?lang=fr"`)
	contains(t, e.get("/"), `<html lang="en">`) // kept in the cookie
	loc := e.login("")
	if u, _ := url.Parse(loc); u.Query().Get("ui_locales") != "en-CA en fr" {
		t.Errorf("ui_locales in %s", loc)
	}
	contains(t, e.get("/?lang=fr"), `<html lang="fr">`)
}

func TestLoginRequest(t *testing.T) {
	e := newEnv(t)
	loc := e.login("?acr=urn:sqin:loa:2&prompt=login")
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, e.op.issuer()+"/authorize?") {
		t.Fatalf("redirect to %q", loc)
	}
	q := u.Query()
	want := map[string]string{
		"response_type":         "code",
		"client_id":             testClientID,
		"redirect_uri":          e.base + "/callback",
		"scope":                 "openid profile email address",
		"code_challenge_method": "S256",
		"acr_values":            "urn:sqin:loa:2",
		"prompt":                "login",
		"ui_locales":            "fr-CA fr en",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if len(q.Get("state")) < 20 || len(q.Get("nonce")) < 20 || len(q.Get("code_challenge")) != 43 || q.Get("state") == q.Get("nonce") {
		t.Errorf("state, nonce or challenge weak: %v", q)
	}
	// The flow cookie: HttpOnly, SameSite=Lax, short-lived.
	p := e.get("/login")
	var found bool
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == cookieFlow {
			found = true
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.MaxAge <= 0 || c.MaxAge > 600 {
				t.Errorf("flow cookie %+v", c)
			}
		}
	}
	if !found {
		t.Error("no flow cookie")
	}
	// Without acr nor prompt, neither is sent.
	if q := mustQuery(t, p.header.Get("Location")); q.Has("acr_values") || q.Has("prompt") {
		t.Errorf("unexpected parameters %v", q)
	}
	for _, bad := range []string{"?acr=%3Cscript%3E", "?prompt=bogus", "?prompt=none+login"} {
		if p := e.get("/login" + bad); p.status != 400 || !strings.Contains(p.body, "paramètre") {
			t.Errorf("/login%s: status %d", bad, p.status)
		}
	}
}

func mustQuery(t *testing.T, s string) url.Values {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestHappyPath(t *testing.T) {
	e := newEnv(t)
	p := e.signIn()
	if p.status != 200 {
		t.Fatalf("profile: %d\n%s", p.status, p.body)
	}
	contains(t, p,
		"Renseignements reçus de SQIN",
		"Niveau d&#39;assurance 2",
		"Élodie", "Côté", "Élodie Côté",
		"7 mars 1985",
		"citoyen1@demo.sqin.test",
		"1234 rue des Érables", "Québec (QC)  G1R 4S9",
		"<code>auth_time</code>",
		"pwd (mot de passe)",
		"31 décembre 2025 à 19 h 00 HNE", // updated_at 2026-01-01 00:00 UTC
		"Identifiant de l&#39;usager propre à ce service", testSub,
		`<th scope="row">Date de naissance</th>`,
		`<caption>`,
		`name="csrf"`, "Se déconnecter",
		"openid profile email address",
	)
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if strings.Contains(p.body, "inférieur au niveau exigé") {
		t.Error("warning about the level shown though it was reached")
	}
	contains(t, e.get("/"), "Vous êtes connecté")
}

func TestLevelBelowRequested(t *testing.T) {
	e := newEnv(t)
	cb := e.op.authorize(e.login("?acr=urn:sqin:loa:3"), "urn:sqin:loa:2")
	if p := e.get(cb); p.status != 303 {
		t.Fatalf("callback %d", p.status)
	}
	contains(t, e.get("/profile"), "inférieur au niveau exigé", "Niveau d&#39;assurance 3")
}

func TestStateMismatch(t *testing.T) {
	e := newEnv(t)
	cb := e.op.authorize(e.login(""), "urn:sqin:loa:2")
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Set("state", "forged-state")
	u.RawQuery = q.Encode()
	p := e.get(u.String())
	if p.status != 400 {
		t.Fatalf("status %d", p.status)
	}
	contains(t, p, "La connexion n&#39;a pas pu être établie", "ne correspond pas à votre demande", `href="/login"`)
	if e.op.tokenRequests() != 0 {
		t.Error("the code was exchanged despite the wrong state")
	}
	if e.signedIn() {
		t.Error("signed in despite the wrong state")
	}
	// The flow was used up: the genuine response no longer works either.
	if p := e.get(cb); p.status != 400 || !strings.Contains(p.body, "expiré") {
		t.Errorf("replayed callback: %d", p.status)
	}
}

func TestCallbackWithoutFlow(t *testing.T) {
	e := newEnv(t)
	p := e.get("/callback?code=abc&state=xyz")
	if p.status != 400 || !strings.Contains(p.body, "expiré") {
		t.Fatalf("status %d\n%s", p.status, p.body)
	}
}

func TestNonceMismatch(t *testing.T) {
	e := newEnv(t)
	e.op.set(func(op *testOP) { op.nonce = "someone-elses-nonce" })
	p := e.get(e.op.authorize(e.login(""), "urn:sqin:loa:2"))
	if p.status != 400 {
		t.Fatalf("status %d", p.status)
	}
	contains(t, p, "nonce")
	if e.op.tokenRequests() != 1 || e.signedIn() {
		t.Errorf("token calls %d, signed in %v", e.op.tokenRequests(), e.signedIn())
	}
}

func TestIssuerMismatch(t *testing.T) {
	e := newEnv(t)
	cb := e.op.authorize(e.login(""), "urn:sqin:loa:2")
	cb = strings.Replace(cb, "iss="+url.QueryEscape(e.op.issuer()), "iss=https%3A%2F%2Fevil.example", 1)
	p := e.get(cb)
	if p.status != 400 || e.op.tokenRequests() != 0 {
		t.Fatalf("status %d, token calls %d", p.status, e.op.tokenRequests())
	}
	contains(t, p, "service d&#39;authentification attendu")
}

func TestProviderError(t *testing.T) {
	e := newEnv(t)
	q := mustQuery(t, e.login("?acr=urn:sqin:loa:3"))
	cb := url.Values{"error": {"access_denied"}, "error_description": {"The user declined <b>consent</b>"}, "state": {q.Get("state")}}
	p := e.get("/callback?" + cb.Encode())
	if p.status != 400 {
		t.Fatalf("status %d", p.status)
	}
	contains(t, p, "Vous avez refusé de transmettre vos renseignements", "<code>access_denied</code>",
		"The user declined &lt;b&gt;consent&lt;/b&gt;", `href="/login?acr=urn%3Asqin%3Aloa%3A3"`, "Recommencer la connexion")
	if e.op.tokenRequests() != 0 || e.signedIn() {
		t.Error("error response led to a sign-in")
	}

	q = mustQuery(t, e.login(""))
	p = e.get("/callback?" + url.Values{"error": {"weird_error"}, "state": {q.Get("state")}}.Encode())
	contains(t, p, "SQIN a refusé la demande de connexion.")
}

func TestPKCE(t *testing.T) {
	e := newEnv(t)
	// The provider binds the code to another challenge than the RP's: the
	// RP's verifier no longer matches and the exchange fails.
	u, _ := url.Parse(e.login(""))
	q := u.Query()
	q.Set("code_challenge", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	u.RawQuery = q.Encode()
	p := e.get(e.op.authorize(u.String(), "urn:sqin:loa:2"))
	if p.status != http.StatusBadGateway || e.signedIn() {
		t.Fatalf("status %d", p.status)
	}
	contains(t, p, "n&#39;a pas pu obtenir vos jetons", "<code>invalid_grant</code>", "PKCE verification failed")
}

func TestUnknownCode(t *testing.T) {
	e := newEnv(t)
	q := mustQuery(t, e.login(""))
	p := e.get("/callback?" + url.Values{"code": {"unknown"}, "state": {q.Get("state")}, "iss": {e.op.issuer()}}.Encode())
	if p.status != http.StatusBadGateway {
		t.Fatalf("status %d", p.status)
	}
	contains(t, p, "n&#39;a pas pu obtenir vos jetons", "<code>invalid_grant</code>")
}

func TestUserinfo(t *testing.T) {
	t.Run("subject differs", func(t *testing.T) {
		e := newEnv(t)
		e.op.set(func(op *testOP) { op.userinfoSub = "someone-else" })
		p := e.get(e.op.authorize(e.login(""), "urn:sqin:loa:2"))
		if p.status != http.StatusBadGateway || e.signedIn() {
			t.Fatalf("status %d", p.status)
		}
		contains(t, p, "ne concernent pas la personne authentifiée")
	})
	t.Run("unavailable", func(t *testing.T) {
		e := newEnv(t)
		e.op.set(func(op *testOP) { op.userinfoOff = true })
		p := e.signIn()
		contains(t, p, "Les renseignements du point de terminaison UserInfo n&#39;ont pas pu être obtenus", "Élodie")
	})
}

func TestLazyDiscoveryRetried(t *testing.T) {
	e := newEnv(t)
	e.op.set(func(op *testOP) { op.discoveryFail = 3 }) // one request's worth of attempts
	p := e.get("/login?acr=urn:sqin:loa:2")
	if p.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d", p.status)
	}
	contains(t, p, "ne répond pas encore", `href="/login?acr=urn%3Asqin%3Aloa%3A2"`)
	e.op.set(func(op *testOP) { op.discoveryFail = 2 }) // the next request succeeds on its third attempt
	if p := e.get("/login"); p.status != http.StatusFound {
		t.Fatalf("second try: status %d", p.status)
	}
	// Home page never waits for the provider.
	if p := e.get("/"); p.status != 200 {
		t.Fatalf("home: %d", p.status)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestLogout(t *testing.T) {
	e := newEnv(t)
	p := e.signIn()
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("no CSRF token on the profile page")
	}
	if p := e.do("POST", "/logout", url.Values{"csrf": {"forged"}}); p.status != http.StatusForbidden {
		t.Fatalf("forged CSRF: status %d", p.status)
	}
	if p := e.do("POST", "/logout", url.Values{}); p.status != http.StatusForbidden || !e.signedIn() {
		t.Fatalf("missing CSRF: status %d", p.status)
	}
	if p := e.get("/logout"); p.status == http.StatusSeeOther {
		t.Fatal("GET /logout signs out")
	}

	p = e.do("POST", "/logout", url.Values{"csrf": {m[1]}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("logout: status %d", p.status)
	}
	loc := p.header.Get("Location")
	if !strings.HasPrefix(loc, e.op.issuer()+"/logout?") {
		t.Fatalf("logout redirect %q", loc)
	}
	q := mustQuery(t, loc)
	if q.Get("id_token_hint") != e.op.idToken() || q.Get("post_logout_redirect_uri") != e.base+"/" ||
		q.Get("state") == "" || q.Get("client_id") != testClientID || q.Get("from") != "rp" {
		t.Errorf("end-session parameters %v", q)
	}
	if e.signedIn() {
		t.Error("still signed in after logout")
	}
	// The provider sends the browser back with the state.
	home := e.get("/?state=" + url.QueryEscape(q.Get("state")))
	contains(t, home, "Vous êtes déconnecté de ce service et de SQIN.")
	if strings.Contains(e.get("/?state="+url.QueryEscape(q.Get("state"))).body, "Vous êtes déconnecté") {
		t.Error("logout notice shown twice")
	}
	if strings.Contains(e.get("/?state=forged").body, "Vous êtes déconnecté") {
		t.Error("logout notice for a forged state")
	}
}

func TestFormatClaims(t *testing.T) {
	if got := acrLabel(langFR, "urn:sqin:loa:2"); got != "Niveau d'assurance 2" {
		t.Errorf("acrLabel = %q", got)
	}
	if got := acrLabel(langEN, "urn:sqin:loa:3"); got != "Level of assurance 3" {
		t.Errorf("acrLabel = %q", got)
	}
	if got := acrLabel(langFR, "urn:other"); got != "urn:other" {
		t.Errorf("acrLabel = %q", got)
	}
	if minLevel("urn:sqin:loa:3 urn:sqin:loa:2") != 2 || minLevel("x") != 0 {
		t.Error("minLevel")
	}
	ts := time.Date(2026, 3, 1, 19, 5, 0, 0, time.UTC).Unix() // 14 h 05 in Québec (EST)
	claims, err := decodeClaims([]byte(`{"auth_time": ` + itoa(ts) + `, "birthdate": "1985-03-07", "email_verified": false,
		"address": {"formatted": "1 rue Principale\nGaspé QC  G4X 1A1"}, "custom": {"a": 1}, "aud": ["x", "y"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"auth_time":      {"1er mars 2026 à 14 h 05 HNE"},
		"birthdate":      {"7 mars 1985"},
		"email_verified": {"Non"},
		"address":        {"1 rue Principale", "Gaspé QC  G4X 1A1"},
		"custom":         {`{"a":1}`},
		"aud":            {"x", "y"},
	}
	rows := claimRows(langFR, claims)
	if len(rows) != len(want) || rows[len(rows)-1].Name != "custom" {
		t.Fatalf("rows %+v", rows)
	}
	for _, r := range rows {
		if strings.Join(r.Lines, "|") != strings.Join(want[r.Name], "|") {
			t.Errorf("%s: %q, want %q", r.Name, r.Lines, want[r.Name])
		}
	}
	en := formatClaim(langEN, "auth_time", json.Number(itoa(ts)))
	if en[0] != "March 1, 2026, 2:05 PM EST" {
		t.Errorf("English time %q", en)
	}
}

func TestShorten(t *testing.T) {
	if got := shorten("aéb", 2); got != "a…" {
		t.Errorf("shorten = %q", got)
	}
	if got := shorten("abc", 3); got != "abc" {
		t.Errorf("shorten = %q", got)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
