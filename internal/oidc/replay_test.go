package oidc

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
)

// TestReplayedJTIChangesNothing: the jti of a client assertion and of a
// DPoP proof are recorded in the transaction of the request's write (the
// pushed request, the code's redemption). A replay, also on a second
// instance on the same database, gets its precise error and changes
// nothing: the code stays good for the client's real request and no
// token.issued event is written for it.
func TestReplayedJTIChangesNothing(t *testing.T) {
	for _, s := range hotpathStores {
		t.Run(s.name, func(t *testing.T) {
			e := newEnvOn(t, s.open(t), 1000)
			e2 := e.secondInstance()
			k, dk := newECKey(t, "k1"), newECKey(t, "")
			e.addKeyClient("fapi", k, func(c *sqin.Client) { c.Profile = sqin.ProfileFAPI2 })
			parURL, tokURL := e.srv.URL+"/par", e.srv.URL+"/token"
			wantErr := func(what string, on *env, path string, form url.Values, proof string, status int, code, desc string) {
				t.Helper()
				s, r, _ := on.post(path, form, map[string]string{"DPoP": proof})
				if s != status || r["error"] != code || !strings.Contains(r["error_description"].(string), desc) {
					t.Fatalf("%s: %d %v, want %d %s mentioning %q", what, s, r, status, code, desc)
				}
			}

			_, ap := e.authorizeURL(func(q url.Values) { q.Set("client_id", "fapi") })
			a, p := e.assertion(k, "fapi", nil), e.proof(dk, "POST", parURL, "", "")
			s, r, _ := e.post("/par", merge(ap.query, assertionAuth(a)), map[string]string{"DPoP": p})
			if s != 201 {
				t.Fatalf("PAR: %d %v", s, r)
			}
			requestURI := r["request_uri"].(string)
			wantErr("PAR replaying the assertion on another instance", e2, "/par", merge(ap.query, assertionAuth(a)),
				e.proof(dk, "POST", parURL, "", ""), 401, errInvalidClient, "already used")
			wantErr("PAR replaying the proof on another instance", e2, "/par", merge(ap.query, assertionAuth(e.assertion(k, "fapi", nil))),
				p, 400, errInvalidDPoP, "already used")

			b := e.browser()
			loc := b.follow(e.srv.URL + "/authorize?" + url.Values{"client_id": {"fapi"}, "request_uri": {requestURI}}.Encode())
			code := loc.Query().Get("code")
			if code == "" {
				t.Fatalf("authorize: %v", loc)
			}
			form := codeForm(code, ap.verifier)
			mark := e.auditMark()
			tokA, tokP := e.assertion(k, "fapi", nil), e.proof(dk, "POST", tokURL, "", "")
			wantErr("token replaying the PAR assertion", e2, "/token", merge(form, assertionAuth(a)),
				e.proof(dk, "POST", tokURL, "", ""), 401, errInvalidClient, "already used")
			wantErr("token with a proof for PAR", e2, "/token", merge(form, assertionAuth(e.assertion(k, "fapi", nil))),
				e.proof(dk, "POST", parURL, "", ""), 400, errInvalidDPoP, "htu")
			wantErr("token replaying the PAR proof", e2, "/token", merge(form, assertionAuth(e.assertion(k, "fapi", nil))),
				p, 400, errInvalidDPoP, "htu")
			// The same token request twice: the second is a replay and
			// changes nothing.
			s, r, _ = e.post("/token", merge(form, assertionAuth(tokA)), map[string]string{"DPoP": tokP})
			if s != 200 || r["token_type"] != "DPoP" {
				t.Fatalf("token: %d %v", s, r)
			}
			wantErr("token request replayed on another instance", e2, "/token", merge(form, assertionAuth(tokA)),
				tokP, 401, errInvalidClient, "already used")
			wantErr("token request replaying the proof", e2, "/token", merge(form, assertionAuth(e.assertion(k, "fapi", nil))),
				tokP, 400, errInvalidDPoP, "already used")
			if evs := e.eventsSince(mark, audit.TokenIssued); len(evs) != 1 {
				t.Fatalf("%d token.issued events, want 1", len(evs))
			}
			// The grant lived through the replays; a replayed code still
			// revokes it.
			at := r["access_token"].(string)
			uiProof := func() string { return e.proof(dk, "GET", e.srv.URL+"/userinfo", at, "") }
			if s, ui := e.userinfoDPoP(at, uiProof()); s != 200 {
				t.Fatalf("userinfo after the replays: %d %v", s, ui)
			}
			wantErr("replayed code", e, "/token", merge(form, assertionAuth(e.assertion(k, "fapi", nil))),
				e.proof(dk, "POST", tokURL, "", ""), 400, errInvalidGrant, "already used")
			if s, _ := e.userinfoDPoP(at, uiProof()); s != 401 {
				t.Fatalf("userinfo after a replayed code: %d", s)
			}
		})
	}
}

// userinfoDPoP calls userinfo with a DPoP-bound token and its proof.
func (e *env) userinfoDPoP(at, proof string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "DPoP "+at)
	req.Header.Set("DPoP", proof)
	s, r, _ := e.do(req)
	return s, r
}
