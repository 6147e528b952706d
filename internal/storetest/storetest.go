// Package storetest is the conformance suite that every store.Store
// implementation passes: each documented behaviour of internal/store, on
// a fresh store per concern.
package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

// Run runs the suite. newStore returns an empty, ready store that is
// closed when t ends; subtests call it in parallel.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Clients", testClients},
		{"DeleteClient", testDeleteClient},
		{"Accounts", testAccounts},
		{"Persons", testPersons},
		{"Sessions", testSessions},
		{"DeleteSession", testDeleteSession},
		{"SessionConsent", testSessionConsent},
		{"IssueCode", testIssueCode},
		{"IssueCodeConcurrent", testIssueCodeConcurrent},
		{"AuthRequests", testAuthRequests},
		{"ExchangeCode", testExchangeCode},
		{"ExchangeCodeErrors", testExchangeCodeErrors},
		{"ExchangeCodeConcurrent", testExchangeCodeConcurrent},
		{"RotateRefreshToken", testRotateRefreshToken},
		{"RotateRefreshTokenErrors", testRotateRefreshTokenErrors},
		{"RotateRefreshTokenConcurrent", testRotateRefreshTokenConcurrent},
		{"Grants", testGrants},
		{"AccessTokens", testAccessTokens},
		{"TokenState", testTokenState},
		{"AccountSubject", testAccountSubject},
		{"Consents", testConsents},
		{"SigningKeys", testSigningKeys},
		{"RateLimits", testRateLimits},
		{"RateLimitsConcurrent", testRateLimitsConcurrent},
		{"UseOnce", testUseOnce},
		{"UseOnceConcurrent", testUseOnceConcurrent},
		{"ReplayBatches", testReplayBatches},
		{"LegacySubjects", testLegacySubjects},
		{"InitialAccessTokens", testInitialAccessTokens},
		{"RegisterClient", testRegisterClient},
		{"RegisterClientConcurrent", testRegisterClientConcurrent},
		{"UpdateRegisteredClient", testUpdateRegisteredClient},
		{"ImportLegacySubjects", testImportLegacySubjects},
		{"EndSession", testEndSession},
		{"LogoutQueueLimit", testLogoutQueueLimit},
		{"ClaimLogouts", testClaimLogouts},
		{"ClaimLogoutsConcurrent", testClaimLogoutsConcurrent},
		{"AuditAppend", testAuditAppend},
		{"AuditWithWrites", testAuditWithWrites},
		{"AuditRollback", testAuditRollback},
		{"AuditConcurrent", testAuditConcurrent},
		{"AuditTreeHeads", testAuditTreeHeads},
		{"AuditSubtrees", testAuditSubtrees},
		{"AuditRedact", testAuditRedact},
		{"AuditLog", testAuditLog},
		{"Registry", testRegistry},
		{"Authorisations", testAuthorisations},
		{"LocalSecrets", testLocalSecrets},
		{"SecretDeliveries", testSecretDeliveries},
		{"HitAll", testHitAll},
		{"AdminTokens", testAdminTokens},
		{"Signup", testSignup},
		{"Letters", testLetters},
		{"PasswordResets", testPasswordResets},
		{"Ping", func(t *testing.T, s store.Store) { ok(t, s.Ping(t.Context())) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// t0 is the suite's "now"; every time has millisecond precision.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// errInternal in a table stands for any error with code sqin.EInternal.
var errInternal = errors.New("an internal error")

// checkErr checks that err is want: errInternal, one of sqin's sentinel
// errors (see isErr) or another error that errors.Is matches.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	var kind *sqin.Error
	switch {
	case want == errInternal:
		if sqin.ErrorCode(err) != sqin.EInternal {
			t.Fatalf("error %v, want an internal error", err)
		}
	case errors.As(want, &kind):
		isErr(t, err, kind)
	case !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

// isErr checks that err is kind and carries its code.
func isErr(t *testing.T, err error, kind *sqin.Error) {
	t.Helper()
	if !errors.Is(err, kind) || sqin.ErrorCode(err) != kind.Code || sqin.ErrorMessage(err) != kind.Message {
		t.Fatalf("error %v, want %v", err, kind)
	}
}

// same fails t unless got equals want, where nil and empty slices are
// alike and times compare with Equal (and non-zero ones must be UTC).
func same(t *testing.T, got, want any) {
	t.Helper()
	if d := diff("", reflect.ValueOf(got), reflect.ValueOf(want)); d != "" {
		t.Fatalf("%T%s", got, d)
	}
}

func diff(path string, g, w reflect.Value) string {
	if g.Type() == reflect.TypeFor[time.Time]() {
		gt, wt := g.Interface().(time.Time), w.Interface().(time.Time)
		switch {
		case !gt.Equal(wt):
			return fmt.Sprintf("%s: got %v, want %v", path, gt, wt)
		case !gt.IsZero() && gt.Location() != time.UTC:
			return fmt.Sprintf("%s: %v is not UTC", path, gt)
		}
		return ""
	}
	switch g.Kind() {
	case reflect.Pointer:
		if g.IsNil() || w.IsNil() {
			if g.IsNil() != w.IsNil() {
				return fmt.Sprintf("%s: got %v, want %v", path, g, w)
			}
			return ""
		}
		return diff(path, g.Elem(), w.Elem())
	case reflect.Struct:
		for i := range g.NumField() {
			if d := diff(path+"."+g.Type().Field(i).Name, g.Field(i), w.Field(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice:
		if g.Len() != w.Len() {
			return fmt.Sprintf("%s: got %v, want %v", path, g, w)
		}
		for i := range g.Len() {
			if d := diff(fmt.Sprintf("%s[%d]", path, i), g.Index(i), w.Index(i)); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(g.Interface(), w.Interface()) {
		return fmt.Sprintf("%s: got %v, want %v", path, g, w)
	}
	return ""
}

// concurrently runs fn n times at once and returns the errors.
func concurrently(n int, fn func() error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn()
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func fullClient(id string) *sqin.Client {
	return &sqin.Client{
		ID:                     id,
		SecretHash:             "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Name:                   "Ministère de l'Éducation — Côté « portail »",
		RedirectURIs:           []string{"https://rp.example/cb", "https://rp.example/cb2?x=1&y=é"},
		PostLogoutRedirectURIs: []string{"https://rp.example/bye"},
		GrantTypes:             []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken},
		Scopes:                 []string{"openid", "profile", "offline_access"},
		Claims:                 []string{"given_name", "family_name"},
		AuthMethod:             sqin.AuthPrivateKey,
		SigningAlg:             "PS256",
		MinLoA:                 sqin.LoA2,
		Sector:                 "ministere-education",
		JWKS:                   []byte(`{"keys":[{"kty":"EC","crv":"P-256"}]}`),
		JWKSURI:                "https://rp.example/jwks.json",
		RequirePAR:             true,
		RequireDPoP:            true,
		Profile:                sqin.ProfileFAPI2,
		SubjectType:            sqin.SubjectPublic,
		BackchannelLogoutURI:   "https://rp.example/backchannel",
		FrontchannelLogoutURI:  "https://rp.example/frontchannel",
		Purpose:                "allocation-famille",
		CreatedAt:              t0.Add(-time.Hour),
	}
}

func testClients(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := fullClient("rp-full")
	empty := &sqin.Client{ID: "rp-empty", RedirectURIs: []string{}, AuthMethod: sqin.AuthNone}
	for _, c := range []*sqin.Client{full, empty} {
		ok(t, s.CreateClient(ctx, c))
		got, err := s.GetClient(ctx, c.ID)
		ok(t, err)
		same(t, got, c)
	}
	isErr(t, s.CreateClient(ctx, fullClient("rp-full")), sqin.ErrConflict)
	_, err := s.GetClient(ctx, "rp-missing")
	isErr(t, err, sqin.ErrNotFound)

	all, err := s.ListClients(ctx)
	ok(t, err)
	same(t, all, []*sqin.Client{empty, full})
}

func testDeleteClient(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateClient(ctx, fullClient("rp-a")))
	ok(t, s.CreateClient(ctx, fullClient("rp-b")))
	a := issueGrant(t, s, "code-a", "grant-a", "rp-a", "sess", false)
	b := issueGrant(t, s, "code-b", "grant-b", "rp-b", "sess", false)
	ok(t, s.SaveConsent(ctx, &sqin.Consent{AccountID: "acct", ClientID: "rp-a", GrantedAt: t0}))
	ok(t, s.SaveConsent(ctx, &sqin.Consent{AccountID: "acct", ClientID: "rp-b", GrantedAt: t0}))

	ok(t, s.DeleteClient(ctx, "rp-a"))
	_, err := s.GetClient(ctx, "rp-a")
	isErr(t, err, sqin.ErrNotFound)
	if g, err := s.GetGrant(ctx, a.ID); err != nil || g.RevokedAt.IsZero() {
		t.Errorf("grant of the deleted client: %+v, %v; want it revoked", g, err)
	}
	if g, err := s.GetGrant(ctx, b.ID); err != nil || !g.RevokedAt.IsZero() {
		t.Errorf("grant of another client: %+v, %v; want it untouched", g, err)
	}
	_, err = s.GetConsent(ctx, "acct", "rp-a")
	isErr(t, err, sqin.ErrNotFound)
	_, err = s.GetConsent(ctx, "acct", "rp-b")
	ok(t, err)
	isErr(t, s.DeleteClient(ctx, "rp-a"), sqin.ErrNotFound)
}

func testAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := &sqin.Account{ID: "acct-1", Email: "marie-ève.côté@exemple.québec", EmailVerified: true,
		PasswordHash: "$argon2id$hash", LoA: sqin.LoA3, PersonID: "person-1", Locale: "fr", Locked: true,
		CreatedAt: t0.Add(-48 * time.Hour), UpdatedAt: t0}
	empty := &sqin.Account{ID: "acct-2", Email: "b@example.com"}
	for _, a := range []*sqin.Account{full, empty} {
		ok(t, s.CreateAccount(ctx, a))
		got, err := s.GetAccount(ctx, a.ID)
		ok(t, err)
		same(t, got, a)
		got, err = s.GetAccountByEmail(ctx, a.Email)
		ok(t, err)
		same(t, got, a)
	}
	isErr(t, s.CreateAccount(ctx, &sqin.Account{ID: "acct-1", Email: "other@example.com"}), sqin.ErrConflict)
	isErr(t, s.CreateAccount(ctx, &sqin.Account{ID: "acct-3", Email: full.Email}), sqin.ErrConflict)
	_, err := s.GetAccount(ctx, "acct-3")
	isErr(t, err, sqin.ErrNotFound)
	_, err = s.GetAccountByEmail(ctx, "missing@example.com")
	isErr(t, err, sqin.ErrNotFound)
}

func testPersons(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := &sqin.Person{ID: "p-1", FamilyName: "Côté", GivenName: "Marie-Ève", BirthDate: "1984-02-29",
		Sex: "X", HealthNo: "COTM84522912", Language: "fr", DeathDate: "2025-12-31", UpdatedAt: t0,
		Address: sqin.Address{CivicNumber: "1234", Street: "rue Saint-Étienne", Unit: "app. 5",
			Municipality: "Trois-Rivières", Province: "QC", PostalCode: "G9A 1A1", Country: "CA"}}
	empty := &sqin.Person{ID: "p-2"}
	for _, p := range []*sqin.Person{full, empty} {
		ok(t, s.CreatePerson(ctx, p))
		got, err := s.GetPerson(ctx, p.ID)
		ok(t, err)
		same(t, got, p)
	}
	isErr(t, s.CreatePerson(ctx, &sqin.Person{ID: "p-1"}), sqin.ErrConflict)
	_, err := s.GetPerson(ctx, "p-3")
	isErr(t, err, sqin.ErrNotFound)
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	sess := &sqin.Session{ID: "sess-1", AccountID: "acct", LoA: sqin.LoA2, AMR: []string{"pwd", "otp"},
		AuthTime: t0.Add(-time.Minute), CreatedAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(time.Hour)}
	ok(t, s.CreateSession(ctx, sess))
	ok(t, s.CreateSession(ctx, &sqin.Session{ID: "sess-2", AccountID: "acct", AMR: []string{}, ExpiresAt: t0.Add(time.Hour)}))
	isErr(t, s.CreateSession(ctx, sess), sqin.ErrConflict)

	got, err := s.GetSession(ctx, sess.ID, t0)
	ok(t, err)
	same(t, got, sess)
	got, err = s.GetSession(ctx, "sess-2", t0)
	ok(t, err)
	same(t, got.AMR, []string(nil))

	for _, tc := range []struct {
		name string
		id   string
		now  time.Time
	}{
		{"missing", "sess-3", t0},
		{"expired", sess.ID, sess.ExpiresAt},
		{"long expired", sess.ID, sess.ExpiresAt.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.GetSession(ctx, tc.id, tc.now)
			isErr(t, err, sqin.ErrNotFound)
		})
	}
}

func testDeleteSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateSession(ctx, &sqin.Session{ID: "sess", AccountID: "acct", ExpiresAt: t0.Add(time.Hour)}))
	online := issueGrant(t, s, "code-1", "grant-online", "rp", "sess", false)
	offline := issueGrant(t, s, "code-2", "grant-offline", "rp", "sess", true)
	other := issueGrant(t, s, "code-3", "grant-other", "rp", "sess-other", false)

	now := t0.Add(time.Minute)
	ok(t, s.DeleteSession(ctx, "sess", now))
	_, err := s.GetSession(ctx, "sess", t0)
	isErr(t, err, sqin.ErrNotFound)
	for _, tc := range []struct {
		grant   *sqin.Grant
		revoked time.Time
	}{
		{online, now},
		{offline, time.Time{}},
		{other, time.Time{}},
	} {
		g, err := s.GetGrant(ctx, tc.grant.ID)
		ok(t, err)
		same(t, g.RevokedAt, tc.revoked)
	}

	// Signing out of a session that is already gone still revokes its grants.
	late := issueGrant(t, s, "code-4", "grant-late", "rp", "sess", false)
	ok(t, s.DeleteSession(ctx, "sess", now))
	g, err := s.GetGrant(ctx, late.ID)
	ok(t, err)
	same(t, g.RevokedAt, now)
}

func testAuthRequests(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := &sqin.AuthRequest{ID: "req-1", ClientID: "rp", RedirectURI: "https://rp.example/cb",
		State: "état", Nonce: "n-0S6_WzA2Mj", Scopes: []string{"openid", "profile"},
		Claims:        `{"userinfo":{"given_name":{"essential":true}}}`,
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Prompt: []string{"login", "consent"},
		MaxAge: -1, LoginHint: "marie-ève@exemple.québec", UILocale: "fr-CA",
		ACRValues: []string{"urn:sqin:loa:2", "urn:sqin:loa:3"}, ResponseMode: "form_post",
		DPoPJKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", Pushed: true, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	empty := &sqin.AuthRequest{ID: "req-2", ExpiresAt: t0.Add(time.Minute)}
	for _, r := range []*sqin.AuthRequest{full, empty} {
		ok(t, s.CreateAuthRequest(ctx, r))
		got, err := s.GetAuthRequest(ctx, r.ID, t0)
		ok(t, err)
		same(t, got, r)
	}
	isErr(t, s.CreateAuthRequest(ctx, full), sqin.ErrConflict)

	ok(t, s.SetAuthRequestSession(ctx, full.ID, "sess-1"))
	got, err := s.GetAuthRequest(ctx, full.ID, t0)
	ok(t, err)
	want := *full
	want.SessionID = "sess-1"
	same(t, got, &want)
	isErr(t, s.SetAuthRequestSession(ctx, "req-3", "sess-1"), sqin.ErrNotFound)

	_, err = s.GetAuthRequest(ctx, full.ID, full.ExpiresAt)
	isErr(t, err, sqin.ErrNotFound)
	_, err = s.GetAuthRequest(ctx, "req-3", t0)
	isErr(t, err, sqin.ErrNotFound)

	ok(t, s.DeleteAuthRequest(ctx, full.ID))
	_, err = s.GetAuthRequest(ctx, full.ID, t0)
	isErr(t, err, sqin.ErrNotFound)
	ok(t, s.DeleteAuthRequest(ctx, full.ID))
	_, err = s.GetAuthRequest(ctx, empty.ID, t0)
	ok(t, err)
}

func authCode(hash, grantID, clientID, sessionID string) *sqin.AuthCode {
	return &sqin.AuthCode{Hash: hash, ClientID: clientID, AccountID: "acct", SessionID: sessionID,
		RedirectURI: "https://rp.example/cb", Nonce: "nonce", Scopes: []string{"openid", "offline_access"},
		Claims: `{"id_token":{"acr":{"values":["urn:sqin:loa:2"]}}}`, CodeChallenge: "challenge",
		LoA: sqin.LoA2, AMR: []string{"pwd"}, AuthTime: t0.Add(-time.Minute), GrantID: grantID,
		DPoPJKT: "jkt-" + grantID, ExpiresAt: t0.Add(time.Minute)}
}

// issue builds the grant and refresh token for c, as the token endpoint does.
func issue(c *sqin.AuthCode, offline bool, refresh string) (*sqin.Grant, *sqin.RefreshToken) {
	g := &sqin.Grant{ID: c.GrantID, ClientID: c.ClientID, AccountID: c.AccountID, SessionID: c.SessionID,
		Scopes: c.Scopes, Claims: c.Claims, LoA: c.LoA, AMR: c.AMR, AuthTime: c.AuthTime, Offline: offline,
		DPoPJKT: c.DPoPJKT, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}
	if refresh == "" {
		return g, nil
	}
	return g, &sqin.RefreshToken{Hash: refresh, GrantID: g.ID, ClientID: c.ClientID, CreatedAt: t0,
		ExpiresAt: t0.Add(24 * time.Hour)}
}

// issueGrant creates a code and exchanges it for a grant with refresh
// token "rt-"+grantID.
func issueGrant(t *testing.T, s store.Store, code, grantID, clientID, sessionID string, offline bool) *sqin.Grant {
	t.Helper()
	ctx := t.Context()
	ok(t, s.CreateAuthCode(ctx, authCode(code, grantID, clientID, sessionID)))
	var g *sqin.Grant
	ok(t, s.ExchangeCode(ctx, code, t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
		var rt *sqin.RefreshToken
		g, rt = issue(c, offline, "rt-"+grantID)
		return g, rt, nil
	}))
	return g
}

func testExchangeCode(t *testing.T, s store.Store) {
	ctx := t.Context()
	code := authCode("code-1", "grant-1", "rp", "sess")
	ok(t, s.CreateAuthCode(ctx, code))
	isErr(t, s.CreateAuthCode(ctx, code), sqin.ErrConflict)

	now := t0.Add(10 * time.Second)
	var g *sqin.Grant
	var rt *sqin.RefreshToken
	ok(t, s.ExchangeCode(ctx, code.Hash, now, func(got *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
		want := *code
		want.UsedAt = now
		same(t, got, &want)
		g, rt = issue(got, true, "rt-1")
		return g, rt, nil
	}))
	gotG, err := s.GetGrant(ctx, g.ID)
	ok(t, err)
	same(t, gotG, g)
	gotRT, err := s.GetRefreshToken(ctx, rt.Hash)
	ok(t, err)
	same(t, gotRT, rt)

	// A grant without refresh token, and one with every field empty.
	ok(t, s.CreateAuthCode(ctx, &sqin.AuthCode{Hash: "code-2", GrantID: "grant-2", Scopes: []string{}, ExpiresAt: t0.Add(time.Minute)}))
	empty := &sqin.Grant{ID: "grant-2", Scopes: []string{}}
	ok(t, s.ExchangeCode(ctx, "code-2", now, func(*sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
		return empty, nil, nil
	}))
	gotG, err = s.GetGrant(ctx, "grant-2")
	ok(t, err)
	same(t, gotG, empty)
}

func testExchangeCodeErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	errIssue := errors.New("client mismatch")
	tests := []struct {
		name    string
		code    string // created (with grant "g-"+code) unless empty
		used    bool   // exchange the code once before the test
		now     time.Time
		issue   func(*sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error)
		want    error
		revoked bool // the code's grant ends revoked
		usable  bool // the code can still be exchanged
	}{
		{name: "missing", now: t0, want: sqin.ErrNotFound},
		{name: "expired", code: "c-expired", now: t0.Add(time.Minute), want: sqin.ErrExpired},
		{name: "replay", code: "c-replay", used: true, now: t0.Add(time.Second), want: sqin.ErrReplay, revoked: true},
		{name: "replay after expiry", code: "c-replay-late", used: true, now: t0.Add(time.Hour),
			want: sqin.ErrReplay, revoked: true},
		{name: "issue fails", code: "c-fail", now: t0, want: errIssue, usable: true,
			issue: func(*sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) { return nil, nil, errIssue }},
		{name: "grant of another code", code: "c-other", now: t0, want: errInternal, usable: true,
			issue: func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				g, rt := issue(c, false, "rt-c-other")
				g.ID = "g-elsewhere"
				return g, rt, nil
			}},
		{name: "refresh token of another grant", code: "c-other-rt", now: t0, want: errInternal, usable: true,
			issue: func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				g, rt := issue(c, false, "rt-c-other-rt")
				rt.GrantID = "g-elsewhere"
				return g, rt, nil
			}},
		{name: "refresh token taken", code: "c-taken", now: t0, want: sqin.ErrConflict, usable: true,
			issue: func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				g, rt := issue(c, false, "rt-taken")
				return g, rt, nil
			}},
	}
	ok(t, s.CreateAuthCode(ctx, authCode("c-second", "g-second", "rp", "sess")))
	ok(t, s.ExchangeCode(ctx, "c-second", t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
		g, rt := issue(c, false, "rt-taken")
		return g, rt, nil
	}))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hash := cmp.Or(tc.code, "c-missing")
			if tc.code != "" {
				issueGrant(t, s, "setup-"+tc.code, "g-setup-"+tc.code, "rp", "sess", false) // an unrelated grant
				ok(t, s.CreateAuthCode(ctx, authCode(tc.code, "g-"+tc.code, "rp", "sess")))
			}
			if tc.used {
				ok(t, s.ExchangeCode(ctx, hash, t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
					g, rt := issue(c, false, "")
					return g, rt, nil
				}))
			}
			called := false
			err := s.ExchangeCode(ctx, hash, tc.now, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
				called = true
				if tc.issue == nil {
					return nil, nil, errors.New("issue must not run")
				}
				return tc.issue(c)
			})
			checkErr(t, err, tc.want)
			if called != (tc.issue != nil) {
				t.Errorf("issue called: %v", called)
			}
			if tc.code == "" {
				return
			}
			g, err := s.GetGrant(ctx, "g-"+tc.code)
			switch {
			case tc.used:
				ok(t, err)
				if tc.revoked != !g.RevokedAt.IsZero() {
					t.Errorf("grant revoked at %v, want revoked: %v", g.RevokedAt, tc.revoked)
				}
			default:
				isErr(t, err, sqin.ErrNotFound) // nothing written
			}
			if g, err := s.GetGrant(ctx, "g-setup-"+tc.code); err != nil || !g.RevokedAt.IsZero() {
				t.Errorf("unrelated grant: %+v, %v", g, err)
			}
			if tc.usable {
				ok(t, s.ExchangeCode(ctx, hash, t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
					g, rt := issue(c, false, "")
					return g, rt, nil
				}))
			}
		})
	}
}

