package oidc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // raw connection for the rollback triggers

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/audit/rfc9162"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/sqltest"
	"github.com/sqin/sqin/internal/web"
	assets "github.com/sqin/sqin/web"
)

// auditEnv is env with a provider that records audit events, on a store
// the test opened itself (so that it can also reach it with raw SQL).
type auditEnv struct {
	*env
	ps     *audit.Pseudonymizer
	signer ed25519.PrivateKey
	log    *audit.Log // signs heads, as serve's job does
	rawSQL func(q string) error
	// mark is the log's size when the test begins: the events before it
	// are the start-up's (the first signing keys' keys.created).
	mark uint64
}

var auditTestKey = bytes.Repeat([]byte{7}, 32)

// auditSQLite opens a fresh SQLite store and a raw connection to its file.
func auditSQLite(t *testing.T) (*sqlstore.DB, func(string) error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "audit.db")
	db, err := sqlstore.Open(context.Background(), "sqlite://"+file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, func(q string) error { _, err := raw.Exec(q); return err }
}

// auditPostgres is the URL of a new schema of SQIN_TEST_POSTGRES, dropped
// when t ends.
func auditPostgres(t *testing.T) string { return sqltest.PostgresURL(t) }

// openPostgres opens (and migrates) a store on url, and a raw connection.
func openPostgres(t *testing.T, u string) (*sqlstore.DB, func(string) error) {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, func(q string) error {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, q)
		return err
	}
}

