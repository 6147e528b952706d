package oidc

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sqin/sqin/internal/keys"
)

var continueRE = regexp.MustCompile(`<a class="button" href="([^"]+)">`)

var iframeRE = regexp.MustCompile(`<iframe src="([^"]+)" title="([^"]+)" hidden></iframe>`)

// cspDirective returns the sources of one directive of a CSP.
func cspDirective(csp, name string) []string {
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 && f[0] == name {
			return f[1:]
		}
	}
	return nil
}

// TestFrontchannelLogout: after sign-out, the page embeds a frame for each
// service of the session with a front-channel URI (iss and sid added), its
// CSP allows frames from exactly those origins, and it goes on to the
// post-logout redirect URI without JavaScript.
func TestFrontchannelLogout(t *testing.T) {
	for _, how := range []string{"id_token_hint", "confirmation"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			e.logoutClient("rp-fc1", keys.ES256, "", "https://fc.example.test/logout?tenant=7")
			e.logoutClient("rp-fc2", keys.ES256, "", "http://127.0.0.1:9/fc")
			e.logoutClient("rp-other", keys.ES256, "", "https://other.example.test/fc") // not in the session
			b := e.browser()
			tok := e.signInAs(b, "rp-fc1")
			e.signInAs(b, "rp-fc2")
			e.signIn(b, nil) // rp: no front-channel URI
			sid := claimsOf(t, tok["id_token"].(string))["sid"].(string)

			var resp *http.Response
			var body string
			switch how {
			case "id_token_hint":
				resp, body = b.get("/logout?" + url.Values{"id_token_hint": {tok["id_token"].(string)},
					"post_logout_redirect_uri": {"https://rp.example.test/bye"}, "state": {"é 1"}}.Encode())
			case "confirmation":
				_, page := b.get("/logout?" + url.Values{"client_id": {"rp-fc1"},
					"post_logout_redirect_uri": {"https://rp.example.test/bye"}, "state": {"é 1"}}.Encode())
				form := hiddenInputs(page)
				form.Set("logout", "yes")
				resp, body = b.post("/logout", form)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("logout: %d %s", resp.StatusCode, body)
			}

			frames := iframeRE.FindAllStringSubmatch(body, -1)
			if len(frames) != 2 {
				t.Fatalf("%d frames, want 2:\n%s", len(frames), body)
			}
			want := []struct{ base, name string }{
				{"https://fc.example.test/logout", "Service rp-fc1"},
				{"http://127.0.0.1:9/fc", "Service rp-fc2"},
			}
			for i, f := range frames {
				u, err := url.Parse(html.UnescapeString(f[1]))
				if err != nil {
					t.Fatal(err)
				}
				q := u.Query()
				if base := u.Scheme + "://" + u.Host + u.Path; base != want[i].base {
					t.Errorf("frame %d: %s, want %s", i, base, want[i].base)
				}
				if q.Get("iss") != e.srv.URL || q.Get("sid") != sid {
					t.Errorf("frame %d: iss %q sid %q, want %q %q", i, q.Get("iss"), q.Get("sid"), e.srv.URL, sid)
				}
				if i == 0 && q.Get("tenant") != "7" {
					t.Errorf("frame 0 lost the URI's own query: %s", u)
				}
				if title := html.UnescapeString(f[2]); !strings.Contains(title, want[i].name) {
					t.Errorf("frame %d title %q does not name %q", i, title, want[i].name)
				}
			}

			csp := resp.Header.Get("Content-Security-Policy")
			got := cspDirective(csp, "frame-src")
			slices.Sort(got)
			if wantSrc := []string{"http://127.0.0.1:9", "https://fc.example.test"}; !slices.Equal(got, wantSrc) {
				t.Errorf("frame-src %v, want exactly %v (CSP %q)", got, wantSrc, csp)
			}
			if d := cspDirective(csp, "default-src"); !slices.Equal(d, []string{"'none'"}) {
				t.Errorf("default-src %v", d)
			}
			if strings.Contains(body, "<script") {
				t.Error("the page uses a script")
			}
			next := "https://rp.example.test/bye?state=%C3%A9+1"
			if r := resp.Header.Get("Refresh"); r != "1; url="+next {
				t.Errorf("Refresh %q, want it to go on to %s", r, next)
			}
			if m := continueRE.FindStringSubmatch(body); m == nil || html.UnescapeString(m[1]) != next {
				t.Errorf("no continue link to %s:\n%s", next, body)
			}
			// Signed out: the session cookie is cleared.
			if resp, _ := b.get("/logout"); resp.StatusCode != http.StatusOK {
				t.Errorf("after logout: %d", resp.StatusCode)
			}
		})
	}
}

// TestFrontchannelWithoutRedirect: without a post-logout redirect URI the
// page is the final "signed out" page, with the frames and nothing to go
// on to; without front-channel services nothing changes.
func TestFrontchannelWithoutRedirect(t *testing.T) {
	e := newEnv(t)
	e.logoutClient("rp-fc", keys.ES256, "", "https://fc.example.test/logout")
	b := e.browser()
	tok := e.signInAs(b, "rp-fc")
	resp, body := b.get("/logout?" + url.Values{"id_token_hint": {tok["id_token"].(string)}}.Encode())
	if resp.StatusCode != http.StatusOK || len(iframeRE.FindAllString(body, -1)) != 1 {
		t.Fatalf("logout: %d\n%s", resp.StatusCode, body)
	}
	if resp.Header.Get("Refresh") != "" || strings.Contains(body, `class="button"`) {
		t.Error("nothing to go on to, yet the page goes on")
	}
	if !strings.Contains(body, "déconnecté") {
		t.Error("not the signed-out page")
	}

	// No front-channel service: the plain redirect, as before.
	b2 := e.browser()
	tok = e.signIn(b2, nil)
	resp, _ = b2.get("/logout?" + url.Values{"id_token_hint": {tok["id_token"].(string)},
		"post_logout_redirect_uri": {"https://rp.example.test/bye"}}.Encode())
	if resp.StatusCode != http.StatusSeeOther || strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-src") {
		t.Fatalf("logout without front-channel services: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
}
