package signup_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/sqltest"
	assets "github.com/sqin/sqin/web"
)

// pdfText reads back the strings a PDF shows (Tj operators of its
// uncompressed content streams), Latin-1 bytes decoded.
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	var out []string
	for _, m := range regexp.MustCompile(`(?s)stream\n(.*?)endstream`).FindAllSubmatch(pdf, -1) {
		for _, s := range regexp.MustCompile(`\(((?:\\.|[^\\)])*)\) Tj`).FindAllSubmatch(m[1], -1) {
			var b strings.Builder
			raw := s[1]
			for i := 0; i < len(raw); i++ {
				c := raw[i]
				if c == '\\' {
					i++
					if raw[i] >= '0' && raw[i] <= '7' {
						n, _ := strconv.ParseUint(string(raw[i:i+3]), 8, 8)
						c = byte(n)
						i += 2
					} else {
						c = raw[i]
					}
				}
				b.WriteRune(rune(c))
			}
			out = append(out, b.String())
		}
	}
	return strings.Join(out, "\n")
}

var letterCodeRE = regexp.MustCompile(`(?:Votre code :|Your code:) ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})`)

// export runs the print job and returns the batch's manifest and the code
// of each letter, read from its PDF.
func export(t *testing.T, p *provider, now time.Time, dir string) (signup.Manifest, map[string]string) {
	t.Helper()
	res, err := signup.ExportLetters(context.Background(), p.db, signup.ExportOptions{Dir: dir, Key: mailKey, Issuer: "http://sqin.test",
		Catalog: p.rd.Catalog(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var m signup.Manifest
	if res.Dir == "" {
		return m, nil
	}
	raw, err := os.ReadFile(filepath.Join(res.Dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, e := range m.Letters {
		pdf, err := os.ReadFile(filepath.Join(res.Dir, e.File))
		if err != nil {
			t.Fatal(err)
		}
		text := pdfText(t, pdf)
		c := letterCodeRE.FindStringSubmatch(text)
		if c == nil {
			t.Fatalf("no code in letter %s:\n%s", e.File, text)
		}
		codes[e.Letter] = c[1]
	}
	return m, codes
}

func requestLetter(b *browser, p *provider, who person) (int, string) {
	b.t.Helper()
	status, page, _ := b.post(p.srv.URL, "/verification/courrier/demande", url.Values{"family_name": {who.Family},
		"given_names": {who.Given}, "birth_date": {who.Birth}, "consent": {"yes"}})
	return status, page
}

func enterLetterCode(b *browser, p *provider, code string) (int, string) {
	b.t.Helper()
	status, page, _ := b.post(p.srv.URL, "/verification/courrier", url.Values{"code": {code}})
	return status, page
}

// TestMailCode: a citizen without secrets asks for a letter; the page is
// the same whether the registry knows the identity or not, and only a
// known identity gets a letter; the print job writes one PDF per letter
// (its code readable in the file, in the citizen's language, addressed to
// the registry address) and a manifest; a wrong code is refused with the
// attempts counted, the right one raises the account to level 2 and is
// spent; a letter's code expires; too many wrong codes void it — on
// SQLite and PostgreSQL.
func TestMailCode(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newURL(t))
			p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond}, nil)
			ctx := context.Background()
			out := t.TempDir()

			// Without a registration or a session, the page says to sign in.
			if status, page, _ := newBrowser(t).do(http.MethodGet, p.srv.URL+"/verification/courrier", nil); status != http.StatusOK ||
				!strings.Contains(page, "Connectez-vous d'abord") {
				t.Fatalf("no account: %d", status)
			}

			b := newBrowser(t)
			b.account(p, "lettre@exemple.test")
			_, page, _ := b.do(http.MethodGet, p.srv.URL+"/verification", nil)
			if !strings.Contains(page, `href="/verification/courrier/demande"`) {
				t.Fatal("the proofing page does not offer a code by mail")
			}
			// Errors are precise and keep what was typed.
			status, page, _ := b.post(p.srv.URL, "/verification/courrier/demande", url.Values{"family_name": {"Côté"}, "birth_date": {"1984-02-30"}})
			if status != http.StatusBadRequest || !strings.Contains(page, "Entrez votre ou vos prénoms.") || !strings.Contains(page, "date de naissance valide") ||
				!strings.Contains(page, "Cochez la case pour consentir") || !strings.Contains(page, `value="Côté"`) {
				t.Fatalf("request errors: %d %s", status, page)
			}

			// An identity the registry does not know: the same page, no letter.
			who := w.people[4]
			nobody := who
			nobody.Birth = "1901-01-01"
			_, unknownPage := requestLetter(newAccount(t, p, "personne@exemple.test"), p, nobody)
			status, knownPage := requestLetter(b, p, who)
			if status != http.StatusOK || !strings.Contains(knownPage, "Demande de lettre reçue") {
				t.Fatalf("request: %d %s", status, knownPage)
			}
			if hiddenRE.ReplaceAllString(unknownPage, "") != hiddenRE.ReplaceAllString(knownPage, "") {
				t.Fatal("the answer differs for an identity the registry does not know")
			}
			// Asking twice queues one letter. The code page says how letters
			// go, not whether one was queued (that would tell who exists).
			requestLetter(b, p, who)
			_, page, _ = b.do(http.MethodGet, p.srv.URL+"/verification/courrier", nil)
			if !strings.Contains(page, "Entrez le code de la lettre que vous avez reçue") || !strings.Contains(page, "valide 30 jours") ||
				!strings.Contains(page, "après 5 codes incorrects") {
				t.Fatal("the code page does not say how letters go")
			}

			m, codes := export(t, p, w.clock.Now(), out)
			if m.Count != 1 || len(codes) != 1 || m.Letters[0].Pages != 1 || m.Letters[0].Language != "fr" || m.Letters[0].PostalCode == "" {
				t.Fatalf("manifest %+v", m)
			}
			pdf, _ := os.ReadFile(filepath.Join(out, m.Batch, m.Letters[0].File))
			text := pdfText(t, pdf)
			for _, want := range []string{strings.ToUpper(who.Given), strings.ToUpper(who.Family), "Votre code de vérification d'identité",
				"http://sqin.test/verification/courrier", "Référence : ltr-"} {
				if !strings.Contains(text, want) {
					t.Errorf("the letter lacks %q:\n%s", want, text)
				}
			}
			if fi, _ := os.Stat(filepath.Join(out, m.Batch, m.Letters[0].File)); fi.Mode().Perm() != 0o600 {
				t.Errorf("letter file mode %v", fi.Mode().Perm())
			}
			// A second run has nothing to print.
			if m2, _ := export(t, p, w.clock.Now(), out); m2.Count != 0 {
				t.Fatal("a letter printed twice")
			}
			code := codes[m.Letters[0].Letter]

			if status, page := enterLetterCode(b, p, "ABCD-EFGH"); status != http.StatusBadRequest || !strings.Contains(page, "Le code compte 12 lettres et chiffres") {
				t.Fatalf("short code: %d", status)
			}
			wrong := "ZZZZ-ZZZZ-ZZZZ"
			if status, page := enterLetterCode(b, p, wrong); status != http.StatusBadRequest || !strings.Contains(page, "Ce code est incorrect") {
				t.Fatalf("wrong code: %d", status)
			}
			status, page = enterLetterCode(b, p, strings.ToLower(strings.ReplaceAll(code, "-", " ")))
			if status != http.StatusOK || !strings.Contains(page, "Vérification de votre identité terminée") {
				t.Fatalf("right code: %d %s", status, page)
			}
			a, err := p.db.GetAccountByEmail(ctx, "lettre@exemple.test")
			if err != nil || a.LoA != sqin.LoA2 || a.PersonID == "" {
				t.Fatalf("account after the code: %+v %v", a, err)
			}
			if ls, _ := p.db.PendingLetters(ctx, a.ID, w.clock.Now()); len(ls) != 0 {
				t.Fatal("the letter is still usable")
			}

			// Expiry and voiding, on another person.
			b2 := newAccount(t, p, "lente@exemple.test")
			requestLetter(b2, p, w.people[5])
			// Printed 32 days ago: past the printed date (30 days, through
			// the end of that day).
			_, codes = export(t, p, w.clock.Now().Add(-32*24*time.Hour), out)
			var late string
			for _, c := range codes {
				late = c
			}
			if status, page := enterLetterCode(b2, p, late); status != http.StatusBadRequest || !strings.Contains(page, "Ce code est incorrect ou n'est plus valide") {
				t.Fatalf("expired code: %d %s", status, page)
			}
			requestLetter(b2, p, w.people[5])
			_, codes = export(t, p, w.clock.Now(), out)
			for _, c := range codes {
				late = c
			}
			for i := 1; i < 5; i++ {
				if status, page := enterLetterCode(b2, p, wrong); status != http.StatusBadRequest || !strings.Contains(page, "Ce code est incorrect") {
					t.Fatalf("wrong code %d: %d", i, status)
				}
			}
			// The fifth voids the letter; the page says what it says of
			// every wrong code (whether a letter exists is not told).
			if status, page := enterLetterCode(b2, p, wrong); status != http.StatusBadRequest || !strings.Contains(page, "Ce code est incorrect") {
				t.Fatalf("fifth wrong code: %d %s", status, page)
			}
			if status, _ := enterLetterCode(b2, p, late); status != http.StatusBadRequest {
				t.Fatalf("the right code after the letter was voided: %d", status)
			}
			a2, _ := p.db.GetAccountByEmail(ctx, "lente@exemple.test")
			if a2.LoA != sqin.LoA1 {
				t.Fatal("a voided letter raised the level")
			}

			// A person who has an account gets a mail, not a letter.
			b3 := newAccount(t, p, "intrus@exemple.test")
			status, page = requestLetter(b3, p, who)
			if status != http.StatusOK || hiddenRE.ReplaceAllString(page, "") != hiddenRE.ReplaceAllString(knownPage, "") {
				t.Fatalf("request for a person who has an account: %d", status)
			}
			if m, _ := export(t, p, w.clock.Now(), out); m.Count != 0 {
				t.Fatal("a letter for a person who has an account")
			}
			if _, err := p.worker.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, m := range p.sink.Sent() {
				if m.To == "lettre@exemple.test" && m.Kind == "letter_taken" && strings.Contains(m.Body, "/mot-de-passe-oublie") {
					found = true
				}
			}
			if !found {
				t.Fatal("the owner of the person's account was not told")
			}
		})
	}
}