// concurrency is how many goroutines race for one code or token.
const concurrency = 16

func testExchangeCodeConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateAuthCode(ctx, authCode("code", "grant", "rp", "sess")))
	var mu sync.Mutex
	issued := 0
	errs := concurrently(concurrency, func() error {
		return s.ExchangeCode(ctx, "code", t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
			mu.Lock()
			issued++
			mu.Unlock()
			g, rt := issue(c, false, "rt")
			return g, rt, nil
		})
	})
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else {
			isErr(t, err, sqin.ErrReplay)
		}
	}
	if wins != 1 || issued != 1 {
		t.Fatalf("%d exchanges succeeded and issue ran %d times, want 1 and 1", wins, issued)
	}
	g, err := s.GetGrant(ctx, "grant")
	ok(t, err)
	if g.RevokedAt.IsZero() {
		t.Error("the replays did not revoke the grant")
	}
}

// rotate rotates token into next, of the same grant.
func rotate(s store.Store, t *testing.T, token, next string, now time.Time) error {
	return s.RotateRefreshToken(t.Context(), token, now, func(rt *sqin.RefreshToken, g *sqin.Grant) (*sqin.RefreshToken, error) {
		return &sqin.RefreshToken{Hash: next, GrantID: g.ID, ClientID: rt.ClientID, CreatedAt: now,
			ExpiresAt: now.Add(time.Hour)}, nil
	})
}

func testRotateRefreshToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	g := issueGrant(t, s, "code", "grant", "rp", "sess", true)
	old, err := s.GetRefreshToken(ctx, "rt-grant")
	ok(t, err)

	now := t0.Add(time.Minute)
	next := &sqin.RefreshToken{Hash: "rt-2", GrantID: g.ID, ClientID: "rp", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	ok(t, s.RotateRefreshToken(ctx, old.Hash, now, func(rt *sqin.RefreshToken, gotG *sqin.Grant) (*sqin.RefreshToken, error) {
		want := *old
		want.UsedAt = now
		same(t, rt, &want)
		same(t, gotG, g)
		return next, nil
	}))
	got, err := s.GetRefreshToken(ctx, next.Hash)
	ok(t, err)
	same(t, got, next)
	got, err = s.GetRefreshToken(ctx, old.Hash)
	ok(t, err)
	same(t, got.UsedAt, now)
	ok(t, rotate(s, t, next.Hash, "rt-3", now.Add(time.Minute)))
	_, err = s.GetRefreshToken(ctx, "rt-missing")
	isErr(t, err, sqin.ErrNotFound)
}

func testRotateRefreshTokenErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	errNext := errors.New("scope exceeds grant")
	tests := []struct {
		name  string
		setup func(t *testing.T, s store.Store) (token string)
		now   time.Time
		next  func(*sqin.RefreshToken, *sqin.Grant) (*sqin.RefreshToken, error)
		want  error
		// After the call: is the grant revoked, and can the token still rotate?
		revoked, usable bool
	}{
		{name: "missing", setup: func(*testing.T, store.Store) string { return "rt-missing" }, now: t0,
			want: sqin.ErrNotFound},
		{name: "expired token", now: t0.Add(25 * time.Hour), want: sqin.ErrExpired,
			setup: func(t *testing.T, s store.Store) string {
				issueGrant(t, s, "c-exp", "g-exp", "rp", "sess", false)
				return "rt-g-exp" // the token's expiry is reported before its grant's
			}},
		{name: "reuse", now: t0.Add(2 * time.Minute), want: sqin.ErrReplay, revoked: true,
			setup: func(t *testing.T, s store.Store) string {
				issueGrant(t, s, "c-reuse", "g-reuse", "rp", "sess", false)
				ok(t, rotate(s, t, "rt-g-reuse", "rt-g-reuse-2", t0.Add(time.Minute)))
				return "rt-g-reuse"
			}},
		{name: "revoked grant", now: t0.Add(time.Minute), want: sqin.ErrRevoked, revoked: true,
			setup: func(t *testing.T, s store.Store) string {
				g := issueGrant(t, s, "c-rev", "g-rev", "rp", "sess", false)
				ok(t, s.RevokeGrant(t.Context(), g.ID, t0))
				return "rt-g-rev"
			}},
		{name: "expired grant", now: t0.Add(24*time.Hour + 10*time.Minute), want: sqin.ErrRevoked,
			setup: func(t *testing.T, s store.Store) string {
				issueGrant(t, s, "c-gexp", "g-gexp", "rp", "sess", false)
				// A token that outlives its grant.
				ok(t, rotate(s, t, "rt-g-gexp", "rt-g-gexp-2", t0.Add(23*time.Hour+30*time.Minute)))
				return "rt-g-gexp-2"
			}},
		{name: "next fails", now: t0.Add(time.Minute), want: errNext, usable: true,
			next: func(*sqin.RefreshToken, *sqin.Grant) (*sqin.RefreshToken, error) { return nil, errNext },
			setup: func(t *testing.T, s store.Store) string {
				issueGrant(t, s, "c-fail", "g-fail", "rp", "sess", false)
				return "rt-g-fail"
			}},
		{name: "next token of another grant", now: t0.Add(time.Minute), want: errInternal, usable: true,
			next: func(rt *sqin.RefreshToken, _ *sqin.Grant) (*sqin.RefreshToken, error) {
				return &sqin.RefreshToken{Hash: "rt-other", GrantID: "g-elsewhere", ClientID: rt.ClientID}, nil
			},
			setup: func(t *testing.T, s store.Store) string {
				issueGrant(t, s, "c-other", "g-other", "rp", "sess", false)
				return "rt-g-other"
			}},
		{name: "next token taken", now: t0.Add(time.Minute), want: sqin.ErrConflict, usable: true,
			next: func(rt *sqin.RefreshToken, g *sqin.Grant) (*sqin.RefreshToken, error) {
				return &sqin.RefreshToken{Hash: "rt-g-taken", GrantID: g.ID, ClientID: rt.ClientID}, nil
			},
			setup: func(t *testing.T, s store.Store) string {
				issueGrant(t, s, "c-taken", "g-taken", "rp", "sess", false)
				issueGrant(t, s, "c-taken-2", "g-taken-2", "rp", "sess", false)
				return "rt-g-taken-2"
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.setup(t, s)
			called := false
			err := s.RotateRefreshToken(ctx, token, tc.now, func(rt *sqin.RefreshToken, g *sqin.Grant) (*sqin.RefreshToken, error) {
				called = true
				if tc.next == nil {
					return nil, errors.New("next must not run")
				}
				return tc.next(rt, g)
			})
			checkErr(t, err, tc.want)
			if called != (tc.next != nil) {
				t.Errorf("next called: %v", called)
			}
			rt, err := s.GetRefreshToken(ctx, token)
			if errors.Is(err, sqin.ErrNotFound) {
				return
			}
			ok(t, err)
			g, err := s.GetGrant(ctx, rt.GrantID)
			ok(t, err)
			if tc.revoked != !g.RevokedAt.IsZero() {
				t.Errorf("grant revoked at %v, want revoked: %v", g.RevokedAt, tc.revoked)
			}
			if tc.usable {
				same(t, rt.UsedAt, time.Time{})
				ok(t, rotate(s, t, token, token+"-next", tc.now))
			}
		})
	}

	t.Run("reuse revokes the newer tokens", func(t *testing.T) {
		g := issueGrant(t, s, "c-family", "g-family", "rp", "sess", false)
		ok(t, rotate(s, t, "rt-g-family", "rt-f2", t0.Add(time.Minute)))
		ok(t, rotate(s, t, "rt-f2", "rt-f3", t0.Add(2*time.Minute)))
		reuse := t0.Add(3 * time.Minute)
		isErr(t, rotate(s, t, "rt-g-family", "rt-stolen", reuse), sqin.ErrReplay)
		got, err := s.GetGrant(ctx, g.ID)
		ok(t, err)
		same(t, got.RevokedAt, reuse)
		isErr(t, rotate(s, t, "rt-f3", "rt-f4", t0.Add(4*time.Minute)), sqin.ErrRevoked)
		_, err = s.GetRefreshToken(ctx, "rt-stolen")
		isErr(t, err, sqin.ErrNotFound)
	})
}

