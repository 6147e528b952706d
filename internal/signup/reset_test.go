package signup_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/signup"
)

var resetLinkRE = regexp.MustCompile(`http://sqin\.test(/mot-de-passe-oublie/nouveau\?jeton=[A-Za-z0-9_-]+)`)

// resetLink returns the path of the newest reset link mailed to addr, ""
// when none.
func resetLink(t *testing.T, p *provider, addr string) string {
	t.Helper()
	if _, err := p.worker.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	link := ""
	for _, m := range p.sink.Sent() {
		if m.To == addr && m.Kind == "reset" {
			link = resetLinkRE.FindStringSubmatch(m.Body)[1]
		}
	}
	return link
}

// TestPasswordReset: the request page answers the same for an address
// with or without an account and mails a link only to an account; the
// link moves its token to a cookie; the new password follows the
// creation rules; the change is mailed, and the link is spent, as every
// other pending link; an expired link is refused; requests per address
// are limited — on SQLite and PostgreSQL.
func TestPasswordReset(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newURL(t))
			p := w.provider(t, nil, proofing.Limits{}, nil)
			ctx := context.Background()
			newAccount(t, p, "oubli@exemple.test")
			b := newBrowser(t)

			// The sign-in page's wording is on the request page.
			status, known, _ := b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {"Oubli@Exemple.test"}})
			if status != http.StatusOK || !strings.Contains(known, "Si un compte est associé à l'adresse oubli@exemple.test") {
				t.Fatalf("request: %d %s", status, known)
			}
			_, unknown, _ := b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {"inconnu@exemple.test"}})
			norm := func(s, addr string) string { return hiddenRE.ReplaceAllString(strings.ReplaceAll(s, addr, "ADDR"), "") }
			if norm(known, "oubli@exemple.test") != norm(unknown, "inconnu@exemple.test") {
				t.Fatal("the answer differs for an address without an account")
			}
			if resetLink(t, p, "inconnu@exemple.test") != "" {
				t.Fatal("a link for an address without an account")
			}
			if status, page, _ := b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {"pas une adresse"}}); status != http.StatusBadRequest ||
				!strings.Contains(page, "Entrez une adresse courriel valide") {
				t.Fatalf("bad address: %d", status)
			}
			first := resetLink(t, p, "oubli@exemple.test")
			if first == "" {
				t.Fatal("no link mailed")
			}
			b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {"oubli@exemple.test"}})
			link := resetLink(t, p, "oubli@exemple.test")
			if link == first {
				t.Fatal("the same link twice")
			}

			// Following the link: the token leaves the address bar.
			status, _, h := b.do(http.MethodGet, p.srv.URL+link, nil)
			if status != http.StatusSeeOther || h.Get("Location") != "/mot-de-passe-oublie/nouveau" {
				t.Fatalf("link: %d %s", status, h.Get("Location"))
			}
			_, page, _ := b.do(http.MethodGet, p.srv.URL+"/mot-de-passe-oublie/nouveau", nil)
			if strings.Contains(page, "jeton") || !strings.Contains(page, "Choisir un nouveau mot de passe") {
				t.Fatalf("new password page: %s", page)
			}
			status, page, _ = b.post(p.srv.URL, "/mot-de-passe-oublie/nouveau", url.Values{"password": {"motdepasse123"}, "password2": {"motdepasse123"}})
			if status != http.StatusBadRequest || !strings.Contains(page, "fait partie des plus utilisés") {
				t.Fatalf("weak password: %d", status)
			}
			const newPassword = "quatre hiboux sous la lune"
			status, page, _ = b.post(p.srv.URL, "/mot-de-passe-oublie/nouveau", url.Values{"password": {newPassword}, "password2": {newPassword + "!"}})
			if status != http.StatusBadRequest || !strings.Contains(page, "ne sont pas identiques") {
				t.Fatalf("mismatch: %d", status)
			}
			status, page, _ = b.post(p.srv.URL, "/mot-de-passe-oublie/nouveau", url.Values{"password": {newPassword}, "password2": {newPassword}})
			if status != http.StatusOK || !strings.Contains(page, "Votre mot de passe a été changé") {
				t.Fatalf("change: %d %s", status, page)
			}
			a, err := p.db.GetAccountByEmail(ctx, "oubli@exemple.test")
			if err != nil {
				t.Fatal(err)
			}
			h2, _ := authn.NewHasher(authn.DemoArgon2)
			if h2.Verify(a.PasswordHash, newPassword) != nil || h2.Verify(a.PasswordHash, password) == nil {
				t.Fatal("the password did not change")
			}
			if _, err := p.worker.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			told := false
			for _, m := range p.sink.Sent() {
				told = told || (m.To == "oubli@exemple.test" && m.Kind == "password_changed")
			}
			if !told {
				t.Fatal("the change was not mailed")
			}
			// Spent: this link and the first one.
			for _, l := range []string{link, first} {
				c := newBrowser(t)
				c.do(http.MethodGet, p.srv.URL+l, nil)
				if status, page, _ := c.do(http.MethodGet, p.srv.URL+"/mot-de-passe-oublie/nouveau", nil); status != http.StatusBadRequest ||
					!strings.Contains(page, "Ce lien de réinitialisation n'est plus valide") {
					t.Fatalf("a spent link: %d", status)
				}
			}
			// Expired.
			b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {"oubli@exemple.test"}})
			late := resetLink(t, p, "oubli@exemple.test")
			w.clock.add(31 * time.Minute)
			c := newBrowser(t)
			c.do(http.MethodGet, p.srv.URL+late, nil)
			if status, _, _ := c.do(http.MethodGet, p.srv.URL+"/mot-de-passe-oublie/nouveau", nil); status != http.StatusBadRequest {
				t.Fatalf("an expired link: %d", status)
			}
			// The fourth request within an hour for one address is refused,
			// with a message, whether or not it has an account.
			for _, addr := range []string{"oubli@exemple.test", "autre-inconnu@exemple.test"} {
				var status int
				var page string
				for range 4 {
					status, page, _ = b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {addr}})
				}
				if status != http.StatusTooManyRequests || !strings.Contains(page, "Trop de demandes") {
					t.Fatalf("%s: fourth request: %d", addr, status)
				}
			}
		})
	}
}

// TestResetNeedsCSRF: the forms refuse a post without their token.
func TestResetNeedsCSRF(t *testing.T) {
	w := newWorld(t, databases(t)["sqlite"](t))
	p := w.provider(t, nil, proofing.Limits{}, nil, func(c *signup.Config) { c.ResetsPerHour = 100 })
	b := newBrowser(t)
	if status, _, _ := b.do(http.MethodPost, p.srv.URL+"/mot-de-passe-oublie", url.Values{"email": {"a@exemple.test"}}); status != http.StatusForbidden {
		t.Fatalf("reset request without a token: %d", status)
	}
	b.account(p, "csrf@exemple.test")
	if status, _, _ := b.do(http.MethodPost, p.srv.URL+"/verification/courrier/demande", url.Values{"family_name": {"A"}}); status != http.StatusForbidden {
		t.Fatalf("letter request without a token: %d", status)
	}
	if status, _, _ := b.do(http.MethodPost, p.srv.URL+"/verification/courrier", url.Values{"code": {"ABCD-EFGH-JKMN"}}); status != http.StatusForbidden {
		t.Fatalf("letter code without a token: %d", status)
	}
}
