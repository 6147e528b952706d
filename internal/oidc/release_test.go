package oidc

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/legal"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/sqlstore"
)

// The legal rule in the provider: registry claims reach a service only
// under an authorisation in force for it and its purpose, or under consent
// where the law allows it; withheld claims are audited, an essential one
// refused precisely; an authorisation ending stops releases at that
// instant; the communication report matches the audited disclosures.
func TestLegalRelease(t *testing.T) {
	for _, st := range hotpathStores {
		t.Run(st.name, func(t *testing.T) { testLegalRelease(t, st.open(t)) })
	}
}

const (
	nam       = "sqin_health_insurance_number"
	namAttr   = "health_insurance_number"
	decreeRef = "D-1690-2026"
)

// flowAs runs a code flow for client id with mod applied to the request;
// it returns the token response, or the error redirect's query.
func (e *env) flowAs(b *browser, id string, mod func(url.Values)) (map[string]any, url.Values) {
	e.t.Helper()
	u, ap := e.authorizeURL(func(q url.Values) {
		q.Set("client_id", id)
		mod(q)
	})
	loc := b.follow(u)
	q := loc.Query()
	if q.Get("code") == "" {
		return nil, q
	}
	status, tok, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {testRedirect}, "code_verifier": {ap.verifier}},
		func(r *http.Request) { r.SetBasicAuth(id, testSecret) })
	if status != http.StatusOK {
		e.t.Fatalf("token for %s: %d %v", id, status, tok)
	}
	return tok, nil
}

func (e *env) authorise(a *legal.Authorisation) {
	e.t.Helper()
	a.Normalize()
	if err := a.Validate(nil); err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.CreateAuthorisation(context.Background(), a); err != nil {
		e.t.Fatal(err)
	}
	e.p.authorisations.Invalidate()
}

