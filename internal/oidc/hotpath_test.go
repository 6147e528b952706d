package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/web"
	assets "github.com/sqin/sqin/web"
)

// The audit events of the token and userinfo hot paths, through the HTTP
// handlers, on SQLite and PostgreSQL.

// newEnvOn is newEnv on a given store, with an auditor (a batcher over
// db and a pseudonymizer) unless batchMax is 0.
func newEnvOn(t testing.TB, db *sqlstore.DB, batchMax int) *env {
	t.Helper()
	ctx := context.Background()
	sealer, _ := keys.NewSealer(make([]byte, 32))
	km, err := keys.NewManager(ctx, db, sealer, keys.Config{Keep: time.Hour, RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, keys: km, now: time.Now()}
	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	cfg := Config{Issuer: e.srv.URL}
	if batchMax > 0 {
		b := audit.NewBatcher(db, batchMax, 0)
		t.Cleanup(b.Close) // before the store closes (cleanups run last first)
		cfg.Audit = &Auditor{Pseudonyms: testPseudonyms(t), Batcher: b}
	}
	p := testProvider(t, db, km, cfg)
	p.now = func() time.Time { return e.now }
	e.p = p
	mux := http.NewServeMux()
	p.Routes(mux)
	mux.Handle("GET /static/", web.Static(assets.FS))
	e.srv.Config.Handler = web.Observe(mux, p.log)
	e.addClient(&sqin.Client{ID: "rp", Name: "Service de test", AuthMethod: sqin.AuthSecretBasic,
		RedirectURIs: []string{testRedirect}, PostLogoutRedirectURIs: []string{"https://rp.example.test/bye"},
		GrantTypes: []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken, sqin.GrantClientCredentials},
		Scopes:     []string{"openid", "profile", "email", "address", "offline_access"}, MinLoA: sqin.LoA1,
		Sector: "ramq"})
	person := &sqin.Person{ID: "p1", FamilyName: "Côté", GivenName: "Marie-Ève", BirthDate: "1985-03-14", Sex: "F",
		HealthNo: "COTM85531499", Language: "fr", Address: sqin.Address{CivicNumber: "12", Street: "rue des Érables",
			Municipality: "Québec", Province: "QC", PostalCode: "G1R 2B5", Country: "CA"}}
	if err := db.CreatePerson(ctx, person); err != nil {
		t.Fatal(err)
	}
	hash, _ := p.hasher.Hash(testPassword)
	if err := db.CreateAccount(ctx, &sqin.Account{ID: "a1", Email: testEmail, EmailVerified: true, PasswordHash: hash,
		LoA: sqin.LoA2, PersonID: "p1", Locale: "fr", CreatedAt: e.now, UpdatedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	return e
}

func testPseudonyms(t testing.TB) *audit.Pseudonymizer {
	ps, err := audit.NewPseudonymizer([]byte(strings.Repeat("pseudonym key for tests ", 2)))
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func sqliteDB(t *testing.T) *sqlstore.DB {
	db, err := sqlstore.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "op.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

var hotpathStores = []struct {
	name string
	open func(*testing.T) *sqlstore.DB
}{
	{"sqlite", sqliteDB},
	{"postgres", postgresDB},
}

// auditMark is the size of the log, to read the events appended after it.
func (e *env) auditMark() uint64 {
	e.t.Helper()
	n, err := e.db.AuditSize(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// eventsSince returns the events appended since mark with one of actions.
func (e *env) eventsSince(mark uint64, actions ...string) []*audit.Record {
	e.t.Helper()
	ctx := context.Background()
	end := e.auditMark()
	recs, err := e.db.Events(ctx, mark, end)
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.DeleteFunc(recs, func(r *audit.Record) bool { return !slices.Contains(actions, r.Action) })
}

// oneEvent returns the only event since mark with one of actions.
func (e *env) oneEvent(mark uint64, actions ...string) *audit.Record {
	e.t.Helper()
	recs := e.eventsSince(mark, actions...)
	if len(recs) != 1 {
		e.t.Fatalf("%d events %v since %d, want 1: %s", len(recs), actions, mark, describe(recs))
	}
	return recs[0]
}

func describe(recs []*audit.Record) string {
	b, _ := json.Marshal(recs)
	return string(b)
}

// citizen is what an event about account a1 of client rp carries.
func citizenWant(ps *audit.Pseudonymizer) audit.Event {
	return audit.Event{Actor: audit.Actor{Kind: audit.ActorClient, ID: "rp"}, Subject: ps.Account("a1"),
		ClientID: "rp", PublicBody: "ramq", LegalBasis: "consent:rp", Outcome: audit.Success}
}

// checkEvent compares the fields of got that the provider sets with want's,
// and requires a request ID.
func checkEvent(t *testing.T, got *audit.Record, want audit.Event) {
	t.Helper()
	g := got.Event
	if g.RequestID == "" {
		t.Errorf("%s: no request ID", g.Action)
	}
	g.ID, g.Time, g.Salt, g.RequestID = 0, time.Time{}, nil, ""
	if !slices.Equal(g.Attributes, want.Attributes) || g.Actor != want.Actor || g.Action != want.Action ||
		g.Subject != want.Subject || g.ClientID != want.ClientID || g.PublicBody != want.PublicBody ||
		g.LegalBasis != want.LegalBasis || g.Outcome != want.Outcome || g.Detail != want.Detail {
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(want)
		t.Errorf("event\n got %s\nwant %s", gb, wb)
	}
}

func TestHotPathAudit(t *testing.T) {
	for _, s := range hotpathStores {
		t.Run(s.name, func(t *testing.T) { testHotPathAudit(t, s.open(t)) })
	}
}

func testHotPathAudit(t *testing.T, db *sqlstore.DB) {
	e := newEnvOn(t, db, 100)
	ps := e.p.cfg.Audit.Pseudonyms
	profile := []string{"birthdate", "email", "email_verified", "family_name", "gender", "given_name", "locale", "name"}

	// Code exchange: token.issued with the claims the grant releases.
	mark := e.auditMark()
	tok := e.signIn(e.browser(), func(q url.Values) { q.Set("scope", "openid profile email offline_access") })
	want := citizenWant(ps)
	want.Action, want.Attributes = audit.TokenIssued, profile
	want.Detail = "grant_type=authorization_code scope=openid profile email offline_access"
	checkEvent(t, e.oneEvent(mark, audit.TokenIssued), want)
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)

	t.Run("userinfo", func(t *testing.T) {
		mark := e.auditMark()
		status, claims := e.userinfo(at)
		if status != http.StatusOK {
			t.Fatalf("userinfo: %d %v", status, claims)
		}
		// The event is committed when the answer arrives.
		got := e.oneEvent(mark, audit.UserinfoDisclosed)
		var names []string
		for k := range claims {
			if k != "sub" {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, profile) {
			t.Errorf("userinfo released %v, want %v", names, profile)
		}
		// Registry claims are recorded by registry attribute (the names
		// legal authorisations and their report use), the others by claim.
		want := citizenWant(ps)
		want.Action = audit.UserinfoDisclosed
		want.Attributes = []string{"birth_date", "email", "email_verified", "family_name", "given_names", "language", "sex"}
		checkEvent(t, got, want)
		// Names only, never values or identifiers in clear.
		row := describe([]*audit.Record{got})
		for _, v := range []string{testEmail, "Côté", "1985-03-14", "COTM85531499", `"a1"`, `"p1"`, claims["sub"].(string)} {
			if strings.Contains(row, v) {
				t.Errorf("event holds %q: %s", v, row)
			}
		}
	})

	t.Run("refresh", func(t *testing.T) {
		for _, tc := range []struct {
			name, scope string
			idToken     bool
			detail      string
		}{
			{"without scope", "", false, "grant_type=refresh_token scope=openid profile email offline_access"},
			{"openid asked", "openid email", true, "grant_type=refresh_token scope=openid email"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mark := e.auditMark()
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
				if tc.scope != "" {
					form.Set("scope", tc.scope)
				}
				status, r, _ := e.tokenRequest(form, nil)
				if status != http.StatusOK {
					t.Fatalf("refresh: %d %v", status, r)
				}
				rt = r["refresh_token"].(string)
				if _, ok := r["id_token"]; ok != tc.idToken {
					t.Errorf("id_token in the response: %v, want %v", ok, tc.idToken)
				}
				if tc.idToken {
					if sub := claimsOf(t, r["id_token"].(string))["sub"]; sub != claimsOf(t, tok["id_token"].(string))["sub"] {
						t.Errorf("refreshed ID token sub %v", sub)
					}
				}
				want := citizenWant(ps)
				want.Action, want.Detail = audit.TokenIssued, tc.detail
				want.Attributes = profile
				if tc.scope != "" {
					want.Attributes = []string{"email", "email_verified"}
				}
				checkEvent(t, e.oneEvent(mark, audit.TokenIssued), want)
			})
		}
	})

	t.Run("client_credentials", func(t *testing.T) {
		mark := e.auditMark()
		status, r, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"profile"}}, nil)
		if status != http.StatusOK {
			t.Fatalf("client_credentials: %d %v", status, r)
		}
		checkEvent(t, e.oneEvent(mark, audit.TokenIssued), audit.Event{Actor: audit.Actor{Kind: audit.ActorClient, ID: "rp"},
			Action: audit.TokenIssued, ClientID: "rp", PublicBody: "ramq", Outcome: audit.Success,
			Detail: "grant_type=client_credentials scope=profile"})
	})

	t.Run("failures record nothing", func(t *testing.T) {
		mark := e.auditMark()
		u, _ := e.authorizeURL(nil)
		code := e.browser().follow(u).Query().Get("code")
		for _, form := range []url.Values{
			{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {keys.Random(32)}},
			{"grant_type": {"refresh_token"}, "refresh_token": {"unknown"}},
			{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"openid phone"}},
			{"grant_type": {"client_credentials"}, "scope": {"openid"}},
		} {
			if status, r, _ := e.tokenRequest(form, nil); status != http.StatusBadRequest {
				t.Errorf("%s: %d %v, want 400", form.Get("grant_type"), status, r)
			}
		}
		if status, _ := e.userinfo("not-a-token"); status != http.StatusUnauthorized {
			t.Errorf("userinfo with a bad token: %d", status)
		}
		if recs := e.eventsSince(mark, audit.TokenIssued, audit.UserinfoDisclosed, audit.TokenRevoked); len(recs) != 0 {
			t.Errorf("events of failed requests: %s", describe(recs))
		}
	})

	t.Run("revocation", func(t *testing.T) {
		tok := e.signIn(e.browser(), func(q url.Values) { q.Set("scope", "openid email offline_access") })
		for _, tc := range []struct {
			token, hint, detail string
		}{
			{tok["access_token"].(string), "access_token", "access_token"},
			{tok["refresh_token"].(string), "refresh_token", "refresh_token: its grant is revoked"},
		} {
			mark := e.auditMark()
			for range 2 { // a second revocation changes nothing, and records nothing
				if status := e.revoke(tc.token, tc.hint); status != http.StatusOK {
					t.Fatalf("revoke %s: %d", tc.hint, status)
				}
			}
			want := citizenWant(ps)
			want.Action, want.Detail = audit.TokenRevoked, tc.detail
			checkEvent(t, e.oneEvent(mark, audit.TokenRevoked), want)
		}
		if status, _ := e.userinfo(tok["access_token"].(string)); status != http.StatusUnauthorized {
			t.Errorf("userinfo with a revoked token: %d", status)
		}
	})

	t.Run("replay", func(t *testing.T) {
		u, ap := e.authorizeURL(nil)
		code := e.browser().follow(u).Query().Get("code")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect},
			"code_verifier": {ap.verifier}}
		if status, r, _ := e.tokenRequest(form, nil); status != http.StatusOK {
			t.Fatalf("exchange: %d %v", status, r)
		}
		mark := e.auditMark()
		if status, r, _ := e.tokenRequest(form, nil); status != http.StatusBadRequest {
			t.Fatalf("replay: %d %v", status, r)
		}
		checkEvent(t, e.oneEvent(mark, audit.TokenRevoked, audit.TokenIssued), audit.Event{
			Actor: audit.Actor{Kind: audit.ActorClient, ID: "rp"}, Action: audit.TokenRevoked, ClientID: "rp",
			PublicBody: "ramq", Outcome: audit.Success, Detail: "code replayed: its grant is revoked"})
	})

	t.Run("log verifies", func(t *testing.T) {
		rep, err := audit.Verify(t.Context(), e.db, audit.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("audit verify: %+v", rep)
		}
	})

	// Last: an audit log that cannot be written discloses nothing.
	t.Run("no event, no disclosure", func(t *testing.T) {
		e.p.cfg.Audit.Batcher.Close()
		if status, claims := e.userinfo(at); status != http.StatusInternalServerError || claims["email"] != nil {
			t.Errorf("userinfo without audit: %d %v, want 500 without claims", status, claims)
		}
		if status, r, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, nil); status != http.StatusInternalServerError || r["access_token"] != nil {
			t.Errorf("client_credentials without audit: %d %v, want 500 without a token", status, r)
		}
	})
}

func (e *env) userinfo(at string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	status, m, _ := e.do(req)
	return status, m
}

func (e *env) revoke(token, hint string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/revoke",
		strings.NewReader(url.Values{"token": {token}, "token_type_hint": {hint}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("rp", testSecret)
	status, _, _ := e.do(req)
	return status
}
