package signup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/sqltest"
)

// Regression tests of the security review of the account-creation pages
// (findings 1 to 7; the export lock is in exportlock_unix_test.go).

// auditing gives the handler an audit log (pseudonyms and a batcher on
// its own connection) and returns the pseudonymizer.
func auditing(t *testing.T, w *world) (*audit.Pseudonymizer, func(*signup.Config)) {
	t.Helper()
	ps, err := audit.NewPseudonymizer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	bat := audit.NewBatcher(openDB(t, w.url), 16, 0)
	t.Cleanup(bat.Close)
	return ps, func(c *signup.Config) { c.Pseudonyms, c.Batcher = ps, bat }
}

// twoProofs is the health card and the SIN of who (with a holder that
// confirms every SIN, level 2).
func twoProofs(who person) url.Values {
	f := healthCard(who)
	f.Set("use-sin", "yes")
	f.Set("sin.sin", "046454286")
	return f
}

var confirmAll = map[string]proofing.Verifier{"sin": matchAll{}, "notice-of-assessment": matchAll{}}

// events returns "action outcome detail" of the events about subject
// whose action starts with prefix.
func events(t *testing.T, p *provider, subject, prefix string) []string {
	t.Helper()
	recs, err := p.db.EventsBySubject(context.Background(), subject, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		if strings.HasPrefix(r.Action+" ", prefix) {
			out = append(out, r.Action+" "+r.Outcome+" "+r.Detail)
		}
	}
	return out
}

// TestLetterRequestSameForEveryone (finding 1): whatever the registry and
// the accounts hold — no such person, a person without an account, a
// person who has one — the requester sees the same answer, the same code
// page afterwards and the same audit event of their own, before and after
// the print job; what came of the request is recorded about the person
// (none for an unknown identity) — on SQLite and PostgreSQL.
func TestLetterRequestSameForEveryone(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newURL(t))
			ps, withAudit := auditing(t, w)
			p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond}, confirmAll, withAudit)
			ctx := context.Background()
			taken := w.people[2]
			if _, page := newAccount(t, p, "proprio@exemple.test").prove(p, taken, twoProofs(taken)); !strings.Contains(page, "terminée") {
				t.Fatal("setup: the owner is not proofed")
			}
			unknown := w.people[4]
			unknown.Birth = "1901-01-01"
			tests := []struct {
				name    string
				who     person
				decided string // outcome of the event about the person; "" for none
			}{
				{"no such person", unknown, ""},
				{"a person without an account", w.people[4], audit.Success},
				{"a person who has an account", taken, audit.Denied},
			}
			type seen struct{ answer, page string }
			var first *seen
			var requesters []string
			for i, tt := range tests {
				email := fmt.Sprintf("demandeur%d@exemple.test", i)
				b := newAccount(t, p, email)
				status, answer := requestLetter(b, p, tt.who)
				_, page, _ := b.do(http.MethodGet, p.srv.URL+"/verification/courrier", nil)
				got := seen{normalize(answer), normalize(page)}
				if status != http.StatusOK {
					t.Fatalf("%s: status %d", tt.name, status)
				}
				if first == nil {
					first = &got
				} else if got != *first {
					t.Errorf("%s: the answer or the code page differs from %q's", tt.name, tests[0].name)
				}
				acct, err := p.db.GetAccountByEmail(ctx, email)
				if err != nil {
					t.Fatal(err)
				}
				requesters = append(requesters, acct.ID)
				own := events(t, p, ps.Account(acct.ID), "proofing.letter")
				if want := []string{"proofing.letter.requested success letter request received"}; !slices.Equal(own, want) {
					t.Errorf("%s: the requester's events %q, want %q", tt.name, own, want)
				}
				pid, err := p.db.FindPersonByNameAndBirthDate(ctx, tt.who.Family, tt.who.Given, tt.who.Birth)
				if tt.decided == "" {
					if !errors.Is(err, sqin.ErrNotFound) {
						t.Fatalf("%s: %v", tt.name, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				about := events(t, p, ps.Person(pid), signup.ActionLetterDecided)
				if len(about) != 1 || !strings.HasPrefix(about[0], signup.ActionLetterDecided+" "+tt.decided+" ") {
					t.Errorf("%s: events about the person %q, want one %s", tt.name, about, tt.decided)
				}
			}
			// Printing the letter leaves the requester's own events as they
			// were: the printed event is about the person.
			res, err := signup.ExportLetters(ctx, p.db, signup.ExportOptions{Dir: t.TempDir(), Key: mailKey, Issuer: "http://sqin.test",
				Catalog: p.rd.Catalog(), Pseudonyms: ps, Actor: audit.Actor{Kind: audit.ActorSystem, ID: "letters-export"}, Now: w.clock.Now})
			if err != nil || res.Printed != 1 {
				t.Fatalf("printed %+v, want 1 letter: %v", res, err)
			}
			for i, id := range requesters {
				if own := events(t, p, ps.Account(id), "proofing.letter"); len(own) != 1 {
					t.Errorf("%s: after the print job the requester reads %q", tests[i].name, own)
				}
			}
			pid, _ := p.db.FindPersonByNameAndBirthDate(ctx, w.people[4].Family, w.people[4].Given, w.people[4].Birth)
			if got := events(t, p, ps.Person(pid), signup.ActionLetterPrinted); len(got) != 1 {
				t.Errorf("printed events about the person: %q", got)
			}
		})
	}
}

