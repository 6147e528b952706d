package signup_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/sqltest"
)

// TestMailAndResetLimitsAcrossInstances: the limits of the code-by-mail
// and password-reset paths are counted in the database, so attempts spread
// over two server instances on one PostgreSQL add up and the N+1th is
// refused on either: letter requests per account (3 in 30 days), wrong
// mail codes per account (the prover's per-account limit, 3 here: even the
// right code is then refused) and reset requests per address (3 an hour).
func TestMailAndResetLimitsAcrossInstances(t *testing.T) {
	w := newWorld(t, sqltest.PostgresURL(t))
	limits := proofing.Limits{PerAccount: 3, MinDuration: time.Millisecond}
	p1 := w.provider(t, nil, limits, nil)
	p2 := w.provider(t, nil, limits, nil)
	instances := []*provider{p1, p2, p1, p2}
	b := newBrowser(t)
	b.account(p1, "deux-instances@exemple.test")
	who := w.people[6]

	for i, p := range instances {
		status, page := requestLetter(b, p, who)
		want, text := http.StatusOK, "Demande de lettre reçue"
		if i == 3 {
			want, text = http.StatusTooManyRequests, "Trop de lettres ont été demandées"
		}
		if status != want || !strings.Contains(page, text) {
			t.Fatalf("letter request %d on instance %d: %d", i+1, i%2+1, status)
		}
	}
	m, codes := export(t, p2, w.clock.Now(), t.TempDir())
	if m.Count != 1 {
		t.Fatalf("%d letters printed, want 1", m.Count)
	}
	for i, p := range instances[:3] {
		if status, page := enterLetterCode(b, p, "ZZZZ-ZZZZ-ZZZZ"); status != http.StatusBadRequest || !strings.Contains(page, "Ce code est incorrect") {
			t.Fatalf("wrong code %d on instance %d: %d", i+1, i%2+1, status)
		}
	}
	status, page := enterLetterCode(b, p2, codes[m.Letters[0].Letter])
	if status != http.StatusTooManyRequests || !strings.Contains(page, "Trop d'essais de vérification") {
		t.Fatalf("fourth code on instance 2: %d", status)
	}
	a, err := p1.db.GetAccountByEmail(context.Background(), "deux-instances@exemple.test")
	if err != nil || a.PersonID != "" {
		t.Fatalf("the account was proved past the limit: %+v %v", a, err)
	}

	c := newBrowser(t)
	for i, p := range instances {
		status, page, _ := c.post(p.srv.URL, "/mot-de-passe-oublie", url.Values{"email": {"deux-instances@exemple.test"}})
		want, text := http.StatusOK, "Si un compte est associé"
		if i == 3 {
			want, text = http.StatusTooManyRequests, "Trop de demandes ont été faites pour cette adresse"
		}
		if status != want || !strings.Contains(page, text) {
			t.Fatalf("reset request %d on instance %d: %d", i+1, i%2+1, status)
		}
	}
	links := 0
	for _, p := range []*provider{p1, p2} {
		if _, err := p.worker.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, m := range p.sink.Sent() {
			if m.To == "deux-instances@exemple.test" && m.Kind == "reset" {
				links++
			}
		}
	}
	if links != 3 {
		t.Fatalf("%d reset links mailed, want 3", links)
	}
}