func testLegalRelease(t *testing.T, db *sqlstore.DB) {
	e := newEnvOn(t, db, 100)
	ps := e.p.cfg.Audit.Pseudonyms
	for _, c := range []*sqin.Client{
		{ID: "mfa-svc", Purpose: "allocation-famille", Sector: "mfa"},
		{ID: "mfa-other", Purpose: "permis", Sector: "mfa"}, // same body, other purpose
		{ID: "rq-svc", Purpose: "allocation-famille", Sector: "rq"},
	} {
		c.Name, c.AuthMethod, c.RedirectURIs = c.ID, sqin.AuthSecretBasic, []string{testRedirect}
		c.GrantTypes = []string{sqin.GrantAuthorizationCode}
		c.Scopes = []string{"openid", "profile", "sqin_health"}
		e.addClient(c)
	}
	scope := func(q url.Values) { q.Set("scope", "openid profile sqin_health") }
	essential := func(q url.Values) {
		scope(q)
		q.Set("claims", `{"userinfo":{"`+nam+`":{"essential":true}}}`)
	}
	userinfo := func(at string) map[string]any {
		t.Helper()
		status, claims := e.userinfo(at)
		if status != http.StatusOK {
			t.Fatalf("userinfo: %d %v", status, claims)
		}
		return claims
	}

	// No authorisation yet: profile claims go out under consent (the law
	// allows it), the health-insurance number is withheld and audited.
	b := e.browser()
	tok, _ := e.flowAs(b, "mfa-svc", scope)
	at := tok["access_token"].(string)
	mark := e.auditMark()
	claims := userinfo(at)
	if _, ok := claims[nam]; ok || claims["family_name"] != "Côté" {
		t.Fatalf("without an authorisation: %v", claims)
	}
	withheld := e.oneEvent(mark, audit.RegistryWithheld)
	if withheld.Outcome != audit.Denied || !slices.Equal(withheld.Attributes, []string{namAttr}) ||
		withheld.Detail != "withheld: "+legal.WithheldNoAuthorisation || withheld.Subject != ps.Account("a1") || withheld.ClientID != "mfa-svc" {
		t.Fatalf("withheld event %s", describe([]*audit.Record{withheld}))
	}
	disclosed := e.oneEvent(mark, audit.UserinfoDisclosed)
	if disclosed.LegalBasis != "consent:mfa-svc" || slices.Contains(disclosed.Attributes, namAttr) {
		t.Fatalf("disclosure event %s", describe([]*audit.Record{disclosed}))
	}

	// Asked as essential: the flow ends with a precise error, audited.
	mark = e.auditMark()
	if _, q := e.flowAs(b, "mfa-svc", essential); q.Get("error") != "access_denied" ||
		!strings.Contains(q.Get("error_description"), "no legal authorisation in force covers this client") {
		t.Fatalf("essential withheld claim: %v", q)
	}
	e.oneEvent(mark, audit.RegistryWithheld)

	// An authorisation for the public body mfa and its purpose, ending in
	// two minutes.
	e.authorise(&legal.Authorisation{Ref: decreeRef, Title: "Expérimentation", Purpose: "allocation-famille",
		LegalBasis: "Décret 1690-2026", Source: "RAMQ", Recipients: []string{"body:mfa"}, Attributes: []string{namAttr},
		From: e.now.Add(-time.Hour), To: e.now.Add(2 * time.Minute), CreatedAt: e.now})

	for _, tc := range []struct {
		client string
		want   bool
	}{
		{"mfa-svc", true},    // its body and purpose
		{"mfa-other", false}, // its body, another purpose
		{"rq-svc", false},    // its purpose, another body
		{"rp", false},        // no purpose, no sqin_health scope
	} {
		mod := scope
		if tc.client == "rp" {
			mod = func(q url.Values) { q.Set("scope", "openid profile") }
		}
		tok, q := e.flowAs(e.browser(), tc.client, mod)
		if tok == nil {
			t.Fatalf("%s: %v", tc.client, q)
		}
		got := userinfo(tok["access_token"].(string))
		if _, ok := got[nam]; ok != tc.want {
			t.Errorf("%s: health-insurance number released %v, want %v", tc.client, ok, tc.want)
		}
	}

	// The essential claim is now granted, and the disclosure names the
	// decree as its legal basis, separately from the consented claims.
	tok, q := e.flowAs(b, "mfa-svc", essential)
	if tok == nil {
		t.Fatalf("essential claim under an authorisation: %v", q)
	}
	at = tok["access_token"].(string)
	mark = e.auditMark()
	if claims := userinfo(at); claims[nam] != "COTM85531499" {
		t.Fatalf("under the decree: %v", claims)
	}
	var bases []string
	for _, r := range e.eventsSince(mark, audit.UserinfoDisclosed) {
		bases = append(bases, r.LegalBasis)
		if r.LegalBasis == decreeRef && !slices.Equal(r.Attributes, []string{namAttr}) {
			t.Errorf("decree event attributes %v", r.Attributes)
		}
	}
	if !slices.Equal(bases, []string{decreeRef, "consent:mfa-svc"}) {
		t.Fatalf("disclosure bases %v", bases)
	}

	// The authorisation ends: the same access token gets no number any
	// more, at the instant, without a reload.
	e.now = e.now.Add(2*time.Minute - time.Millisecond)
	if claims := userinfo(at); claims[nam] == nil {
		t.Fatal("released too early")
	}
	e.now = e.now.Add(time.Millisecond)
	mark = e.auditMark()
	if claims := userinfo(at); claims[nam] != nil {
		t.Fatal("released after the authorisation ended")
	}
	if w := e.oneEvent(mark, audit.RegistryWithheld); w.Detail != "withheld: "+legal.WithheldNotInForce {
		t.Fatalf("after the end: %s", w.Detail)
	}

	// The communication report counts exactly the audited disclosures
	// under the decree: one person, one communication per call that
	// released the number (mfa-svc twice after the flow, once in the
	// table above, once just before the end).
	a, err := db.GetAuthorisation(t.Context(), decreeRef)
	if err != nil {
		t.Fatal(err)
	}
	rp := legal.NewReporter(a, a.From, a.To)
	n, _ := db.AuditSize(t.Context())
	recs, err := db.Events(t.Context(), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		rp.Add(&r.Event)
	}
	rep := rp.Report()
	if len(rep.Rows) != 1 || rep.Rows[0] != (legal.ReportRow{ClientID: "mfa-svc", PublicBody: "mfa", Attribute: namAttr, Persons: 1, Communications: 3}) {
		t.Fatalf("report %+v", rep.Rows)
	}
}