// syncBuffer is a log destination shared by the handlers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLettersDailyCap (finding 1): letter requests of every citizen
// together are capped per 24 hours; past the cap the request is refused
// with the same page whoever is asked about, and the first refusal logs
// an error to alert on, once — on SQLite and PostgreSQL.
func TestLettersDailyCap(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newURL(t))
			var logs syncBuffer
			w.log = slog.New(slog.NewTextHandler(&logs, nil))
			p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond}, nil,
				func(c *signup.Config) { c.LettersPerDay = 2 })
			unknown := w.people[6]
			unknown.Birth = "1901-01-01"
			for i, tt := range []struct {
				who  person
				want int
			}{{w.people[5], http.StatusOK}, {unknown, http.StatusOK}, {w.people[6], http.StatusTooManyRequests}, {unknown, http.StatusTooManyRequests}} {
				status, page := requestLetter(newAccount(t, p, fmt.Sprintf("plafond%d@exemple.test", i)), p, tt.who)
				if status != tt.want {
					t.Fatalf("request %d: %d, want %d", i+1, status, tt.want)
				}
				if tt.want == http.StatusTooManyRequests && !strings.Contains(page, "trop de demandes de lettres aujourd'hui") {
					t.Fatalf("request %d: the page does not say the service is busy", i+1)
				}
			}
			if n := strings.Count(logs.String(), "alert=letters_daily_cap"); n != 1 {
				t.Fatalf("the cap was logged %d times, want once:\n%s", n, logs.String())
			}
		})
	}
}

// TestPerPersonLimitOneKey (finding 3): once the per-person limit of a
// registry person is reached, no spelling that designates the person
// (case-fold variants: long s, upper or lower case, spaces) is checked again; variants
// of an identity the registry does not know share one key too; letter
// requests likewise — on SQLite and PostgreSQL.
func TestPerPersonLimitOneKey(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newURL(t))
			p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond, PerPerson: 1, PerAccount: 100, PerAddress: 100},
				nil, func(c *signup.Config) { c.LettersPer30Days = 1 })
			ctx := context.Background()
			var who person
			for _, x := range w.people {
				if strings.ContainsAny(x.Family+x.Given, "sS") {
					who = x
					break
				}
			}
			if who.Family == "" {
				t.Fatal("no name with an s in the synthetic registry")
			}
			longS := strings.NewReplacer("s", "ſ", "S", "ſ")
			variants := []struct {
				name string
				f    func(string) string
			}{
				{"long s", longS.Replace},
				{"upper case", strings.ToUpper},
				{"lower case", strings.ToLower},
				{"spaces", func(s string) string { return "  " + strings.ReplaceAll(s, " ", "   ") + " " }},
			}
			pid, err := p.db.FindPersonByNameAndBirthDate(ctx, who.Family, who.Given, who.Birth)
			if err != nil {
				t.Fatal(err)
			}
			wrong := url.Values{"use-health-card": {"yes"}, "health-card.nam": {"ABCD12345678"}, "health-card.expiry": {"202901"}}
			unknown := who
			unknown.Birth = "1901-01-01"
			b := newAccount(t, p, "plain@exemple.test")
			for _, id := range []person{who, unknown} {
				if _, page := b.prove(p, id, wrong); strings.Contains(page, "Trop d'essais") {
					t.Fatal("the first attempt is locked")
				}
			}
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					alt := who
					alt.Family, alt.Given = v.f(who.Family), v.f(who.Given)
					if got, err := p.db.FindPersonByNameAndBirthDate(ctx, alt.Family, alt.Given, alt.Birth); err != nil || got != pid {
						t.Fatalf("the variant %q %q does not designate the person: %q %v", alt.Family, alt.Given, got, err)
					}
					c := newAccount(t, p, "v-"+strings.ReplaceAll(v.name, " ", "-")+"@exemple.test")
					if status, page := c.prove(p, alt, healthCard(who)); status != http.StatusTooManyRequests || !strings.Contains(page, "Trop d'essais") {
						t.Errorf("the person is checked again under %q %q: %d", alt.Family, alt.Given, status)
					}
					altUnknown := unknown
					altUnknown.Family, altUnknown.Given = alt.Family, alt.Given
					if status, _ := c.prove(p, altUnknown, wrong); status != http.StatusTooManyRequests {
						t.Errorf("an unknown identity is checked again under a variant: %d", status)
					}
				})
			}
			// Letters: one per identity per 30 days, whatever the spelling.
			if status, _ := requestLetter(newAccount(t, p, "lettre1@exemple.test"), p, who); status != http.StatusOK {
				t.Fatalf("first letter request: %d", status)
			}
			alt := who
			alt.Family, alt.Given = longS.Replace(who.Family), longS.Replace(who.Given)
			if status, _ := requestLetter(newAccount(t, p, "lettre2@exemple.test"), p, alt); status != http.StatusTooManyRequests {
				t.Fatalf("a letter for the same person under a variant: %d", status)
			}
		})
	}
}