func testRotateRefreshTokenConcurrent(t *testing.T, s store.Store) {
	issueGrant(t, s, "code", "grant", "rp", "sess", false)
	var rotated atomic.Int32
	errs := concurrently(concurrency, func() error {
		return s.RotateRefreshToken(t.Context(), "rt-grant", t0, func(rt *sqin.RefreshToken, g *sqin.Grant) (*sqin.RefreshToken, error) {
			n := rotated.Add(1)
			return &sqin.RefreshToken{Hash: fmt.Sprint("rt-next-", n), GrantID: g.ID, ClientID: rt.ClientID}, nil
		})
	})
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else {
			isErr(t, err, sqin.ErrReplay)
		}
	}
	if n := rotated.Load(); wins != 1 || n != 1 {
		t.Fatalf("%d rotations succeeded and next ran %d times, want 1 and 1", wins, n)
	}
}

func testGrants(t *testing.T, s store.Store) {
	ctx := t.Context()
	g := issueGrant(t, s, "code", "grant", "rp", "sess", false)
	ok(t, s.RevokeGrant(ctx, g.ID, t0.Add(time.Minute)))
	ok(t, s.RevokeGrant(ctx, g.ID, t0.Add(time.Hour)))
	got, err := s.GetGrant(ctx, g.ID)
	ok(t, err)
	want := *g
	want.RevokedAt = t0.Add(time.Minute) // the first revocation stands
	same(t, got, &want)

	isErr(t, s.RevokeGrant(ctx, "grant-missing", t0), sqin.ErrNotFound)
	_, err = s.GetGrant(ctx, "grant-missing")
	isErr(t, err, sqin.ErrNotFound)
}

func testAccessTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	revoked, err := s.AccessTokenRevoked(ctx, "jti-1")
	ok(t, err)
	if revoked {
		t.Fatal("unknown jti reported revoked")
	}
	ok(t, s.RevokeAccessToken(ctx, "jti-1", t0.Add(time.Hour)))
	ok(t, s.RevokeAccessToken(ctx, "jti-1", t0.Add(time.Hour)))
	for jti, want := range map[string]bool{"jti-1": true, "jti-2": false} {
		revoked, err := s.AccessTokenRevoked(ctx, jti)
		ok(t, err)
		if revoked != want {
			t.Errorf("AccessTokenRevoked(%s) = %v, want %v", jti, revoked, want)
		}
	}
}

func testConsents(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := &sqin.Consent{AccountID: "acct", ClientID: "rp-a", Scopes: []string{"openid", "profile"},
		Claims: []string{"family_name", "given_name"}, GrantedAt: t0}
	b := &sqin.Consent{AccountID: "acct", ClientID: "rp-b", Scopes: []string{}, GrantedAt: t0}
	other := &sqin.Consent{AccountID: "acct-other", ClientID: "rp-a", Scopes: []string{"openid"}, GrantedAt: t0}
	for _, c := range []*sqin.Consent{b, a, other} {
		ok(t, s.SaveConsent(ctx, c))
		got, err := s.GetConsent(ctx, c.AccountID, c.ClientID)
		ok(t, err)
		same(t, got, c)
	}
	_, err := s.GetConsent(ctx, "acct", "rp-c")
	isErr(t, err, sqin.ErrNotFound)

	replaced := &sqin.Consent{AccountID: "acct", ClientID: "rp-a", Scopes: []string{"openid"},
		Claims: []string{"birthdate"}, GrantedAt: t0.Add(time.Hour)}
	ok(t, s.SaveConsent(ctx, replaced))
	list, err := s.ListConsents(ctx, "acct")
	ok(t, err)
	same(t, list, []*sqin.Consent{replaced, b})
	list, err = s.ListConsents(ctx, "acct-nobody")
	ok(t, err)
	same(t, list, []*sqin.Consent(nil))

	ga := issueGrant(t, s, "code-a", "grant-a", "rp-a", "sess", true)
	gb := issueGrant(t, s, "code-b", "grant-b", "rp-b", "sess", true)
	now := t0.Add(2 * time.Hour)
	ok(t, s.RevokeConsent(ctx, "acct", "rp-a", now))
	_, err = s.GetConsent(ctx, "acct", "rp-a")
	isErr(t, err, sqin.ErrNotFound)
	_, err = s.GetConsent(ctx, "acct-other", "rp-a")
	ok(t, err)
	g, err := s.GetGrant(ctx, ga.ID)
	ok(t, err)
	same(t, g.RevokedAt, now)
	g, err = s.GetGrant(ctx, gb.ID)
	ok(t, err)
	same(t, g.RevokedAt, time.Time{})
	ok(t, s.RevokeConsent(ctx, "acct", "rp-a", now)) // nothing left to revoke
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	key := func(id, alg string, created time.Time) *sqin.SigningKey {
		return &sqin.SigningKey{ID: id, Alg: alg, Private: []byte("encrypted " + id),
			Public: []byte(`{"kid":"` + id + `"}`), CreatedAt: created}
	}
	es1 := key("es-1", "ES256", t0)
	rs1 := key("rs-1", "RS256", t0.Add(time.Second))
	ok(t, s.AddSigningKey(ctx, es1, t0, time.Hour))
	ok(t, s.AddSigningKey(ctx, rs1, t0.Add(time.Second), time.Hour))
	keys, err := s.ListSigningKeys(ctx, t0.Add(time.Second))
	ok(t, err)
	same(t, keys, []*sqin.SigningKey{rs1, es1})

	rotated := t0.Add(time.Minute)
	es2 := key("es-2", "ES256", rotated)
	ok(t, s.AddSigningKey(ctx, es2, rotated, time.Hour))
	retired := *es1
	retired.RetiredAt, retired.ExpiresAt = rotated, rotated.Add(time.Hour)
	keys, err = s.ListSigningKeys(ctx, rotated)
	ok(t, err)
	same(t, keys, []*sqin.SigningKey{es2, rs1, &retired})

	// A duplicate key ID changes nothing, not even the retirement.
	isErr(t, s.AddSigningKey(ctx, key("es-2", "ES256", rotated), rotated.Add(time.Second), time.Hour), sqin.ErrConflict)
	keys, err = s.ListSigningKeys(ctx, rotated.Add(time.Hour-time.Millisecond))
	ok(t, err)
	same(t, keys, []*sqin.SigningKey{es2, rs1, &retired})

	keys, err = s.ListSigningKeys(ctx, rotated.Add(time.Hour))
	ok(t, err)
	same(t, keys, []*sqin.SigningKey{es2, rs1})
}

func testRateLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	const window = time.Minute
	// Implementations may count in buckets down to window/12 wide, so
	// every time below is at least 5 s from a window's edge.
	hits := []struct {
		key  string
		at   time.Duration
		want int
	}{
		{"login:a", 0, 1},
		{"login:a", 0, 2},
		{"login:b", 0, 1},
		{"login:a", 30 * time.Second, 3},
		{"login:a", 50 * time.Second, 4},
		{"login:a", 70 * time.Second, 3}, // the two at 0 have left
		{"login:b", 70 * time.Second, 1},
	}
	for _, h := range hits {
		n, err := s.Hit(ctx, h.key, window, t0.Add(h.at))
		ok(t, err)
		if n != h.want {
			t.Fatalf("Hit(%s) at +%v = %d, want %d", h.key, h.at, n, h.want)
		}
	}
	counts := []struct {
		key  string
		at   time.Duration
		want int
	}{
		{"login:a", 70 * time.Second, 3},
		{"login:a", 85 * time.Second, 3},
		{"login:a", 100 * time.Second, 2},
		{"login:a", 125 * time.Second, 1},
		{"login:a", 140 * time.Second, 0},
		{"login:b", 71 * time.Second, 1},
		{"login:c", 0, 0},
	}
	for _, c := range counts {
		n, err := s.Count(ctx, c.key, window, t0.Add(c.at))
		ok(t, err)
		if n != c.want {
			t.Errorf("Count(%s) at +%v = %d, want %d", c.key, c.at, n, c.want)
		}
	}
	ok(t, s.Reset(ctx, "login:a"))
	for key, want := range map[string]int{"login:a": 0, "login:b": 1} {
		n, err := s.Count(ctx, key, window, t0.Add(71*time.Second))
		ok(t, err)
		if n != want {
			t.Errorf("after Reset(login:a), Count(%s) = %d, want %d", key, n, want)
		}
	}
	ok(t, s.Reset(ctx, "login:nobody"))
}

