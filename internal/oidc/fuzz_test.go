package oidc

import (
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
)

// FuzzAuthorizeRequest feeds arbitrary query strings to the authorization
// request parser: it must never panic, and whatever it accepts must hold
// the invariants the rest of the flow relies on.
func FuzzAuthorizeRequest(f *testing.F) {
	e := newEnv(f)
	u, _ := e.authorizeURL(nil)
	pu, _ := url.Parse(u)
	f.Add(pu.RawQuery)
	f.Add("client_id=rp&redirect_uri=https%3A%2F%2Frp.example.test%2Fcb&response_type=code&scope=openid&code_challenge_method=plain")
	f.Add("client_id=rp&claims=%7B%22id_token%22%3A%7B%22acr%22%3A%7B%22essential%22%3Atrue%7D%7D%7D")
	f.Add("%zz&&;=")
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/authorize", nil)
		r.URL.RawQuery = raw
		q, err := formParams(r)
		if err != nil {
			return
		}
		req, c, fail := e.p.parseAuthorize(r, q)
		if fail != nil {
			if fail.redirect && (c == nil || !c.HasRedirectURI(req.RedirectURI)) {
				t.Fatalf("would redirect to an unregistered URI %q", req.RedirectURI)
			}
			return
		}
		if !c.HasRedirectURI(req.RedirectURI) || !slices.Contains(req.Scopes, "openid") ||
			!pkceChallengeRE.MatchString(req.CodeChallenge) || len(req.State) > maxStateLen {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
		if _, _, err := parseClaimsRequest(req.Claims); err != nil {
			t.Fatalf("stored claims do not parse again: %q", req.Claims)
		}
	})
}

func FuzzClaimsParameter(f *testing.F) {
	f.Add(`{"userinfo":{"email":null,"address":{"essential":true}},"id_token":{"acr":{"values":["urn:sqin:loa:2"]}}}`)
	f.Add(`{"id_token":{"acr":{"value":3}}}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, s string) {
		cr, canon, err := parseClaimsRequest(s)
		if err != nil {
			return
		}
		cr2, canon2, err := parseClaimsRequest(canon)
		if canon != "" && (err != nil || canon2 != canon || cr2 == nil) {
			t.Fatalf("canonical form is not stable: %q -> %q (%v)", canon, canon2, err)
		}
		_ = cr
	})
}