// downSlow is a holder that takes delay and then cannot answer (a
// timeout, an open circuit after failures).
type downSlow struct{ delay time.Duration }

func (h downSlow) Verify(context.Context, []string, map[string]string) (bool, error) {
	time.Sleep(h.delay)
	return false, proofing.ErrUnavailable
}

// TestHolderDownSameAnswer (finding 4): with a remote holder down or slow
// and failing, a person the registry knows and one it does not get the
// same answer ("does not respond"); TestEnumeration compares their times.
func TestHolderDownSameAnswer(t *testing.T) {
	w := newWorld(t, sqltest.SQLiteURL(t))
	for _, tt := range []struct {
		name   string
		holder proofing.Verifier
	}{{"down", down{}}, {"slow then down", downSlow{20 * time.Millisecond}}} {
		t.Run(tt.name, func(t *testing.T) {
			p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond, PerPerson: 100, PerAccount: 100},
				map[string]proofing.Verifier{"sin": tt.holder, "notice-of-assessment": tt.holder})
			known := w.people[3]
			unknown := known
			unknown.Birth = "1901-01-01"
			f := url.Values{"use-sin": {"yes"}, "sin.sin": {"046454286"}}
			b := newAccount(t, p, "panne-"+strings.ReplaceAll(tt.name, " ", "-")+"@exemple.test")
			_, pk := b.prove(p, known, f)
			_, pu := b.prove(p, unknown, f)
			if !strings.Contains(pk, "ne répond pas") {
				t.Fatalf("known person: the page does not say the holder is down")
			}
			if normalize(pk) != normalize(pu) {
				t.Error("the answer tells a person the registry knows from one it does not while the holder is down")
			}
		})
	}
}

// sessions is the provider's side as the pages see it: who is signed in,
// and every SignIn.
type sessions struct {
	mu       sync.Mutex
	signedIn string // the browser's signed-in account, "" for none
	calls    []signInCall
}

type signInCall struct {
	account  string
	amr      []string
	authTime time.Time
}

func (s *sessions) SignIn(_ http.ResponseWriter, _ *http.Request, id string, amr []string, at time.Time, _ string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, signInCall{id, amr, at})
	return "/", nil
}

func (s *sessions) SessionAccount(*http.Request) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signedIn == "" {
		return "", ""
	}
	return s.signedIn, "sess-" + s.signedIn
}

func (s *sessions) EndSession(context.Context, string) error { return nil }

func (s *sessions) ForgetFailedSignIns(context.Context, string) error { return nil }

func (s *sessions) reset(signedIn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signedIn, s.calls = signedIn, nil
}

func (s *sessions) accounts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		out = append(out, c.account)
	}
	return out
}

