package clientreg

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/oidc"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/store"
	"github.com/sqin/sqin/internal/web"
	assets "github.com/sqin/sqin/web"
)

// env is the registration API and the provider on one real SQLite store,
// served over httptest.
type env struct {
	t   *testing.T
	db  *sqlstore.DB
	h   *Handler
	srv *httptest.Server
	now time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "reg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, now: time.Now().UTC().Truncate(time.Millisecond)}
	e.srv = httptest.NewServer(nil)
	t.Cleanup(e.srv.Close)
	log := slog.New(slog.DiscardHandler)
	e.h = New(Config{Issuer: e.srv.URL + "/", FailuresPerAddress: 5}, db, log)
	e.h.now = func() time.Time { return e.now }
	mux := http.NewServeMux()
	e.provider(e.srv.URL).Routes(mux)
	e.h.Routes(mux)
	loopback, _ := web.ParseProxies("127.0.0.1, ::1") // the tests' requests carry their own X-Request-Id
	e.srv.Config.Handler = web.TrustProxies(web.Observe(mux, log), loopback)
	return e
}

// provider returns an OpenID Provider on the env's store.
func (e *env) provider(issuer string) *oidc.Provider {
	e.t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	sealer, _ := keys.NewSealer(make([]byte, 32))
	km, err := keys.NewManager(ctx, e.db, sealer, keys.Config{Keep: time.Hour, RSABits: 2048})
	if err != nil {
		e.t.Fatal(err)
	}
	hasher, err := authn.NewHasher(authn.DemoArgon2)
	if err != nil {
		e.t.Fatal(err)
	}
	cat, err := web.LoadCatalog(assets.FS)
	if err != nil {
		e.t.Fatal(err)
	}
	rd, err := web.NewRenderer(assets.FS, cat, log)
	if err != nil {
		e.t.Fatal(err)
	}
	op, err := oidc.New(oidc.Config{Issuer: issuer, SubjectKey: make([]byte, 32)}, e.db, km, hasher, rd, log)
	if err != nil {
		e.t.Fatal(err)
	}
	return op
}

// otherInstance is a second provider on the same store, whose caches have
// not seen the client yet (the first one keeps clients a few seconds).
func (e *env) otherInstance() string {
	e.t.Helper()
	srv := httptest.NewServer(nil)
	e.t.Cleanup(srv.Close)
	mux := http.NewServeMux()
	e.provider(srv.URL).Routes(mux)
	srv.Config.Handler = mux
	return srv.URL
}

// token creates an initial access token with edit applied and returns its
// value.
func (e *env) token(edit func(*store.InitialAccessToken)) string {
	e.t.Helper()
	tok, hash := NewInitialAccessToken()
	t := &store.InitialAccessToken{ID: keys.Random(6), Hash: hash, CreatedAt: e.now, ExpiresAt: e.now.Add(time.Hour)}
	if edit != nil {
		edit(t)
	}
	if err := e.db.CreateInitialAccessToken(context.Background(), t); err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (e *env) do(method, path, token, contentType string, body []byte) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	r := &response{status: resp.StatusCode, header: resp.Header}
	r.body, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(r.body, &r.json)
	return r
}

func (e *env) register(token string, meta any) *response {
	e.t.Helper()
	b, err := json.Marshal(meta)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(http.MethodPost, "/register", token, "application/json", b)
}

// wantError checks an error response of the API.
func (r *response) wantError(t *testing.T, status int, code, inDescription string) {
	t.Helper()
	if r.status != status || r.json["error"] != code {
		t.Fatalf("status %d, body %s; want %d %s", r.status, r.body, status, code)
	}
	if d, _ := r.json["error_description"].(string); !strings.Contains(d, inDescription) {
		t.Fatalf("error_description %q does not contain %q", d, inDescription)
	}
	if r.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("headers %v", r.header)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatalf("401 without a Bearer challenge: %v", r.header)
	}
}

var machine = map[string]any{"client_name": "Service de la SAAQ", "grant_types": []string{"client_credentials"},
	"scope": "openid"}