// TestResetLowersRelease: a password reset by a mailed link (the signup
// store's ResetPassword) leaves the account at level 1 with its person
// kept: its grants, offline ones included, are revoked at once (refresh
// and userinfo refused), its sessions end, and on the next sign-in it gets
// no registry claim and reads none of its person's audit events — on
// SQLite and PostgreSQL.
func TestResetLowersRelease(t *testing.T) {
	for _, st := range hotpathStores {
		t.Run(st.name, func(t *testing.T) { testResetLowersRelease(t, st.open(t)) })
	}
}

func testResetLowersRelease(t *testing.T, db *sqlstore.DB) {
	e := newEnvOn(t, db, 100)
	ctx := context.Background()
	ps := e.p.cfg.Audit.Pseudonyms
	scope := func(q url.Values) { q.Set("scope", "openid profile email offline_access"); q.Set("prompt", "consent") }
	// An event about the person, which the person's proofed account reads.
	if err := db.AppendEvents(ctx, &audit.Event{Actor: ps.Citizen("someone"), Action: "proofing.letter.decided",
		Outcome: audit.Success, Subject: ps.Person("p1"), Detail: "about p1"}); err != nil {
		t.Fatal(err)
	}
	personEvents := func(b *browser) int {
		t.Helper()
		r, body := b.get(meEventsPath)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("me/events: %d %s", r.StatusCode, body)
		}
		return strings.Count(body, `"subject": "`+ps.Person("p1")+`"`)
	}

	b := e.browser()
	tok, _ := e.flowAs(b, "rp", scope)
	refresh, _ := tok["refresh_token"].(string)
	at := tok["access_token"].(string)
	if refresh == "" {
		t.Fatalf("no offline refresh token: %v", tok)
	}
	if _, claims := e.userinfo(at); claims["family_name"] != "Côté" {
		t.Fatalf("level 2: %v", claims)
	}
	if personEvents(b) != 1 {
		t.Fatal("the proofed account does not read its person's event")
	}

	hash, _ := e.p.hasher.Hash(testPassword)
	rs := &signup.PasswordReset{ID: "reset-1", AccountID: "a1", CreatedAt: e.now, ExpiresAt: e.now.Add(time.Hour)}
	if err := db.CreatePasswordReset(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := db.ResetPassword(ctx, rs.ID, hash, e.now); err != nil {
		t.Fatal(err)
	}
	a, err := db.GetAccount(ctx, "a1")
	if err != nil || a.LoA != sqin.LoA1 || a.PersonID != "p1" {
		t.Fatalf("after the reset: %+v %v", a, err)
	}
	if status, _, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, nil); status != http.StatusBadRequest {
		t.Fatalf("the offline refresh token still works: %d", status)
	}
	if status, _ := e.userinfo(at); status != http.StatusUnauthorized {
		t.Fatalf("the access token still works: %d", status)
	}
	if r, _ := b.get(meEventsPath); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the session survived the reset: %d", r.StatusCode)
	}

	b = e.browser()
	tok, _ = e.flowAs(b, "rp", scope)
	idt := claimsOf(t, tok["id_token"].(string))
	if idt["acr"] != sqin.LoA1.ACR() {
		t.Fatalf("acr %v", idt["acr"])
	}
	_, claims := e.userinfo(tok["access_token"].(string))
	for _, c := range []string{"family_name", "given_name", "birthdate", "name", "address", "gender"} {
		if _, ok := claims[c]; ok {
			t.Errorf("level 1 after a reset: registry claim %s released: %v", c, claims)
		}
	}
	if claims["email"] != testEmail {
		t.Errorf("account claims withheld too: %v", claims)
	}
	if n := personEvents(b); n != 0 {
		t.Errorf("level 1 after a reset reads %d events of its person", n)
	}
}
