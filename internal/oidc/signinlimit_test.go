package oidc

import (
	"net/http"
	"strings"
	"testing"
)

// TestForgetFailedSignIns: an address locked out by failed sign-ins signs
// in again at once after account recovery forgets them (the address is
// given as the citizen typed it); another address stays locked.
func TestForgetFailedSignIns(t *testing.T) {
	e := newEnv(t)
	try := func(email, pw string) (int, string) {
		b := e.browser()
		u, _ := e.authorizeURL(nil)
		resp, _ := b.get(u)
		loc, _ := resp.Location()
		_, page := b.get(loc.String())
		form := hiddenInputs(page)
		form.Set("username", email)
		form.Set("password", pw)
		r, body := b.post("/login", form)
		return r.StatusCode, body
	}
	for _, email := range []string{testEmail, "nobody@example.test"} {
		for range 5 {
			try(email, "wrong password")
		}
		if s, _ := try(email, testPassword); s != http.StatusTooManyRequests {
			t.Fatalf("%s: not locked after 5 failures: %d", email, s)
		}
	}
	if err := e.p.ForgetFailedSignIns(t.Context(), " "+strings.ToUpper(testEmail)+" "); err != nil {
		t.Fatal(err)
	}
	if s, body := try(testEmail, testPassword); s != http.StatusFound && s != http.StatusSeeOther || strings.Contains(body, "Trop d") {
		t.Fatalf("after recovery: %d", s)
	}
	if s, _ := try("nobody@example.test", "wrong password"); s != http.StatusTooManyRequests {
		t.Fatalf("another address was unlocked: %d", s)
	}
}
