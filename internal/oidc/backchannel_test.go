package oidc

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/sqltest"
	"github.com/sqin/sqin/internal/store"
)

// logoutRP is a service's back-channel logout endpoint.
type logoutRP struct {
	srv    *httptest.Server
	status atomic.Int32 // the answer; 0 means 200
	delay  atomic.Int64 // nanoseconds before answering
	mu     sync.Mutex
	tokens []string // logout tokens received, in order
	hits   atomic.Int32
}

func newLogoutRP(t testing.TB) *logoutRP {
	rp := &logoutRP{}
	rp.srv = httptest.NewUnstartedServer(http.HandlerFunc(rp.serve))
	rp.srv.Start()
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *logoutRP) serve(w http.ResponseWriter, r *http.Request) {
	rp.hits.Add(1)
	time.Sleep(time.Duration(rp.delay.Load()))
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "want a form POST", http.StatusBadRequest)
		return
	}
	if st := rp.status.Load(); st != 0 {
		w.WriteHeader(int(st))
		return
	}
	tok := r.PostFormValue("logout_token")
	if tok == "" || len(r.PostForm) != 1 {
		http.Error(w, "want logout_token alone", http.StatusBadRequest)
		return
	}
	rp.mu.Lock()
	rp.tokens = append(rp.tokens, tok)
	rp.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (rp *logoutRP) received() []string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]string(nil), rp.tokens...)
}

// logoutClient registers a confidential client of the test redirect URI
// with the given logout URIs.
func (e *env) logoutClient(id, alg, backchannel, frontchannel string) {
	e.t.Helper()
	e.addClient(&sqin.Client{ID: id, Name: "Service " + id, AuthMethod: sqin.AuthSecretBasic, SigningAlg: alg,
		RedirectURIs: []string{testRedirect}, PostLogoutRedirectURIs: []string{"https://rp.example.test/bye"},
		GrantTypes: []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken},
		Scopes:     []string{"openid", "profile", "email"}, MinLoA: sqin.LoA1,
		BackchannelLogoutURI: backchannel, FrontchannelLogoutURI: frontchannel})
}

// signInAs runs the code flow for client id in browser b and returns the
// token response.
func (e *env) signInAs(b *browser, id string) map[string]any {
	e.t.Helper()
	u, ap := e.authorizeURL(func(q url.Values) { q.Set("client_id", id) })
	loc := b.follow(u)
	code := loc.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	status, tok, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {testRedirect}, "code_verifier": {ap.verifier}},
		func(r *http.Request) { r.SetBasicAuth(id, testSecret) })
	if status != http.StatusOK {
		e.t.Fatalf("token for %s: %d %v", id, status, tok)
	}
	return tok
}

// signOut ends b's session with an id_token_hint, as a service does.
func (e *env) signOut(b *browser, idToken string) {
	e.t.Helper()
	resp, body := b.get("/logout?" + url.Values{"id_token_hint": {idToken}}.Encode())
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
}

// verifyLogoutToken checks raw as a service would, with coreos/go-oidc
// against the provider's published keys, and returns its claims.
func verifyLogoutToken(t *testing.T, issuer, clientID, raw string) map[string]any {
	t.Helper()
	ctx := t.Context()
	ks := gooidc.NewRemoteKeySet(ctx, issuer+"/jwks.json")
	v := gooidc.NewVerifier(issuer, ks, &gooidc.Config{ClientID: clientID,
		SupportedSigningAlgs: []string{"ES256", "RS256", "PS256"}})
	lt, err := v.VerifyLogout(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc refuses the logout token: %v", err)
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType]; typ != "logout+jwt" {
		t.Errorf("typ = %v, want logout+jwt", typ)
	}
	var cl map[string]any
	if err := lt.Claims(&cl); err != nil {
		t.Fatal(err)
	}
	events, _ := cl["events"].(map[string]any)
	if ev, ok := events[backchannelEvent].(map[string]any); !ok || len(ev) != 0 || len(events) != 1 {
		t.Errorf("events = %v", cl["events"])
	}
	if _, ok := cl["nonce"]; ok {
		t.Error("logout token has a nonce")
	}
	if lt.TokenID == "" || lt.Subject == "" || lt.SessionID == "" {
		t.Errorf("jti %q, sub %q, sid %q: want all three", lt.TokenID, lt.Subject, lt.SessionID)
	}
	if life := lt.Expiry.Sub(lt.IssuedAt); life <= 0 || life > 2*time.Minute {
		t.Errorf("logout token lives %v, want at most 2 min", life)
	}
	return cl
}