func testRateLimitsConcurrent(t *testing.T, s store.Store) {
	const n = 40
	var mu sync.Mutex
	var got []int
	errs := concurrently(n, func() error {
		c, err := s.Hit(t.Context(), "token:rp", time.Minute, t0)
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
		return err
	})
	ok(t, errors.Join(errs...))
	// Each hit saw its own place in the queue: 1, 2, … n.
	slices.Sort(got)
	for i, c := range got {
		if c != i+1 {
			t.Fatalf("concurrent hits returned %v, want 1…%d", got, n)
		}
	}
	c, err := s.Count(t.Context(), "token:rp", time.Minute, t0)
	ok(t, err)
	if c != n {
		t.Fatalf("Count = %d, want %d", c, n)
	}
}

func testUseOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.UseOnce(ctx, "jti:a", t0.Add(time.Minute), t0))
	isErr(t, s.UseOnce(ctx, "jti:a", t0.Add(time.Minute), t0.Add(30*time.Second)), sqin.ErrReplay)
	ok(t, s.UseOnce(ctx, "jti:b", t0.Add(time.Minute), t0))
	// Once expired, the key no longer blocks (the proof it guarded is
	// refused on its own age by then).
	ok(t, s.UseOnce(ctx, "jti:a", t0.Add(3*time.Minute), t0.Add(2*time.Minute)))
	isErr(t, s.UseOnce(ctx, "jti:a", t0.Add(3*time.Minute), t0.Add(2*time.Minute)), sqin.ErrReplay)
}

func testUseOnceConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() { errs <- s.UseOnce(ctx, "jti:race", t0.Add(time.Minute), t0) }()
	}
	wins := 0
	for range n {
		err := <-errs
		if err == nil {
			wins++
		} else {
			isErr(t, err, sqin.ErrReplay)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent uses succeeded, want 1", wins, n)
	}
}

func testLegacySubjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetLegacySubject(ctx, "saaq", "acct-1")
	isErr(t, err, sqin.ErrNotFound)
	ok(t, s.SetLegacySubject(ctx, "saaq", "acct-1", "legacy-123"))
	got, err := s.GetLegacySubject(ctx, "saaq", "acct-1")
	ok(t, err)
	if got != "legacy-123" {
		t.Fatalf("legacy sub = %q", got)
	}
	isErr(t, s.SetLegacySubject(ctx, "saaq", "acct-1", "other"), sqin.ErrConflict)
	isErr(t, s.SetLegacySubject(ctx, "saaq", "acct-2", "legacy-123"), sqin.ErrConflict)
	ok(t, s.SetLegacySubject(ctx, "ramq", "acct-2", "legacy-123"))
	_, err = s.GetLegacySubject(ctx, "ramq", "acct-1")
	isErr(t, err, sqin.ErrNotFound)
}