// TestFlowCookie (finding 5): the registration's cookie is a session
// cookie; proofing ends the registration (flow deleted, cookie cleared),
// so the next person at a shared browser is not signed in to the
// registrant's account; a signed-in citizen of another account is the
// one the pages act for; the sign-in at the end of a registration names
// the email code ("otp") and when it was entered, not "pwd" and now.
func TestFlowCookie(t *testing.T) {
	w := newWorld(t, sqltest.SQLiteURL(t))
	ss := &sessions{}
	p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond, PerAccount: 100}, confirmAll,
		func(c *signup.Config) { c.Sessions = ss })
	ctx := context.Background()
	account := func(email string) *sqin.Account {
		t.Helper()
		a, err := p.db.GetAccountByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	t.Run("a session cookie", func(t *testing.T) {
		b := newBrowser(t)
		_, _, h := b.post(p.srv.URL, "/inscription", url.Values{"email": {"cookie@exemple.test"}, "password": {password},
			"password2": {password}, "terms": {"yes"}})
		found := false
		for _, c := range h.Values("Set-Cookie") {
			if strings.HasPrefix(c, "sqin_signup=") {
				found = true
				if strings.Contains(c, "Max-Age") || strings.Contains(c, "Expires") {
					t.Errorf("the registration cookie outlives the browser: %s", c)
				}
			}
		}
		if !found {
			t.Fatal("no registration cookie")
		}
	})

	t.Run("proofing ends the registration", func(t *testing.T) {
		ss.reset("")
		kiosk := newBrowser(t)
		kiosk.account(p, "guichet@exemple.test")
		reg := account("guichet@exemple.test")
		if _, page := kiosk.prove(p, w.people[6], twoProofs(w.people[6])); !strings.Contains(page, "terminée") {
			t.Fatal("the registrant is not proofed")
		}
		want := []signInCall{{reg.ID, []string{"otp"}, reg.CreatedAt}}
		if len(ss.calls) != 1 || ss.calls[0].account != want[0].account || !slices.Equal(ss.calls[0].amr, want[0].amr) ||
			!ss.calls[0].authTime.Equal(want[0].authTime) {
			t.Fatalf("sign-in %+v, want %+v", ss.calls, want)
		}
		// The registrant leaves (signed out, or the session is not there);
		// the next person proves their own identity in the same browser.
		ss.reset("")
		next := w.people[7]
		newAccount(t, p, "suivant@exemple.test").prove(p, next, twoProofs(next))
		ss.reset("")
		status, _ := kiosk.prove(p, next, twoProofs(next))
		if slices.Contains(ss.accounts(), reg.ID) || status != http.StatusBadRequest {
			t.Fatalf("the next person was signed in to the registrant's account: %d %v", status, ss.accounts())
		}
	})

	t.Run("the signed-in account wins over a registration", func(t *testing.T) {
		ss.reset("")
		other := newAccount(t, p, "connecte@exemple.test")
		_ = other
		signed := account("connecte@exemple.test")
		kiosk := newBrowser(t)
		kiosk.account(p, "abandon@exemple.test")
		reg := account("abandon@exemple.test")
		ss.reset(signed.ID)
		who := w.people[8]
		if _, page := kiosk.prove(p, who, twoProofs(who)); !strings.Contains(page, "terminée") {
			t.Fatal("proofing failed")
		}
		if got := ss.accounts(); !slices.Equal(got, []string{signed.ID}) {
			t.Fatalf("signed in %v, want the signed-in account %s", got, signed.ID)
		}
		if a := account("abandon@exemple.test"); a.LoA != sqin.LoA1 || a.PersonID != "" {
			t.Fatalf("the registration's account was proofed: %+v", a)
		}
		if a := account("connecte@exemple.test"); a.LoA != sqin.LoA2 {
			t.Fatalf("the signed-in account is at %v", a.LoA)
		}
		// Its own session names how it signed in: SignIn gets no amr.
		if c := ss.calls[0]; c.amr != nil || !c.authTime.IsZero() {
			t.Fatalf("a signed-in citizen's raise names an authentication: %+v", c)
		}
		_ = reg
	})
}

