package oidc

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// hookAuthTime is when the test's hook says the citizen authenticated.
var hookAuthTime = time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)

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
		next, err := e.p.SignIn(w, r, r.URL.Query().Get("acct"), []string{"otp"}, hookAuthTime, r.URL.Query().Get("req"))
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

// TestSignInHookAuthentication: the session SignIn makes says truthfully
// how and when the citizen authenticated: amr and auth_time as the caller
// names them (the email code of a registration, not "pwd" and "now"); a
// level raised for the browser's own signed-in account keeps that
// session's amr and auth_time; no amr or no time is refused, with no
// session made.
func TestSignInHookAuthentication(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		amr, at := []string{"otp"}, hookAuthTime
		if r.URL.Query().Has("none") {
			amr, at = nil, time.Time{}
		}
		next, err := e.p.SignIn(w, r, "a1", amr, at, r.URL.Query().Get("req"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
	mux.Handle("/", e.srv.Config.Handler)
	e.srv.Config.Handler = mux
	// idToken signs in through the hook, then runs a code flow on that
	// session and returns the ID token's claims.
	idToken := func(b *browser) map[string]any {
		t.Helper()
		if resp, body := b.get("/hook"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("hook: %d %s", resp.StatusCode, body)
		}
		return claimsOf(t, e.signIn(b, nil)["id_token"].(string))
	}
	amrOf := func(c map[string]any) []string {
		var out []string
		for _, v := range c["amr"].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	tests := []struct {
		name     string
		signedIn bool // by the password form first
		wantAMR  []string
		wantTime func(formTime time.Time) time.Time
	}{
		{"new browser: the caller's amr and time", false, []string{"otp"}, func(time.Time) time.Time { return hookAuthTime }},
		{"signed in by password: that session's amr and time", true, []string{"pwd"}, func(f time.Time) time.Time { return f }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			formTime := e.now.Truncate(time.Second)
			if tt.signedIn {
				e.signIn(b, nil)
				e.now = e.now.Add(time.Hour) // the raise comes an hour later
			}
			c := idToken(b)
			if got := amrOf(c); !slices.Equal(got, tt.wantAMR) {
				t.Errorf("amr %v, want %v", got, tt.wantAMR)
			}
			if got, want := int64(c["auth_time"].(float64)), tt.wantTime(formTime).Unix(); got != want {
				t.Errorf("auth_time %d, want %d", got, want)
			}
		})
	}
	b := e.browser()
	if resp, body := b.get("/hook?none=1"); resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "no authentication") {
		t.Fatalf("no amr: %d %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			t.Fatal("a session without an authentication")
		}
	}
}