// newAuditEnv serves a recording provider on db; seed creates the test
// client, person and account (once per database).
func newAuditEnv(t *testing.T, db *sqlstore.DB, raw func(string) error, seed bool, cfg Config) *auditEnv {
	t.Helper()
	ctx := context.Background()
	sealer, _ := keys.NewSealer(make([]byte, 32))
	km, err := keys.NewManager(ctx, db, sealer, keys.Config{Keep: time.Hour, RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := audit.NewPseudonymizer(auditTestKey)
	if err != nil {
		t.Fatal(err)
	}
	batcher := audit.NewBatcher(db, 0, 0)
	t.Cleanup(batcher.Close) // before the store closes (cleanups run last first)
	signer, _ := audit.NewKey(bytes.Repeat([]byte{9}, 32))
	e := &env{t: t, db: db, keys: km, now: time.Now()}
	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	cfg.Issuer = e.srv.URL
	cfg.Audit = &Auditor{Pseudonyms: ps, Batcher: batcher}
	p := testProvider(t, db, km, cfg)
	p.now = func() time.Time { return e.now }
	e.p = p
	mux := http.NewServeMux()
	p.Routes(mux)
	mux.Handle("GET /static/", web.Static(assets.FS))
	loopback, _ := web.ParseProxies("127.0.0.1, ::1") // the test's requests carry their own X-Request-Id
	e.srv.Config.Handler = web.TrustProxies(web.Observe(mux, p.log), loopback)
	ae := &auditEnv{env: e, ps: ps, signer: signer, log: audit.NewLog(db, signer), rawSQL: raw}
	if ae.mark, err = db.AuditSize(ctx); err != nil {
		t.Fatal(err)
	}
	if !seed {
		return ae
	}
	e.addClient(&sqin.Client{ID: "rp", Name: "Service de test", AuthMethod: sqin.AuthSecretBasic,
		RedirectURIs: []string{testRedirect}, PostLogoutRedirectURIs: []string{"https://rp.example.test/bye"},
		GrantTypes: []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken},
		Scopes:     []string{"openid", "profile", "email", "address", "offline_access"}, MinLoA: sqin.LoA1, Sector: "ramq"})
	person := &sqin.Person{ID: "p1", FamilyName: "Côté", GivenName: "Marie-Ève", BirthDate: "1985-03-14", Sex: "F",
		HealthNo: "COTM85531499", Language: "fr"}
	if err := db.CreatePerson(ctx, person); err != nil {
		t.Fatal(err)
	}
	hash, _ := p.hasher.Hash(testPassword)
	if err := db.CreateAccount(ctx, &sqin.Account{ID: "a1", Email: testEmail, EmailVerified: true, PasswordHash: hash,
		LoA: sqin.LoA2, PersonID: "p1", Locale: "fr", CreatedAt: e.now, UpdatedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	return ae
}

// allEvents returns the log from the test's start (mark).
func (e *auditEnv) allEvents() []*audit.Record {
	e.t.Helper()
	return e.eventsFrom(e.mark)
}

// eventsFrom returns the log from event from on.
func (e *auditEnv) eventsFrom(from uint64) []*audit.Record {
	e.t.Helper()
	ctx := context.Background()
	n, err := e.db.AuditSize(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	rs, err := e.db.Events(ctx, from, n)
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

// events returns the log without the token and disclosure events, which
// token.go and resource.go record and test.
func (e *auditEnv) events() []*audit.Record {
	e.t.Helper()
	return slices.DeleteFunc(e.allEvents(), func(r *audit.Record) bool { return isProtocolEvent(r.Action) })
}

func isProtocolEvent(action string) bool {
	return strings.HasPrefix(action, "token.") || strings.HasPrefix(action, "userinfo.")
}

// send makes a request in the browser with an X-Request-Id, without
// following redirects.
func (b *browser) send(method, u string, form url.Values, requestID string) (*http.Response, string) {
	b.e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.e.srv.URL + u
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(raw)
}

// startLogin starts an authorization request and returns the login form.
func (b *browser) startLogin() url.Values {
	b.e.t.Helper()
	u, _ := b.e.authorizeURL(func(q url.Values) { q.Set("prompt", "login") })
	resp, _ := b.get(u)
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.Path, "/login") {
		b.e.t.Fatalf("authorize: %d %v, want a redirect to /login", resp.StatusCode, loc)
	}
	resp, page := b.get(loc.String())
	if resp.StatusCode != http.StatusOK {
		b.e.t.Fatalf("login page: %d", resp.StatusCode)
	}
	return hiddenInputs(page)
}

// login posts the login form with credentials and a request ID.
func (b *browser) login(form url.Values, email, password, requestID string) *http.Response {
	b.e.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("username", email)
	f.Set("password", password)
	resp, _ := b.send(http.MethodPost, "/login", f, requestID)
	return resp
}

// consent follows a successful login to the consent page and approves it.
func (b *browser) consent(afterLogin *http.Response, requestID string) *http.Response {
	b.e.t.Helper()
	loc, err := afterLogin.Location()
	if err != nil {
		b.e.t.Fatal(err)
	}
	resp, _ := b.get(loc.String()) // /authorize/resume
	loc, err = resp.Location()
	if err != nil || loc.Path != "/consent" {
		b.e.t.Fatalf("resume: %d %v, want /consent", resp.StatusCode, loc)
	}
	_, page := b.get(loc.String())
	form := hiddenInputs(page)
	form.Set("approve", "yes")
	resp, _ = b.send(http.MethodPost, "/consent", form, requestID)
	return resp
}

// noPersonalValues fails when any event holds a value it must not.
func noPersonalValues(t *testing.T, rs []*audit.Record, values ...string) {
	t.Helper()
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(v))) {
			t.Errorf("the log holds %q", v)
		}
	}
}

func TestAuditSignInAndConsent(t *testing.T) {
	db, raw := auditSQLite(t)
	e := newAuditEnv(t, db, raw, true, Config{})
	b := e.browser()
	form := b.startLogin()

	// Unknown identifier and wrong password: the same answer, and events
	// that differ only by the subject (none for the unknown identifier).
	r1 := b.login(form, "nobody-here@example.test", "guess-1234", "rid-unknown")
	r2 := b.login(form, testEmail, "wrong-password-5678", "rid-wrong")
	if r1.StatusCode != http.StatusOK || r2.StatusCode != http.StatusOK {
		t.Fatalf("failed sign-ins: %d and %d, want 200 both", r1.StatusCode, r2.StatusCode)
	}
	ok := b.login(form, testEmail, testPassword, "rid-success")
	if ok.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", ok.StatusCode)
	}
	done := b.consent(ok, "rid-consent")
	loc, _ := done.Location()
	if done.StatusCode != http.StatusSeeOther || loc.Query().Get("code") == "" {
		t.Fatalf("consent: %d %v", done.StatusCode, loc)
	}

	rs := e.events()
	acct := e.ps.Account("a1")
	want := []struct {
		action, requestID, actorID, subject, outcome string
		attrs                                        []string
		basis                                        string
	}{
		{audit.SigninFailure, "rid-unknown", "", "", audit.Failure, nil, ""},
		{audit.SigninFailure, "rid-wrong", "", acct, audit.Failure, nil, ""},
		{audit.SigninSuccess, "rid-success", acct, acct, audit.Success, nil, ""},
		{audit.ConsentGiven, "rid-consent", acct, acct, audit.Success, []string{"birthdate", "email", "email_verified",
			"family_name", "gender", "given_name", "locale", "name"}, "consent:rp"},
	}
	if len(rs) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(rs), len(want), rs)
	}
	for i, w := range want {
		r := rs[i]
		if r.ID != e.mark+uint64(i) || r.Action != w.action || r.RequestID != w.requestID || r.Actor.Kind != audit.ActorCitizen ||
			r.Actor.ID != w.actorID || r.Subject != w.subject || r.Outcome != w.outcome || r.ClientID != "rp" ||
			r.PublicBody != "ramq" || r.LegalBasis != w.basis {
			t.Errorf("event %d: %+v, want %+v", i, r.Event, w)
		}
		if w.attrs != nil && !slices.Equal(r.Attributes, w.attrs) {
			t.Errorf("event %d: attributes %v, want %v", i, r.Attributes, w.attrs)
		}
	}
	if rs[0].Detail != rs[1].Detail {
		t.Errorf("failure details differ (%q, %q): they would tell an unknown identifier from a wrong password", rs[0].Detail, rs[1].Detail)
	}
	if !strings.Contains(rs[3].Detail, "scope=openid profile email") {
		t.Errorf("consent detail %q, want the scopes", rs[3].Detail)
	}
	noPersonalValues(t, rs, testEmail, "nobody-here", testPassword, "wrong-password", "guess-1234", `"a1"`, `"p1"`,
		"Côté", "1985-03-14", loc.Query().Get("code"))
	for _, c := range b.c.Jar.Cookies(mustURL(e.srv.URL)) {
		if c.Name == sessionCookie {
			noPersonalValues(t, rs, c.Value)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestAuditLockout: the failure that reaches the per-account limit records
// a lockout, for a known account and for an unknown identifier alike;
// throttled attempts write nothing.
func TestAuditLockout(t *testing.T) {
	tests := []struct {
		name, email string
		subject     func(*auditEnv) string
	}{
		{"known account", testEmail, func(e *auditEnv) string { return e.ps.Account("a1") }},
		{"unknown identifier", "ghost@example.test", func(*auditEnv) string { return "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, raw := auditSQLite(t)
			e := newAuditEnv(t, db, raw, true, Config{LoginPerAccount: 3})
			b := e.browser()
			form := b.startLogin()
			for i := range 3 {
				if r := b.login(form, tc.email, "not-the-password", fmt.Sprint("rid-", i)); r.StatusCode != http.StatusOK {
					t.Fatalf("attempt %d: %d", i, r.StatusCode)
				}
			}
			if r := b.login(form, tc.email, testPassword, "rid-throttled"); r.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("attempt after the limit: %d, want 429", r.StatusCode)
			}
			rs := e.events()
			var got []string
			for _, r := range rs {
				got = append(got, r.Action+"/"+r.Outcome+"/"+r.RequestID)
				if r.Subject != tc.subject(e) {
					t.Errorf("event %d: subject %q, want %q", r.ID, r.Subject, tc.subject(e))
				}
			}
			want := []string{"signin.failure/failure/rid-0", "signin.failure/failure/rid-1", "signin.failure/failure/rid-2",
				"signin.lockout/denied/rid-2"}
			if !slices.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
			noPersonalValues(t, rs, tc.email, "not-the-password")
		})
	}
}

// TestAuditSessionsAndWithdrawal: sign-out, a sign-in replacing a session
// and a withdrawn consent each commit their event; a withdrawal that
// changes nothing records nothing.
func TestAuditSessionsAndWithdrawal(t *testing.T) {
	db, raw := auditSQLite(t)
	e := newAuditEnv(t, db, raw, true, Config{})
	acct := e.ps.Account("a1")
	b := e.browser()
	e.signIn(b, nil)

	// A second sign-in in the same browser ends the first session.
	form := b.startLogin()
	if r := b.login(form, testEmail, testPassword, "rid-again"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", r.StatusCode)
	}
	// Withdraw the consent; then withdraw one that does not exist.
	_, page := b.get("/consents")
	f := hiddenInputs(page)
	f.Set("client_id", "rp")
	if r, _ := b.send(http.MethodPost, "/consents", f, "rid-withdraw"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("withdraw: %d", r.StatusCode)
	}
	f.Set("client_id", "no-such-client")
	if r, _ := b.send(http.MethodPost, "/consents", f, "rid-withdraw-nothing"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("withdraw nothing: %d", r.StatusCode)
	}
	f.Set("client_id", "rp") // no consent left
	if r, _ := b.send(http.MethodPost, "/consents", f, "rid-withdraw-again"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("withdraw again: %d", r.StatusCode)
	}
	// Sign out, confirming on the page.
	_, page = b.get("/logout")
	lf := hiddenInputs(page)
	lf.Set("logout", "1")
	if r, _ := b.send(http.MethodPost, "/logout", lf, "rid-logout"); r.StatusCode != http.StatusOK {
		t.Fatalf("logout: %d", r.StatusCode)
	}

	rs := e.events()
	var got []string
	for _, r := range rs {
		got = append(got, r.Action)
		if r.Subject != acct || r.Actor != (audit.Actor{Kind: audit.ActorCitizen, ID: acct}) {
			t.Errorf("event %d (%s): actor %+v subject %q", r.ID, r.Action, r.Actor, r.Subject)
		}
	}
	want := []string{audit.SigninSuccess, audit.ConsentGiven, audit.SessionEnded, audit.SigninSuccess,
		audit.ConsentWithdrawn, audit.SessionEnded}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if r := rs[2]; r.Detail != "replaced by a new sign-in" || r.RequestID != "rid-again" {
		t.Errorf("replaced session: %+v", r.Event)
	}
	if r := rs[4]; r.ClientID != "rp" || r.PublicBody != "ramq" || r.RequestID != "rid-withdraw" || r.LegalBasis != "consent:rp" {
		t.Errorf("withdrawal: %+v", r.Event)
	}
	if r := rs[5]; r.Detail != "signed out" || r.RequestID != "rid-logout" {
		t.Errorf("sign-out: %+v", r.Event)
	}
}

// TestAuditRollback: a change that the database refuses rolls back with
// its event, on SQLite and PostgreSQL.
func TestAuditRollback(t *testing.T) {
	type backend struct {
		name                        string
		open                        func(t *testing.T) (*sqlstore.DB, func(string) error)
		failSessions, failConsents  string
		allowSessions, allowConsent string
		failDeletes                 string // of consents and sessions
	}
	backends := []backend{
		{name: "sqlite", open: auditSQLite,
			failSessions:  `CREATE TRIGGER t_fail_sessions BEFORE INSERT ON sessions BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
			failConsents:  `CREATE TRIGGER t_fail_consents BEFORE INSERT ON consents BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
			allowSessions: `DROP TRIGGER t_fail_sessions`, allowConsent: `DROP TRIGGER t_fail_consents`,
			failDeletes: `CREATE TRIGGER t_fail_consent_delete BEFORE DELETE ON consents BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;
				CREATE TRIGGER t_fail_session_delete BEFORE DELETE ON sessions BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`},
		{name: "postgres", open: func(t *testing.T) (*sqlstore.DB, func(string) error) { return openPostgres(t, auditPostgres(t)) },
			failSessions: `CREATE FUNCTION t_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
				CREATE TRIGGER t_fail_sessions BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION t_refuse()`,
			failConsents:  `CREATE TRIGGER t_fail_consents BEFORE INSERT OR UPDATE ON consents FOR EACH ROW EXECUTE FUNCTION t_refuse()`,
			allowSessions: `DROP TRIGGER t_fail_sessions ON sessions`, allowConsent: `DROP TRIGGER t_fail_consents ON consents`,
			failDeletes: `CREATE TRIGGER t_fail_consent_delete BEFORE DELETE ON consents FOR EACH ROW EXECUTE FUNCTION t_refuse();
				CREATE TRIGGER t_fail_session_delete BEFORE DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION t_refuse()`},
	}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			db, raw := bk.open(t)
			e := newAuditEnv(t, db, raw, true, Config{})
			ctx := context.Background()
			b := e.browser()
			form := b.startLogin()
			if err := raw(bk.failSessions); err != nil {
				t.Fatal(err)
			}
			if r := b.login(form, testEmail, testPassword, "rid-refused"); r.StatusCode != http.StatusInternalServerError {
				t.Fatalf("sign-in with sessions refused: %d, want 500", r.StatusCode)
			}
			if n, _ := db.AuditSize(ctx); n != e.mark {
				t.Fatalf("%d events after a sign-in that rolled back: %+v", n, e.allEvents()[0].Event)
			}
			if err := raw(bk.allowSessions); err != nil {
				t.Fatal(err)
			}
			ok := b.login(form, testEmail, testPassword, "rid-ok")
			if ok.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-in: %d", ok.StatusCode)
			}
			if err := raw(bk.failConsents); err != nil {
				t.Fatal(err)
			}
			done := b.consent(ok, "rid-consent-refused")
			loc, _ := done.Location()
			if loc == nil || loc.Query().Get("error") != "server_error" {
				t.Fatalf("consent refused by the database: %d %v, want server_error", done.StatusCode, loc)
			}
			rs := e.events()
			if len(rs) != 1 || rs[0].Action != audit.SigninSuccess || rs[0].RequestID != "rid-ok" {
				t.Fatalf("events %+v, want the one sign-in that committed", rs)
			}

			// A withdrawal and a sign-out that the database refuses.
			if err := raw(bk.allowConsent); err != nil {
				t.Fatal(err)
			}
			e.signIn(b, nil) // consents this time
			if err := raw(bk.failDeletes); err != nil {
				t.Fatal(err)
			}
			before := len(e.events())
			_, page := b.get("/consents")
			f := hiddenInputs(page)
			f.Set("client_id", "rp")
			if r, _ := b.send(http.MethodPost, "/consents", f, "rid-withdraw-refused"); r.StatusCode != http.StatusInternalServerError {
				t.Fatalf("withdrawal refused by the database: %d, want 500", r.StatusCode)
			}
			_, page = b.get("/logout")
			lf := hiddenInputs(page)
			lf.Set("logout", "1")
			if r, _ := b.send(http.MethodPost, "/logout", lf, "rid-logout-refused"); r.StatusCode != http.StatusInternalServerError {
				t.Fatalf("sign-out refused by the database: %d, want 500", r.StatusCode)
			}
			rs = e.events()
			if len(rs) != before || rs[len(rs)-1].Action != audit.ConsentGiven {
				t.Fatalf("events after refused changes: %d, want %d (ending with the consent)", len(rs), before)
			}
			if rep, err := audit.Verify(ctx, db, audit.VerifyOptions{}); err != nil || !rep.OK() {
				t.Fatalf("verify: %v %+v", err, rep)
			}
		})
	}
}