// TestResetLowersLevel (finding 2): a password reset by a mailed link
// brings a proofed account back to level 1, keeping its person, dropping
// its proofs and ending its sessions in the reset's transaction, with an
// audit event that says so; the form shows the masked address of the
// account it changes and says what the change does, as do the done page
// and the mail; proving the same person again raises this account (not a
// "second account" for the person) — on SQLite and PostgreSQL.
func TestResetLowersLevel(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newURL(t))
			ps, withAudit := auditing(t, w)
			ss := &sessions{}
			p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond}, confirmAll, withAudit,
				func(c *signup.Config) { c.Sessions = ss })
			ctx := context.Background()
			const email = "reprise@exemple.test"
			who := w.people[9]
			owner := newAccount(t, p, email)
			if _, page := owner.prove(p, who, twoProofs(who)); !strings.Contains(page, "terminée") {
				t.Fatal("setup: not proofed")
			}
			before, _ := p.db.GetAccountByEmail(ctx, email)
			now := w.clock.Now()
			if err := p.db.CreateSession(ctx, &sqin.Session{ID: "sess-reprise", AccountID: before.ID, LoA: sqin.LoA2, AMR: []string{"pwd"},
				AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}

			b := newBrowser(t)
			b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {email}})
			b.do(http.MethodGet, p.srv.URL+resetLink(t, p, email), nil)
			_, form, _ := b.do(http.MethodGet, p.srv.URL+"/mot-de-passe-oublie/nouveau", nil)
			for _, want := range []string{"r•••@exemple.test", "ramène le compte au niveau 1", "même hors connexion"} {
				if !strings.Contains(form, want) {
					t.Errorf("the reset form lacks %q", want)
				}
			}
			const newPassword = "quatre hiboux sous la lune"
			_, done, _ := b.post(p.srv.URL, "/mot-de-passe-oublie/nouveau", url.Values{"password": {newPassword}, "password2": {newPassword}})
			if !strings.Contains(done, "Votre compte est maintenant au niveau 1") {
				t.Error("the done page does not say the level dropped")
			}
			a, _ := p.db.GetAccountByEmail(ctx, email)
			if a.LoA != sqin.LoA1 || a.PersonID != before.PersonID {
				t.Fatalf("after the reset: loa %v person %q, want 1 and %q", a.LoA, a.PersonID, before.PersonID)
			}
			if _, err := p.db.GetSession(ctx, "sess-reprise", w.clock.Now()); !errors.Is(err, sqin.ErrNotFound) {
				t.Fatalf("the session survived the reset: %v", err)
			}
			if proofs, _ := p.db.Proofs(ctx, a.ID, a.PersonID); len(proofs) != 0 {
				t.Fatalf("proofs kept: %v", proofs)
			}
			ev := events(t, p, ps.Account(a.ID), signup.ActionPasswordReset+" ")
			if len(ev) != 1 || !strings.Contains(ev[0], "loa 2 -> 1") {
				t.Fatalf("reset events %q", ev)
			}
			if _, err := p.worker.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			told := false
			for _, m := range p.sink.Sent() {
				if m.To == email && m.Kind == "password_changed" {
					told = strings.Contains(m.Body, "niveau 1") && strings.Contains(m.Body, "http://sqin.test/verification")
				}
			}
			if !told {
				t.Error("the mail does not say the level dropped and where to prove it again")
			}

			// Signed in again, proving the same person: one proof is not
			// enough any more; two raise this account.
			ss.reset(a.ID)
			if _, page := owner.prove(p, who, healthCard(who)); !strings.Contains(page, "Preuves confirmées : 1 sur 2") {
				t.Fatal("the old proofs still count")
			}
			if _, page := owner.prove(p, who, twoProofs(who)); !strings.Contains(page, "terminée") {
				t.Fatal("proving again failed")
			}
			if a, _ := p.db.GetAccountByEmail(ctx, email); a.LoA != sqin.LoA2 || a.PersonID != before.PersonID {
				t.Fatalf("proved again: %+v", a)
			}
			if _, err := p.worker.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			for _, m := range p.sink.Sent() {
				if m.Kind == "person_taken" {
					t.Fatal("proving the account's own person again was taken for a second account")
				}
			}
		})
	}
}