// TestBackchannelLogout: two services of one session receive, after
// sign-out, a logout token that coreos/go-oidc verifies, with the sub and
// sid of their ID tokens, each signed with the service's algorithm.
func TestBackchannelLogout(t *testing.T) {
	e := newEnv(t)
	rp := newLogoutRP(t)
	e.logoutClient("rp-es", keys.ES256, rp.srv.URL+"/bc/es", "")
	e.logoutClient("rp-ps", "PS256", rp.srv.URL+"/bc/ps?tenant=1", "")
	b := e.browser()
	tokES := e.signInAs(b, "rp-es")
	tokPS := e.signInAs(b, "rp-ps")
	e.signIn(b, nil) // client rp registered no logout URI

	e.signOut(b, tokES["id_token"].(string))
	n, err := e.p.DeliverLogouts(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("DeliverLogouts = %d, %v; want 2", n, err)
	}
	got := rp.received()
	if len(got) != 2 {
		t.Fatalf("service received %d logout tokens, want 2", len(got))
	}
	byAud := map[string]map[string]any{}
	wantAlg := map[string]string{"rp-es": "ES256", "rp-ps": "PS256"}
	for _, raw := range got {
		aud := claimsOf(t, raw)["aud"].(string)
		byAud[aud] = verifyLogoutToken(t, e.srv.URL, aud, raw)
		jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.PS256})
		if err != nil {
			t.Fatal(err)
		}
		if alg := jws.Signatures[0].Header.Algorithm; alg != wantAlg[aud] {
			t.Errorf("%s: logout token signed %s, want the client's %s", aud, alg, wantAlg[aud])
		}
	}
	for aud, tok := range map[string]map[string]any{"rp-es": tokES, "rp-ps": tokPS} {
		idt := claimsOf(t, tok["id_token"].(string))
		lt := byAud[aud]
		if lt == nil {
			t.Fatalf("no logout token for %s", aud)
		}
		if lt["sid"] != idt["sid"] || lt["sub"] != idt["sub"] || lt["iss"] != idt["iss"] {
			t.Errorf("%s: logout token sid/sub/iss %v/%v/%v, ID token %v/%v/%v", aud,
				lt["sid"], lt["sub"], lt["iss"], idt["sid"], idt["sub"], idt["iss"])
		}
	}
	if n, _ := e.db.CountLogouts(t.Context()); n != 0 {
		t.Errorf("%d deliveries left in the queue", n)
	}
	// Nothing more to send.
	if n, err := e.p.DeliverLogouts(t.Context()); n != 0 || err != nil {
		t.Errorf("second pass: %d, %v", n, err)
	}
}

// TestBackchannelRetry: a service that is down (503, then a closed port)
// gets the logout once it is up again, after backed-off retries.
func TestBackchannelRetry(t *testing.T) {
	for _, mode := range []string{"503", "closed port"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			rp := &logoutRP{}
			var uri string
			var start func()
			switch mode {
			case "503":
				rp = newLogoutRP(t)
				rp.status.Store(http.StatusServiceUnavailable)
				uri = rp.srv.URL + "/bc"
				start = func() { rp.status.Store(0) }
			case "closed port":
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr := l.Addr().String()
				l.Close()
				uri = "http://" + addr + "/bc"
				start = func() {
					l, err := net.Listen("tcp", addr)
					if err != nil {
						t.Skipf("cannot listen on %s again: %v", addr, err)
					}
					rp.srv = httptest.NewUnstartedServer(http.HandlerFunc(rp.serve))
					rp.srv.Listener.Close()
					rp.srv.Listener = l
					rp.srv.Start()
					t.Cleanup(rp.srv.Close)
				}
			}
			e.logoutClient("rp-bc", keys.ES256, uri, "")
			b := e.browser()
			tok := e.signInAs(b, "rp-bc")
			e.signOut(b, tok["id_token"].(string))
			ctx := t.Context()
			t0 := e.now

			deliver := func(after time.Duration, want int) {
				t.Helper()
				e.now = t0.Add(after)
				n, err := e.p.DeliverLogouts(ctx)
				if err != nil || n != want {
					t.Fatalf("at +%v: delivered %d, %v; want %d", after, n, err, want)
				}
			}
			deliver(0, 0) // first attempt fails
			if mode == "503" && rp.hits.Load() != 1 {
				t.Fatalf("%d attempts, want 1", rp.hits.Load())
			}
			// The first retry waits 5 to 10 s, the second 10 to 20 s more.
			deliver(4900*time.Millisecond, 0)
			if mode == "503" && rp.hits.Load() != 1 {
				t.Fatalf("retried before the backoff: %d attempts", rp.hits.Load())
			}
			deliver(10*time.Second, 0) // second attempt fails
			if mode == "503" && rp.hits.Load() != 2 {
				t.Fatalf("%d attempts, want 2", rp.hits.Load())
			}
			start()
			deliver(14*time.Second, 0) // at most 4 s later: still waiting
			deliver(30*time.Second, 1)
			got := rp.received()
			if len(got) != 1 {
				t.Fatalf("service received %d tokens, want 1", len(got))
			}
			// Signed at the attempt, so still fresh for the service.
			cl := claimsOf(t, got[0])
			if iat := int64(cl["iat"].(float64)); iat != e.now.Unix() {
				t.Errorf("iat %d, want the attempt's time %d", iat, e.now.Unix())
			}
			if cl["sid"] != claimsOf(t, tok["id_token"].(string))["sid"] {
				t.Error("sid differs from the ID token's")
			}
			if n, _ := e.db.CountLogouts(ctx); n != 0 {
				t.Errorf("%d deliveries left", n)
			}
		})
	}
}