func TestRegisterNeedsValidInitialToken(t *testing.T) {
	e := newEnv(t)
	expired := e.token(func(t *store.InitialAccessToken) { t.ExpiresAt = e.now })
	revoked := e.token(func(t *store.InitialAccessToken) { t.RevokedAt = e.now.Add(-time.Minute) })
	usedUp := e.token(func(t *store.InitialAccessToken) { t.MaxUses, t.Uses = 1, 1 })
	sector := e.token(func(t *store.InitialAccessToken) { t.Sector = "saaq" })
	tests := []struct {
		name, header string
		meta         map[string]any
		want         string
	}{
		{"missing", "", machine, "initial access token is required"},
		{"basic", "Basic " + "cnA6c2VjcmV0", machine, "initial access token is required"},
		{"empty bearer", "Bearer ", machine, "initial access token is required"},
		{"unknown", "Bearer sqin_iat_unknown", machine, "not valid"},
		{"expired", "Bearer " + expired, machine, "expired"},
		{"revoked", "Bearer " + revoked, machine, "revoked"},
		{"used up", "Bearer " + usedUp, machine, "as many times as allowed"},
		{"wrong sector", "Bearer " + sector, map[string]any{"grant_types": []string{"client_credentials"}, "sector_identifier": "ramq"}, `sector "saaq" only`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(tt.meta)
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/register", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			r := &response{status: resp.StatusCode, header: resp.Header}
			r.body, _ = io.ReadAll(resp.Body)
			_ = json.Unmarshal(r.body, &r.json)
			r.wantError(t, http.StatusUnauthorized, "invalid_token", tt.want)
			if ch := r.header.Get("WWW-Authenticate"); strings.HasPrefix(tt.header, "Bearer sqin") != strings.Contains(ch, `error="invalid_token"`) {
				t.Fatalf("challenge %q", ch)
			}
			e.db.Reset(context.Background(), "clientreg-fail:127.0.0.1")
		})
	}
	if cs, _ := e.db.ListClients(context.Background()); len(cs) != 0 {
		t.Fatalf("clients registered without a valid token: %v", cs)
	}
}

func TestRegisterRefusesInvalidMetadata(t *testing.T) {
	e := newEnv(t)
	tok := e.token(nil)
	tests := []struct {
		name  string
		meta  any
		code  string
		field string
	}{
		{"http redirect", map[string]any{"redirect_uris": []string{"http://rp.example/cb"}}, InvalidRedirectURI, "redirect_uris[0]"},
		{"fragment", map[string]any{"redirect_uris": []string{"https://rp.example/cb#x"}}, InvalidRedirectURI, "fragment"},
		{"wildcard", map[string]any{"redirect_uris": []string{"https://*.rp.example/cb"}}, InvalidRedirectURI, "wildcard"},
		{"no redirect", map[string]any{"client_name": "x"}, InvalidRedirectURI, "redirect_uris is required"},
		{"unknown scope", map[string]any{"grant_types": []string{"client_credentials"}, "scope": "openid admin"}, InvalidClientMetadata, `scope: unknown scope "admin"`},
		{"private key", map[string]any{"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt",
			"jwks": json.RawMessage(jwks(t, jwk(t, "ec", false, nil)))}, InvalidClientMetadata, `private member "d"`},
		{"public subject", map[string]any{"grant_types": []string{"client_credentials"}, "subject_type": "public"}, InvalidClientMetadata, "subject_type public"},
		{"fapi2 secret", map[string]any{"redirect_uris": []string{"https://rp.example/cb"}, "profile": "fapi2",
			"token_endpoint_auth_method": "client_secret_basic"}, InvalidClientMetadata, "profile fapi2 requires token_endpoint_auth_method private_key_jwt"},
		{"wrong type", map[string]any{"grant_types": "client_credentials"}, InvalidClientMetadata, "grant_types must be an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.register(tok, tt.meta).wantError(t, http.StatusBadRequest, tt.code, tt.field)
		})
	}
	e.do(http.MethodPost, "/register", tok, "application/x-www-form-urlencoded", []byte("client_name=x")).
		wantError(t, http.StatusUnsupportedMediaType, InvalidClientMetadata, "application/json")
	e.do(http.MethodPost, "/register", tok, "application/json", []byte(`{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://b.example/cb"]}`)).
		wantError(t, http.StatusBadRequest, InvalidClientMetadata, "more than once")
	big := []byte(`{"client_name":"` + strings.Repeat("a", MaxSize) + `"}`)
	e.do(http.MethodPost, "/register", tok, "application/json", big).
		wantError(t, http.StatusRequestEntityTooLarge, InvalidClientMetadata, "larger than")
	if cs, _ := e.db.ListClients(context.Background()); len(cs) != 0 {
		t.Fatalf("invalid metadata registered clients: %v", cs)
	}
	// Metadata errors do not count against the address.
	if n, _ := e.db.Count(context.Background(), "clientreg-fail:127.0.0.1", 15*time.Minute, e.now); n != 0 {
		t.Fatalf("%d failures counted for metadata errors", n)
	}
}