func b64hash(t *testing.T, s string) [32]byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("hash %q: %v", s, err)
	}
	return [32]byte(b)
}

func b64hashes(t *testing.T, ss []string) [][32]byte {
	out := make([][32]byte, 0, len(ss))
	for _, s := range ss {
		out = append(out, b64hash(t, s))
	}
	return out
}

type headJSON struct {
	TreeSize  uint64 `json:"tree_size"`
	Timestamp int64  `json:"timestamp"`
	RootHash  string `json:"root_hash"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
}

// checkHead verifies a tree head's signature as docs/audit.md defines it.
func checkHead(t *testing.T, th headJSON, pub ed25519.PublicKey) [32]byte {
	t.Helper()
	root := b64hash(t, th.RootHash)
	msg := []byte("sqin-audit-tree-head/v1\n")
	msg = binary.BigEndian.AppendUint64(msg, th.TreeSize)
	msg = binary.BigEndian.AppendUint64(msg, uint64(th.Timestamp))
	msg = append(msg, root[:]...)
	sig, err := base64.StdEncoding.DecodeString(th.Signature)
	if err != nil || !ed25519.Verify(pub, msg, sig) {
		t.Fatalf("tree head %+v: the signature does not verify", th)
	}
	return root
}

// getJSON fetches u and decodes its JSON answer into v.
func getJSON(t *testing.T, c *http.Client, u string, v any) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %d, not JSON: %v", u, resp.StatusCode, err)
	}
	return resp
}

// TestAuditEndpoints checks the public endpoints' proofs with the RFC's
// algorithms, and their refusals.
func TestAuditEndpoints(t *testing.T) {
	db, raw := auditSQLite(t)
	e := newAuditEnv(t, db, raw, true, Config{})
	ctx := context.Background()
	pub := e.signer.Public().(ed25519.PublicKey)
	c := http.DefaultClient
	var pr map[string]any
	if resp := getJSON(t, c, e.srv.URL+auditTreeHeadPath, &pr); resp.StatusCode != http.StatusNotFound ||
		resp.Header.Get("Content-Type") != "application/problem+json" || pr["status"] != float64(404) {
		t.Fatalf("tree head before any: %d %v", resp.StatusCode, pr)
	}

	b := e.browser()
	e.signIn(b, nil)
	form := b.startLogin()
	for i := range 4 {
		b.login(form, fmt.Sprintf("nobody%d@example.test", i), "x-password", "")
	}
	if _, err := e.log.SignTreeHead(ctx); err != nil {
		t.Fatal(err)
	}
	var h1 headJSON
	resp := getJSON(t, c, e.srv.URL+auditTreeHeadPath, &h1)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("tree head: %d %s", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	root1 := checkHead(t, h1, pub)
	rs := e.eventsFrom(0) // the start-up's events too: every leaf has its proof
	if h1.TreeSize != uint64(len(rs)) || h1.TreeSize < 6 {
		t.Fatalf("head of size %d, %d events", h1.TreeSize, len(rs))
	}
	type inclusion struct {
		ID       uint64   `json:"id"`
		TreeSize uint64   `json:"tree_size"`
		LeafHash string   `json:"leaf_hash"`
		Proof    []string `json:"inclusion_proof"`
	}
	for _, r := range rs {
		var in inclusion
		resp := getJSON(t, c, fmt.Sprintf("%s%s?id=%d", e.srv.URL, auditProofPath, r.ID), &in)
		leaf := b64hash(t, in.LeafHash)
		if resp.StatusCode != http.StatusOK || in.ID != r.ID || in.TreeSize != h1.TreeSize || leaf != rfc9162.Leaf(r.Entry()) {
			t.Fatalf("proof of %d: %d %+v", r.ID, resp.StatusCode, in)
		}
		if !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("proof Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
		if !rfc9162.VerifyInclusion(r.ID, h1.TreeSize, leaf, b64hashes(t, in.Proof), root1) {
			t.Errorf("inclusion proof of event %d does not verify against the signed head", r.ID)
		}
	}

	// More events, a second head: consistency between the two, and proofs
	// against the first head's size still given.
	for i := range 7 {
		b.login(form, fmt.Sprintf("later%d@example.test", i), "x-password", "")
	}
	if _, err := e.log.SignTreeHead(ctx); err != nil {
		t.Fatal(err)
	}
	var h2 headJSON
	getJSON(t, c, e.srv.URL+auditTreeHeadPath, &h2)
	root2 := checkHead(t, h2, pub)
	for first := uint64(1); first <= h2.TreeSize; first++ {
		var cj struct {
			First, Second uint64
			Proof         []string `json:"consistency_proof"`
		}
		u := fmt.Sprintf("%s%s?first=%d&second=%d", e.srv.URL, auditConsistencyPath, first, h2.TreeSize)
		if resp := getJSON(t, c, u, &cj); resp.StatusCode != http.StatusOK || cj.First != first || cj.Second != h2.TreeSize {
			t.Fatalf("consistency %d: %d %+v", first, resp.StatusCode, cj)
		}
		// The root of the first tree: from the head for h1, else from the
		// leaves (computed here by the RFC's definition).
		var rootFirst [32]byte
		if first == h1.TreeSize {
			rootFirst = root1
		} else {
			rootFirst = rfcRootOfLog(t, e, first)
		}
		// Between a tree and itself the proof is empty and the roots equal
		// (RFC 9162 §2.1.4.2 verifies 0 < first < second).
		if first == h2.TreeSize {
			if len(cj.Proof) != 0 || rootFirst != root2 {
				t.Errorf("consistency of the head with itself: %d hashes", len(cj.Proof))
			}
		} else if !rfc9162.VerifyConsistency(first, h2.TreeSize, rootFirst, root2, b64hashes(t, cj.Proof)) {
			t.Errorf("consistency proof %d -> %d does not verify", first, h2.TreeSize)
		}
	}
	var old inclusion
	getJSON(t, c, fmt.Sprintf("%s%s?id=2&tree_size=%d", e.srv.URL, auditProofPath, h1.TreeSize), &old)
	if !rfc9162.VerifyInclusion(2, h1.TreeSize, b64hash(t, old.LeafHash), b64hashes(t, old.Proof), root1) {
		t.Error("proof against the first head's size does not verify against it")
	}

	refusals := []struct {
		path   string
		status int
	}{
		{auditProofPath, 400},
		{auditProofPath + "?id=abc", 400},
		{auditProofPath + "?id=-1", 400},
		{auditProofPath + "?id=99999999999999999999999", 400},
		{fmt.Sprintf("%s?id=%d", auditProofPath, h2.TreeSize), 404},
		{fmt.Sprintf("%s?id=0&tree_size=%d", auditProofPath, h2.TreeSize+1), 400},
		{auditProofPath + "?id=0&tree_size=0", 400},
		{auditConsistencyPath + "?first=1&second=0", 400},
		{auditConsistencyPath, 400},
		{auditConsistencyPath + "?first=0", 400},
		{fmt.Sprintf("%s?first=3&second=2", auditConsistencyPath), 400},
		{fmt.Sprintf("%s?first=1&second=%d", auditConsistencyPath, h2.TreeSize+1), 400},
	}
	for _, rf := range refusals {
		var p map[string]any
		resp := getJSON(t, c, e.srv.URL+rf.path, &p)
		if resp.StatusCode != rf.status || resp.Header.Get("Content-Type") != "application/problem+json" ||
			p["status"] != float64(rf.status) || p["detail"] == "" {
			t.Errorf("%s: %d %v, want %d problem", rf.path, resp.StatusCode, p, rf.status)
		}
	}
}

// TestAuditProofsBounded: when every proof slot is taken, a request waits,
// then gets 503 with Retry-After; once one frees up, it is served.
func TestAuditProofsBounded(t *testing.T) {
	db, raw := auditSQLite(t)
	e := newAuditEnv(t, db, raw, true, Config{})
	if err := e.p.appendAudit(context.Background(), audit.Event{Actor: audit.Actor{Kind: audit.ActorSystem, ID: "test"},
		Action: audit.KeysRotated, Outcome: audit.Success}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.SignTreeHead(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range cap(e.p.auditSlots) {
		e.p.auditSlots <- struct{}{}
	}
	var p map[string]any
	resp := getJSON(t, http.DefaultClient, e.srv.URL+auditProofPath+"?id=0", &p)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || p["status"] != float64(503) {
		t.Fatalf("all slots taken: %d %v", resp.StatusCode, p)
	}
	<-e.p.auditSlots
	var in map[string]any
	if resp := getJSON(t, http.DefaultClient, e.srv.URL+auditProofPath+"?id=0", &in); resp.StatusCode != http.StatusOK {
		t.Fatalf("a slot free: %d %v", resp.StatusCode, in)
	}
}

// rfcRootOfLog is MTH (RFC 9162 section 2.1.1) of the first n stored
// leaves, each recomputed from its event.
func rfcRootOfLog(t *testing.T, e *auditEnv, n uint64) [32]byte {
	t.Helper()
	rs, err := e.db.Events(context.Background(), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	var leaves [][32]byte
	for _, r := range rs {
		leaves = append(leaves, rfc9162.Leaf(r.Entry()))
	}
	return rfc9162.MTH(leaves)
}

// TestAuditMeEvents: the citizen reads their own events with their SSO
// session, each with a proof that verifies against the signed head given.
func TestAuditMeEvents(t *testing.T) {
	db, raw := auditSQLite(t)
	e := newAuditEnv(t, db, raw, true, Config{})
	ctx := context.Background()
	pub := e.signer.Public().(ed25519.PublicKey)

	resp, body := e.browser().get(meEventsPath)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(body, `"status":401`) {
		t.Fatalf("without a session: %d %s", resp.StatusCode, body)
	}

	// Someone else's events, then this citizen's, then an event about the
	// registry person linked to the account.
	other := e.browser()
	f := other.startLogin()
	other.login(f, "someone-else@example.test", "x-password", "")
	b := e.browser()
	e.signIn(b, nil)
	person := audit.Event{Actor: audit.Actor{Kind: audit.ActorClient, ID: "rp"}, Action: audit.RegistryDisclosed,
		Subject: e.ps.Person("p1"), ClientID: "rp", PublicBody: "ramq", Attributes: []string{"birthdate"}, Outcome: audit.Success}
	if err := db.AppendEvents(ctx, &person); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.SignTreeHead(ctx); err != nil {
		t.Fatal(err)
	}
	// One more, not covered by a head yet.
	f = b.startLogin()
	b.login(f, testEmail, "wrong-password", "rid-late")

	type meJSON struct {
		TreeHead *headJSON `json:"tree_head"`
		Events   []struct {
			Event struct {
				ID       uint64 `json:"id"`
				Action   string `json:"action"`
				Subject  string `json:"subject"`
				LeafHash string `json:"leaf_hash"`
			} `json:"event"`
			Proof []string `json:"inclusion_proof"`
		} `json:"events"`
		Next *uint64 `json:"next_after"`
	}
	var me meJSON
	r, body := b.get(meEventsPath)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Cache-Control"), "no-store") {
		t.Fatalf("me/events: %d %s", r.StatusCode, body)
	}
	if err := json.Unmarshal([]byte(body), &me); err != nil {
		t.Fatal(err)
	}
	if me.TreeHead == nil {
		t.Fatal("no tree head")
	}
	root := checkHead(t, *me.TreeHead, pub)
	var actions []string
	for _, ev := range me.Events {
		if !isProtocolEvent(ev.Event.Action) {
			actions = append(actions, ev.Event.Action)
		}
		if ev.Event.Subject != e.ps.Account("a1") && ev.Event.Subject != e.ps.Person("p1") {
			t.Errorf("event %d about %q, not this citizen", ev.Event.ID, ev.Event.Subject)
		}
		rec, err := db.Events(ctx, ev.Event.ID, ev.Event.ID+1)
		if err != nil || len(rec) != 1 {
			t.Fatal(err)
		}
		leaf := b64hash(t, ev.Event.LeafHash)
		if leaf != rfc9162.Leaf(rec[0].Entry()) {
			t.Errorf("event %d: leaf hash does not match its fields", ev.Event.ID)
		}
		switch {
		case ev.Event.ID >= me.TreeHead.TreeSize:
			if ev.Proof != nil {
				t.Errorf("event %d after the head has a proof", ev.Event.ID)
			}
		case !rfc9162.VerifyInclusion(ev.Event.ID, me.TreeHead.TreeSize, leaf, b64hashes(t, ev.Proof), root):
			t.Errorf("event %d: inclusion proof does not verify", ev.Event.ID)
		}
	}
	want := []string{audit.SigninSuccess, audit.ConsentGiven, audit.RegistryDisclosed, audit.SigninFailure}
	if !slices.Equal(actions, want) || me.Next != nil {
		t.Fatalf("events %v (next %v), want %v", actions, me.Next, want)
	}

	// Pages.
	var ids []uint64
	after := ""
	for range 10 {
		var pg meJSON
		_, body := b.get(meEventsPath + "?limit=1" + after)
		if err := json.Unmarshal([]byte(body), &pg); err != nil {
			t.Fatal(err)
		}
		for _, ev := range pg.Events {
			ids = append(ids, ev.Event.ID)
		}
		if pg.Next == nil {
			break
		}
		after = fmt.Sprintf("&after=%d", *pg.Next)
	}
	var all []uint64
	for _, ev := range me.Events {
		all = append(all, ev.Event.ID)
	}
	if !slices.Equal(ids, all) {
		t.Errorf("paged %v, want %v", ids, all)
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?after=x", "?after=18446744073709551615"} {
		if r, _ := b.get(meEventsPath + q); r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, r.StatusCode)
		}
	}
}

// TestAuditTwoInstancesPostgres: two providers, each on its own store and
// batcher, on one PostgreSQL database, sign citizens in concurrently while
// both sign tree heads: one gap-free tree that verifies, holding every
// acknowledged sign-in.
func TestAuditTwoInstancesPostgres(t *testing.T) {
	u := auditPostgres(t)
	db1, raw1 := openPostgres(t, u)
	db2, raw2 := openPostgres(t, u)
	cfg := Config{LoginPerAddress: 100000}
	e1 := newAuditEnv(t, db1, raw1, true, cfg)
	e2 := newAuditEnv(t, db2, raw2, false, cfg)
	ctx := context.Background()

	const workers, rounds = 6, 8
	var (
		mu        sync.Mutex
		succeeded []string
		failed    int
	)
	stopHeads := make(chan struct{})
	headsDone := make(chan error, 2)
	for _, e := range []*auditEnv{e1, e2} {
		go func() {
			for {
				select {
				case <-stopHeads:
					headsDone <- nil
					return
				case <-time.After(15 * time.Millisecond):
				}
				if _, err := e.log.SignTreeHead(ctx); err != nil {
					headsDone <- err
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				e := []*auditEnv{e1, e2}[(w+i)%2]
				b := e.browser()
				form := b.startLogin()
				rid := fmt.Sprintf("w%d-r%d", w, i)
				if r := b.login(form, fmt.Sprintf("ghost-%s@example.test", rid), "x-password", rid+"-fail"); r.StatusCode == http.StatusOK {
					mu.Lock()
					failed++
					mu.Unlock()
				}
				if r := b.login(form, testEmail, testPassword, rid); r.StatusCode == http.StatusSeeOther {
					mu.Lock()
					succeeded = append(succeeded, rid)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(stopHeads)
	for range 2 {
		if err := <-headsDone; err != nil {
			t.Fatalf("signing heads under load: %v", err)
		}
	}
	if _, err := e2.log.SignTreeHead(ctx); err != nil {
		t.Fatal(err)
	}
	if len(succeeded) != workers*rounds || failed != workers*rounds {
		t.Fatalf("%d sign-ins and %d failures acknowledged, want %d each", len(succeeded), failed, workers*rounds)
	}
	rep, err := audit.Verify(ctx, db1, audit.VerifyOptions{PublicKeys: []crypto.PublicKey{e1.signer.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify: %v", rep.Findings)
	}
	rs := e1.allEvents()
	if rep.Size != e1.mark+uint64(len(rs)) || len(rs) != 2*workers*rounds || rep.TreeHeads < 2 {
		t.Fatalf("verified %d events and %d heads; %d stored, want %d", rep.Size, rep.TreeHeads, len(rs), 2*workers*rounds)
	}
	seen := map[string]bool{}
	for i, r := range rs {
		if r.ID != e1.mark+uint64(i) {
			t.Fatalf("event %d has ID %d", i, r.ID)
		}
		if r.Action == audit.SigninSuccess {
			seen[r.RequestID] = true
		}
	}
	for _, rid := range succeeded {
		if !seen[rid] {
			t.Errorf("acknowledged sign-in %s has no event", rid)
		}
	}
}