// TestBackchannelGiveUp: a delivery that keeps failing is dropped once it
// is older than MaxAge, and a delivery for a client that no longer has a
// back-channel URI is dropped at once.
func TestBackchannelGiveUp(t *testing.T) {
	e := newEnv(t)
	rp := newLogoutRP(t)
	rp.status.Store(http.StatusInternalServerError)
	e.logoutClient("rp-bc", keys.ES256, rp.srv.URL+"/bc", "")
	b := e.browser()
	tok := e.signInAs(b, "rp-bc")
	e.signOut(b, tok["id_token"].(string))
	ctx := t.Context()
	t0 := e.now
	for e.now.Sub(t0) < 25*time.Hour {
		if n, err := e.p.DeliverLogouts(ctx); n != 0 || err != nil {
			t.Fatalf("DeliverLogouts = %d, %v", n, err)
		}
		if left, _ := e.db.CountLogouts(ctx); left == 0 {
			break
		}
		e.now = e.now.Add(time.Hour)
	}
	if left, _ := e.db.CountLogouts(ctx); left != 0 {
		t.Fatal("delivery not given up after 24 h")
	}
	if h := int(rp.hits.Load()); h < 20 || h > 26 {
		t.Errorf("%d attempts in 24 h at an hourly cap, want about 24", h)
	}

	// The client is deleted after the sign-out: its pending delivery goes
	// without a POST.
	rp.status.Store(0)
	b2 := e.browser()
	tok = e.signInAs(b2, "rp-bc")
	e.signOut(b2, tok["id_token"].(string))
	if err := e.db.DeleteClient(ctx, "rp-bc"); err != nil {
		t.Fatal(err)
	}
	before := rp.hits.Load()
	if n, err := e.p.DeliverLogouts(ctx); n != 0 || err != nil {
		t.Fatalf("DeliverLogouts = %d, %v", n, err)
	}
	if left, _ := e.db.CountLogouts(ctx); left != 0 || rp.hits.Load() != before {
		t.Fatalf("delivery for a deleted client: %d left, %d POSTs", left, rp.hits.Load()-before)
	}
}

