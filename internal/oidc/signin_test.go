package oidc

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSignInHook: a page outside the sign-in form (account creation) signs
// the browser in with SignIn: the pending authorization request resumes
// without the password form and the code carries the account's level; a
// second SignIn replaces the session; without a request, or with one that
// is gone, the path is "/"; SessionAccount names the signed-in account.
func TestSignInHook(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	u, ap := e.authorizeURL(nil)
	resp, _ := b.get(u)
	loc, _ := resp.Location()
	reqID := loc.Query().Get("req")
	if loc.Path != "/login" || reqID == "" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, loc)
	}

	// The hook is mounted by the test as a signup page would use it.
	var gotAccount string
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		gotAccount, _ = e.p.SessionAccount(r)
		next, err := e.p.SignIn(w, r, r.URL.Query().Get("acct"), []string{"pwd"}, r.URL.Query().Get("req"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
	mux.Handle("/", e.srv.Config.Handler)
	e.srv.Config.Handler = mux

	resp, _ = b.get("/hook?acct=a1&req=" + url.QueryEscape(reqID))
	next, _ := resp.Location()
	if next.Path != "/authorize/resume" || next.Query().Get("req") != reqID {
		t.Fatalf("SignIn path: %s", next)
	}
	if gotAccount != "" {
		t.Fatalf("a session before SignIn: %q", gotAccount)
	}
	final := b.follow(next.String())
	code := final.Query().Get("code")
	if code == "" {
		t.Fatalf("no code after SignIn: %s", final)
	}
	status, tok, _ := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {testRedirect}, "code_verifier": {ap.verifier}}, nil)
	if status != http.StatusOK {
		t.Fatalf("token: %d %v", status, tok)
	}
	if acr := claimsOf(t, tok["id_token"].(string))["acr"]; acr != "urn:sqin:loa:2" {
		t.Fatalf("acr %v", acr)
	}

	// Again, without a request and then with a request that is gone: home.
	for _, q := range []string{"/hook?acct=a1", "/hook?acct=a1&req=nosuchrequest"} {
		resp, _ = b.get(q)
		if l := resp.Header.Get("Location"); l != "/" {
			t.Fatalf("%s: %d %q", q, resp.StatusCode, l)
		}
		if gotAccount != "a1" {
			t.Fatalf("SessionAccount = %q, want a1", gotAccount)
		}
	}
	// An unknown account is an error, and no session is made.
	fresh := e.browser()
	if resp, body := fresh.get("/hook?acct=nobody"); resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "read account") {
		t.Fatalf("unknown account: %d %s", resp.StatusCode, body)
	}
}