// TestResetLinkFixation (finding 7): a made-up link sets no reset cookie
// (the form then refuses), a live one does.
func TestResetLinkFixation(t *testing.T) {
	w := newWorld(t, sqltest.SQLiteURL(t))
	p := w.provider(t, nil, proofing.Limits{}, nil)
	newAccount(t, p, "fixe@exemple.test")
	b := newBrowser(t)
	b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {"fixe@exemple.test"}})
	live := resetLink(t, p, "fixe@exemple.test")
	for _, tt := range []struct {
		name   string
		link   string
		cookie bool
		form   int
	}{
		{"made-up token", "/mot-de-passe-oublie/nouveau?jeton=" + keys.Random(32), false, http.StatusBadRequest},
		{"live token", live, true, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newBrowser(t)
			status, _, h := c.do(http.MethodGet, p.srv.URL+tt.link, nil)
			set := false
			for _, ck := range h.Values("Set-Cookie") {
				set = set || strings.HasPrefix(ck, "sqin_reset=")
			}
			if status != http.StatusSeeOther || set != tt.cookie {
				t.Fatalf("link: %d, cookie set %v, want %v", status, set, tt.cookie)
			}
			if status, _, _ := c.do(http.MethodGet, p.srv.URL+"/mot-de-passe-oublie/nouveau", nil); status != tt.form {
				t.Fatalf("form: %d, want %d", status, tt.form)
			}
		})
	}
}

// TestOutboxSealed (finding 7): email codes and reset links are never in
// clear in the outbox, whatever the relay does; the worker opens them to
// send; a worker without the key sends nothing rather than ciphertext —
// on SQLite and PostgreSQL.
func TestOutboxSealed(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newURL(t))
			p := w.provider(t, nil, proofing.Limits{}, nil)
			ctx := context.Background()
			b := newBrowser(t)
			b.post(p.srv.URL, "/inscription", url.Values{"email": {"scelle@exemple.test"}, "password": {password},
				"password2": {password}, "terms": {"yes"}})
			stored, err := p.db.ClaimMails(ctx, w.clock.Now(), time.Millisecond, 10)
			if err != nil || len(stored) != 1 {
				t.Fatalf("outbox: %v %v", stored, err)
			}
			if !strings.HasPrefix(stored[0].Body, "sqin-sealed-v1:") || codeRE.MatchString(stored[0].Body+"\n") {
				t.Fatalf("the code is in clear in the outbox: %q", stored[0].Body)
			}
			w.clock.add(time.Second)
			keyless := &signup.Worker{Store: p.db, Sender: p.sink, From: "x@sqin.test", Now: w.clock.Now}
			if n, err := keyless.RunOnce(ctx); n != 0 || err != nil || len(p.sink.Sent()) != 0 {
				t.Fatalf("a worker without the key sent %d: %v", n, err)
			}
			w.clock.add(time.Hour)
			if n, err := p.worker.RunOnce(ctx); n != 1 || err != nil {
				t.Fatalf("sent %d: %v", n, err)
			}
			if sent := p.sink.Sent(); len(sent) != 1 || !codeRE.MatchString(sent[0].Body+"\n") {
				t.Fatalf("the mail sent has no code: %+v", sent)
			}
			// A reset link, likewise.
			newAccount(t, p, "lien@exemple.test")
			b.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {"lien@exemple.test"}})
			stored, _ = p.db.ClaimMails(ctx, w.clock.Now(), time.Millisecond, 10)
			for _, m := range stored {
				if strings.Contains(m.Body, "jeton=") || !strings.HasPrefix(m.Body, "sqin-sealed-v1:") {
					t.Fatalf("a %s mail in clear in the outbox", m.Kind)
				}
			}
			// Two mails to one recipient cannot be swapped: each body is
			// bound to its mail.
			if len(stored) > 0 {
				m := *stored[0]
				m.ID = "another-mail"
				if _, err := signup.OpenBody(mailSealer, &m); err == nil {
					t.Fatal("a sealed body opens as another mail's")
				}
			}
		})
	}
}

// TestNameKeyMatchesLookup: the limit key of a claimed identity is the
// registry's: two spellings have one IdentityKey exactly when the
// registry matches them to one another.
func TestNameKeyMatchesLookup(t *testing.T) {
	for _, tt := range []struct{ a, b string }{{"Gauthier", "GAUTHIER"}, {"Sébastien", "ſébaſtien"}, {"Côté", "Cote"}, {"Strauß", "Strauss"}} {
		same := signup.IdentityKey(testKey, tt.a, "X", "2000-01-01") == signup.IdentityKey(testKey, tt.b, "X", "2000-01-01")
		if same != registry.SameName(tt.a, tt.b) {
			t.Errorf("%q, %q: one key %v, one name %v", tt.a, tt.b, same, registry.SameName(tt.a, tt.b))
		}
	}
}