// providerOn builds a second provider, as another process would: same
// store, keys loaded from it with the same master key, same settings.
func providerOn(t *testing.T, issuer string, st store.Store, lc LogoutConfig) *Provider {
	t.Helper()
	ctx := context.Background()
	sealer, _ := keys.NewSealer(make([]byte, 32))
	km, err := keys.NewManager(ctx, st, sealer, keys.Config{Keep: time.Hour, RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	return testProvider(t, st, km, Config{Issuer: issuer, Logout: lc})
}

// runWorker runs p's delivery loop until the returned stop is called
// (stop waits for it to return).
func runWorker(p *Provider) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.RunLogoutDelivery(ctx)
		close(done)
	}()
	return func() {
		cancel()
		<-done
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBackchannelSurvivesRestart: a delivery queued by one instance whose
// worker stopped before sending it is sent by a new provider on the same
// database.
func TestBackchannelSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	rp := newLogoutRP(t)
	e.logoutClient("rp-bc", keys.ES256, rp.srv.URL+"/bc", "")
	e.p.now = time.Now // real time: the workers run on their own

	stop := runWorker(e.p)
	stop() // the first instance's worker stops before the sign-out
	b := e.browser()
	tok := e.signInAs(b, "rp-bc")
	e.signOut(b, tok["id_token"].(string))
	time.Sleep(100 * time.Millisecond)
	if n, _ := e.db.CountLogouts(t.Context()); n != 1 || rp.hits.Load() != 0 {
		t.Fatalf("before restart: %d queued, %d sent; want 1 and 0", n, rp.hits.Load())
	}

	p2 := providerOn(t, e.srv.URL, e.db, LogoutConfig{Poll: 20 * time.Millisecond})
	stop2 := runWorker(p2)
	defer stop2()
	waitFor(t, "the delivery", func() bool { return len(rp.received()) == 1 })
	cl := verifyLogoutToken(t, e.srv.URL, "rp-bc", rp.received()[0])
	if cl["sid"] != claimsOf(t, tok["id_token"].(string))["sid"] {
		t.Error("sid differs from the ID token's")
	}
	waitFor(t, "an empty queue", func() bool { n, _ := e.db.CountLogouts(t.Context()); return n == 0 })
}

// TestBackchannelWakesOnSignOut: a running worker sends at once after a
// sign-out on its instance, without waiting for its poll.
func TestBackchannelWakesOnSignOut(t *testing.T) {
	e := newEnv(t)
	rp := newLogoutRP(t)
	e.logoutClient("rp-bc", keys.ES256, rp.srv.URL+"/bc", "")
	p := providerOn(t, e.srv.URL, e.db, LogoutConfig{Poll: time.Hour})
	e.p.now = time.Now
	e.p.logoutWake = p.logoutWake // one process: the page and the worker share it
	stop := runWorker(p)
	defer stop()
	b := e.browser()
	tok := e.signInAs(b, "rp-bc")
	time.Sleep(50 * time.Millisecond) // the worker's first pass is over
	e.signOut(b, tok["id_token"].(string))
	waitFor(t, "the delivery", func() bool { return len(rp.received()) == 1 })
}

// postgresDB opens and migrates a new schema of SQIN_TEST_POSTGRES,
// dropped when t ends (sqltest.PostgresURL).
func postgresDB(t *testing.T) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), sqltest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestBackchannelTwoWorkersPostgres: two instances' workers on one
// PostgreSQL database share the queue without ever sending a delivery
// twice.
func TestBackchannelTwoWorkersPostgres(t *testing.T) {
	db := postgresDB(t)
	ctx := t.Context()
	rp := newLogoutRP(t)
	rp.delay.Store(int64(5 * time.Millisecond)) // widen the window for a double send
	const issuer = "https://op.example.test"
	lc := LogoutConfig{Poll: 10 * time.Millisecond, Batch: 3, Parallel: 2}
	p1 := providerOn(t, issuer, db, lc)
	p2 := providerOn(t, issuer, db, lc)

	clients := []string{"rp-a", "rp-b", "rp-c"}
	for _, id := range clients {
		if err := db.CreateClient(ctx, &sqin.Client{ID: id, AuthMethod: sqin.AuthNone, SigningAlg: keys.ES256,
			BackchannelLogoutURI: rp.srv.URL + "/bc/" + id}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	const sessions = 20
	for i := range sessions {
		sess := "sess-" + strings.Repeat("x", i)
		for _, id := range clients {
			code := "code-" + id + sess
			if err := db.CreateAuthCode(ctx, &sqin.AuthCode{Hash: code, ClientID: id, AccountID: "acct", SessionID: sess,
				GrantID: "grant-" + id + sess, ExpiresAt: now.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			if err := db.ExchangeCode(ctx, code, now, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				return &sqin.Grant{ID: c.GrantID, ClientID: c.ClientID, AccountID: c.AccountID, SessionID: c.SessionID,
					CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, nil, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop1, stop2 := runWorker(p1), runWorker(p2)
	for i := range sessions { // sign-outs arrive on both instances while they deliver
		p := []*Provider{p1, p2}[i%2]
		if _, err := p.EndSession(ctx, "sess-"+strings.Repeat("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	const total = sessions * 3
	waitFor(t, "every delivery", func() bool { return len(rp.received()) >= total })
	time.Sleep(200 * time.Millisecond) // a duplicate would have arrived by now
	stop1()
	stop2()

	seen := map[string]int{}
	for _, raw := range rp.received() {
		if _, err := p1.keys.Verify(ctx, raw, "logout+jwt", keys.ES256); err != nil {
			t.Fatal(err)
		}
		cl := claimsOf(t, raw)
		seen[cl["aud"].(string)+" "+cl["sid"].(string)]++
	}
	if len(seen) != total {
		t.Errorf("%d distinct deliveries, want %d", len(seen), total)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s sent %d times", k, n)
		}
	}
	if got := len(rp.received()); got != total {
		t.Errorf("%d POSTs received, want %d", got, total)
	}
	if n, _ := db.CountLogouts(ctx); n != 0 {
		t.Errorf("%d deliveries left", n)
	}
}