// The registered client works at the token endpoint; its integrator reads,
// updates and deletes it with the registration access token.
func TestRegisterThenUseAndManage(t *testing.T) {
	e := newEnv(t)
	e.h.cfg.FailuresPerAddress = 100
	tok := e.token(func(t *store.InitialAccessToken) { t.MaxUses = 1 })
	r := e.register(tok, map[string]any{"client_name": "Permis — SAAQ", "grant_types": []string{"client_credentials"},
		"token_endpoint_auth_method": "client_secret_post", "scope": "openid", "client_id": "chosen-by-me",
		"client_secret": "chosen-secret-0123456789", "unknown_member": true})
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	id, _ := r.json["client_id"].(string)
	secret, _ := r.json["client_secret"].(string)
	rat, _ := r.json["registration_access_token"].(string)
	uri, _ := r.json["registration_client_uri"].(string)
	switch {
	case !strings.HasPrefix(id, "rp.") || id == "chosen-by-me":
		t.Fatalf("client_id %q: want one chosen by the server", id)
	case len(secret) < 40 || secret == "chosen-secret-0123456789":
		t.Fatalf("client_secret %q: want a generated one", secret)
	case !strings.HasPrefix(rat, "sqin_rat_"):
		t.Fatalf("registration_access_token %q", rat)
	case uri != e.srv.URL+"/register/"+id || r.header.Get("Location") != uri:
		t.Fatalf("registration_client_uri %q, Location %q", uri, r.header.Get("Location"))
	case r.json["client_secret_expires_at"] != float64(0) || r.json["client_id_issued_at"] != float64(e.now.Unix()):
		t.Fatalf("times: %s", r.body)
	case r.json["token_endpoint_auth_method"] != "client_secret_post" || r.json["subject_type"] != "pairwise" ||
		r.json["minimum_acr"] != "urn:sqin:loa:1" || r.json["sector_identifier"] != id || r.json["unknown_member"] != nil:
		t.Fatalf("metadata: %s", r.body)
	case r.header.Get("Cache-Control") != "no-store":
		t.Fatalf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	// Secrets and tokens are stored hashed.
	c, err := e.db.GetClient(context.Background(), id)
	if err != nil || strings.Contains(c.SecretHash, secret) || !oidc.VerifySecret(c.SecretHash, secret) {
		t.Fatalf("stored client %+v, %v", c, err)
	}
	if reg, err := e.db.GetRegistration(context.Background(), id); err != nil || reg.TokenHash != keys.Hash(rat) {
		t.Fatalf("registration %+v, %v", reg, err)
	}

	// The client gets tokens.
	tokenWith := func(secret string) *response {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
		return e.do(http.MethodPost, "/token", "", "application/x-www-form-urlencoded", []byte(form.Encode()))
	}
	tokenAt := func(base, secret string, basic bool) int {
		form := url.Values{"grant_type": {"client_credentials"}}
		if !basic {
			form.Set("client_id", id)
			form.Set("client_secret", secret)
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if tr := tokenWith(secret); tr.status != http.StatusOK || tr.json["access_token"] == nil {
		t.Fatalf("token endpoint: %d %s", tr.status, tr.body)
	}

	// The initial token had one use.
	e.register(tok, machine).wantError(t, http.StatusUnauthorized, "invalid_token", "as many times")

	// Read.
	path := "/register/" + id
	got := e.do(http.MethodGet, path, rat, "", nil)
	if got.status != http.StatusOK || got.json["client_id"] != id || got.json["client_secret"] != nil ||
		got.json["registration_access_token"] != nil || got.json["registration_client_uri"] != uri {
		t.Fatalf("read: %d %s", got.status, got.body)
	}
	e.do(http.MethodGet, path, tok, "", nil).wantError(t, http.StatusUnauthorized, "invalid_token", "registration access token")
	e.do(http.MethodGet, "/register/rp.other", rat, "", nil).wantError(t, http.StatusUnauthorized, "invalid_token", "registration access token")
	e.do(http.MethodGet, path, "", "", nil).wantError(t, http.StatusUnauthorized, "invalid_token", "required")

	// Update: the whole metadata, the client's own id, its secret if sent.
	put := func(token string, meta map[string]any) *response {
		b, _ := json.Marshal(meta)
		return e.do(http.MethodPut, path, token, "application/json", b)
	}
	update := map[string]any{"client_id": id, "client_secret": secret, "client_name": "Permis",
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_basic",
		"scope": "openid email", "registration_access_token": "ignored", "client_id_issued_at": 1}
	bad := func(edit func(map[string]any)) map[string]any {
		m := map[string]any{}
		for k, v := range update {
			m[k] = v
		}
		edit(m)
		return m
	}
	put(rat, bad(func(m map[string]any) { m["client_id"] = "rp.other" })).wantError(t, http.StatusBadRequest, InvalidClientMetadata, "client_id must be this client's identifier")
	put(rat, bad(func(m map[string]any) { m["client_secret"] = "not-the-secret-0123" })).wantError(t, http.StatusBadRequest, InvalidClientMetadata, "client_secret does not match")
	put(rat, bad(func(m map[string]any) { m["sector_identifier"] = "ramq" })).wantError(t, http.StatusBadRequest, InvalidClientMetadata, "sector_identifier cannot change")
	put(rat, bad(func(m map[string]any) { m["subject_type"] = "public" })).wantError(t, http.StatusBadRequest, InvalidClientMetadata, "subject_type public")
	put(rat, bad(func(m map[string]any) { m["redirect_uris"] = []string{"https://rp.example/*"} })).wantError(t, http.StatusBadRequest, InvalidRedirectURI, "wildcard")
	up := put(rat, update)
	if up.status != http.StatusOK || up.json["client_name"] != "Permis" || up.json["scope"] != "openid email" ||
		up.json["client_secret"] != nil || up.json["client_id_issued_at"] != float64(e.now.Unix()) {
		t.Fatalf("update: %d %s", up.status, up.body)
	}
	rat2, _ := up.json["registration_access_token"].(string)
	if rat2 == "" || rat2 == rat {
		t.Fatalf("registration access token not rotated: %s", up.body)
	}
	e.do(http.MethodGet, path, rat, "", nil).wantError(t, http.StatusUnauthorized, "invalid_token", "not valid")
	// The secret is kept; the client now authenticates with Basic (seen
	// at once by an instance that has not cached the client).
	if code := tokenAt(e.otherInstance(), secret, true); code != http.StatusOK {
		t.Fatalf("token with Basic after update: %d", code)
	}

	// Moving to a public client and back generates a new secret.
	pub := put(rat2, map[string]any{"client_id": id, "redirect_uris": []string{"https://rp.example/cb"},
		"token_endpoint_auth_method": "none"})
	rat3, _ := pub.json["registration_access_token"].(string)
	if pub.status != http.StatusOK || pub.json["client_secret"] != nil {
		t.Fatalf("to public: %d %s", pub.status, pub.body)
	}
	conf := put(rat3, map[string]any{"client_id": id, "grant_types": []string{"client_credentials"}})
	secret2, _ := conf.json["client_secret"].(string)
	rat4, _ := conf.json["registration_access_token"].(string)
	if conf.status != http.StatusOK || len(secret2) < 40 || secret2 == secret {
		t.Fatalf("back to confidential: %d %s", conf.status, conf.body)
	}
	other := e.otherInstance()
	if code := tokenAt(other, secret, true); code != http.StatusUnauthorized {
		t.Fatalf("old secret still works: %d", code)
	}
	if code := tokenAt(other, secret2, true); code != http.StatusOK {
		t.Fatalf("new secret: %d", code)
	}

	// Delete.
	if d := e.do(http.MethodDelete, path, rat4, "", nil); d.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", d.status, d.body)
	}
	e.do(http.MethodGet, path, rat4, "", nil).wantError(t, http.StatusUnauthorized, "invalid_token", "not valid")
	if _, err := e.db.GetClient(context.Background(), id); err == nil {
		t.Fatal("client still there after delete")
	}
	if code := tokenAt(e.otherInstance(), secret2, true); code != http.StatusUnauthorized {
		t.Fatalf("deleted client got a token: %d", code)
	}
}

func TestSectorRestrictedToken(t *testing.T) {
	e := newEnv(t)
	tok := e.token(func(t *store.InitialAccessToken) { t.Sector = "saaq" })
	r := e.register(tok, machine)
	if r.status != http.StatusCreated || r.json["sector_identifier"] != "saaq" || !strings.HasPrefix(r.json["client_id"].(string), "saaq.") {
		t.Fatalf("register in the token's sector: %d %s", r.status, r.body)
	}
	with := map[string]any{"grant_types": []string{"client_credentials"}, "sector_identifier": "saaq"}
	if r := e.register(tok, with); r.status != http.StatusCreated {
		t.Fatalf("register naming the token's sector: %d %s", r.status, r.body)
	}
	with["sector_identifier"] = "ramq"
	e.register(tok, with).wantError(t, http.StatusUnauthorized, "invalid_token", `sector "saaq" only`)
}

func TestPublicSubjectNeedsAllowingToken(t *testing.T) {
	e := newEnv(t)
	meta := map[string]any{"grant_types": []string{"client_credentials"}, "subject_type": "public"}
	e.register(e.token(nil), meta).wantError(t, http.StatusBadRequest, InvalidClientMetadata, "subject_type public")
	r := e.register(e.token(func(t *store.InitialAccessToken) { t.AllowPublicSubject = true }), meta)
	if r.status != http.StatusCreated || r.json["subject_type"] != "public" {
		t.Fatalf("public subject with an allowing token: %d %s", r.status, r.body)
	}
}

func TestFailuresAreRateLimited(t *testing.T) {
	e := newEnv(t)
	good := e.token(nil)
	for range 5 {
		e.register("sqin_iat_guess", machine).wantError(t, http.StatusUnauthorized, "invalid_token", "not valid")
	}
	r := e.register(good, machine)
	r.wantError(t, http.StatusTooManyRequests, "too_many_requests", "try again later")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	e.do(http.MethodGet, "/register/rp.x", "guess", "", nil).wantError(t, http.StatusTooManyRequests, "too_many_requests", "")
	e.now = e.now.Add(20 * time.Minute) // the window slides
	if r := e.register(good, machine); r.status != http.StatusCreated {
		t.Fatalf("after the window: %d %s", r.status, r.body)
	}
}

// The lists of known scopes and claims are the provider's.
func TestKnownValuesMatchDiscovery(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Scopes     []string `json:"scopes_supported"`
		Claims     []string `json:"claims_supported"`
		Auth       []string `json:"token_endpoint_auth_methods_supported"`
		Grants     []string `json:"grant_types_supported"`
		IDAlgs     []string `json:"id_token_signing_alg_values_supported"`
		Subjects   []string `json:"subject_types_supported"`
		Registered string   `json:"registration_endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	sameSet := func(name string, got, want []string) {
		g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
		if !slices.Equal(g, w) {
			t.Errorf("%s: discovery has %v, clientreg knows %v", name, g, w)
		}
	}
	sameSet("scopes", d.Scopes, KnownScopes)
	sameSet("token endpoint auth methods", d.Auth, AuthMethods)
	sameSet("grant types", d.Grants, GrantTypes)
	sameSet("ID token algorithms", d.IDAlgs, keys.SupportedAlgs)
	// Discovery also lists claims that are not a client's to restrict (sub,
	// acr…): every claim clientreg knows must be there.
	for _, c := range KnownClaims {
		if !slices.Contains(d.Claims, c) {
			t.Errorf("claim %q is not in claims_supported %v", c, d.Claims)
		}
	}
	for _, s := range []string{sqin.SubjectPairwise, sqin.SubjectPublic} {
		if !slices.Contains(d.Subjects, s) {
			t.Logf("subject type %q is not in subject_types_supported %v", s, d.Subjects)
		}
	}
	if d.Registered != "" && d.Registered != Endpoint(e.srv.URL) {
		t.Errorf("registration_endpoint %q, want %q", d.Registered, Endpoint(e.srv.URL))
	}
}