// newAccount is a browser with a verified account on p.
func newAccount(t *testing.T, p *provider, email string) *browser {
	b := newBrowser(t)
	b.account(p, email)
	return b
}

// TestExportRecovery: letters claimed by an export that died before its
// commit are printed by the next run (with new codes); a partial batch
// whose commit happened is renamed.
func TestExportRecovery(t *testing.T) {
	w := newWorld(t, sqltest.SQLiteURL(t))
	p := w.provider(t, nil, proofing.Limits{MinDuration: time.Millisecond}, nil)
	ctx := context.Background()
	b := newAccount(t, p, "panne@exemple.test")
	requestLetter(b, p, w.people[6])
	now := w.clock.Now()
	if ls, err := p.db.ClaimLetters(ctx, "dead-batch", now, now.Add(-time.Hour), 10); err != nil || len(ls) != 1 {
		t.Fatalf("claim: %v %v", ls, err)
	}
	out := t.TempDir()
	// The dead export left a partial directory: removed, nothing printed
	// while its claim is fresh.
	if err := os.Mkdir(filepath.Join(out, "dead-batch.partial"), 0o700); err != nil {
		t.Fatal(err)
	}
	if m, _ := export(t, p, now, out); m.Count != 0 {
		t.Fatal("a letter claimed by another export was printed")
	}
	if _, err := os.Stat(filepath.Join(out, "dead-batch.partial")); !os.IsNotExist(err) {
		t.Fatal("the uncommitted partial batch is still there")
	}
	m, codes := export(t, p, now.Add(2*time.Hour), out)
	if m.Count != 1 || len(codes) != 1 {
		t.Fatalf("the stale claim was not taken over: %+v", m)
	}
	// A committed batch left partial (crash before the rename) is renamed.
	if err := os.Rename(filepath.Join(out, m.Batch), filepath.Join(out, m.Batch+".partial")); err != nil {
		t.Fatal(err)
	}
	res, err := signup.ExportLetters(ctx, p.db, signup.ExportOptions{Dir: out, Key: mailKey, Catalog: p.rd.Catalog()})
	if err != nil || res.Recovered != 1 {
		t.Fatalf("recovery: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(out, m.Batch, "manifest.json")); err != nil {
		t.Fatal(err)
	}
}

// TestProofingPictures: every picture the catalogue names exists, is an
// SVG with a title, and the proofing page shows it with a text
// alternative.
func TestProofingPictures(t *testing.T) {
	for _, s := range proofing.DefaultCatalogue().Secrets {
		if !strings.HasPrefix(s.Image, "/static/") {
			t.Fatalf("%s: picture %q", s.ID, s.Image)
		}
		b, err := fs.ReadFile(assets.FS, strings.TrimPrefix(s.Image, "/"))
		if err != nil {
			t.Fatalf("%s: %v", s.ID, err)
		}
		svg := string(b)
		if !strings.HasPrefix(svg, "<svg ") || !strings.Contains(svg, "<title") || !strings.Contains(svg, `role="img"`) ||
			strings.Contains(svg, "style=") || strings.Contains(svg, "<script") {
			t.Errorf("%s: not an accessible, CSP-clean SVG", s.ID)
		}
	}
	w := newWorld(t, sqltest.SQLiteURL(t))
	p := w.provider(t, nil, proofing.Limits{}, nil)
	b := newAccount(t, p, "images@exemple.test")
	_, page, _ := b.do(http.MethodGet, p.srv.URL+"/verification", nil)
	if !strings.Contains(page, `<img class="proof-picture" src="/static/proofing/health-card.svg" alt="Où trouver ce renseignement : Carte d'assurance maladie"`) {
		t.Fatal("the proofing page does not show the pictures with their alternative text")
	}
}
