package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/sqlstore"
)

// smtpSink is a tiny SMTP server on a real socket: it accepts every mail
// and keeps its raw text.
type smtpSink struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
}

func newSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) { io.WriteString(c, line+"\r\n") }
	say("220 sink.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 sink.test")
		case strings.HasPrefix(cmd, "DATA"):
			say("354 end with .")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, b.String())
			s.mu.Unlock()
			say("250 queued")
		case strings.HasPrefix(cmd, "QUIT"):
			say("221 bye")
			return
		default: // MAIL, RCPT, RSET, NOOP
			say("250 ok")
		}
	}
}

// wait returns the first mail to addr whose text contains want, waiting
// for the sender worker.
func (s *smtpSink) wait(t *testing.T, to, want string) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s.mu.Lock()
		for _, m := range s.msgs {
			if strings.Contains(m, "To: "+to+"\r\n") && strings.Contains(m, want) {
				s.mu.Unlock()
				return m
			}
		}
		s.mu.Unlock()
	}
	t.Fatalf("no mail to %s containing %q", to, want)
	return ""
}

func (s *smtpSink) to(addr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.msgs {
		if strings.Contains(m, "To: "+addr+"\r\n") {
			out = append(out, m)
		}
	}
	return out
}

var mailCodeRE = regexp.MustCompile(`: ([0-9]{6})\r\n`)

// testPerson is a registry person as the test knows it from the delivery.
type testPerson struct{ Family, Given, Birth, NAM, Expiry, SIN string }

// importRegistry imports a synthetic delivery into db and returns adults
// from it.
func importRegistry(t *testing.T, db string, n int) []testPerson {
	t.Helper()
	m, manifest, err := registry.GenerateDelivery(t.TempDir(), registry.DeliveryOptions{Seed: 77, Count: 40, Kind: registry.KindSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, nil, "registry", "import", manifest, "--db", db); code != 0 {
		t.Fatalf("registry import: %s", errOut)
	}
	f, err := os.Open(filepath.Join(filepath.Dir(manifest), m.DataFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := registry.NewReader(f, m.Format)
	var out []testPerson
	sins := []string{"046454286", "000000018", "000000026", "000000034"}
	for len(out) < n {
		var rec registry.Record
		if err := rd.Next(&rec); err != nil {
			t.Fatalf("only %d adults in the delivery: %v", len(out), err)
		}
		if rec.Fields[registry.FBirthDate] > "2005-01-01" {
			continue
		}
		out = append(out, testPerson{Family: rec.Fields[registry.FFamilyName], Given: rec.Fields[registry.FGivenNames],
			Birth: rec.Fields[registry.FBirthDate], NAM: rec.Fields[registry.FNAM], Expiry: rec.Fields[registry.FCardExpiry],
			SIN: sins[len(out)]})
	}
	return out
}

// sinHolder is Revenu Québec's verification API as the protocol of
// proofing.RemoteVerifier describes it, answering from people.
func sinHolder(t *testing.T, people []testPerson) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			SecretType string            `json:"secret_type"`
			Values     map[string]string `json:"values"`
			Person     map[string]string `json:"person"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.SecretType != "sin" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		match := false
		for _, p := range people {
			if p.Family == req.Person["family_name"] && p.Given == req.Person["given_names"] && p.Birth == req.Person["birth_date"] {
				match = req.Values["sin"] == p.SIN
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]bool{"match": match})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// catalogueWith writes the built-in catalogue with the SIN asked of
// holderURL (and edit applied) to a file.
func catalogueWith(t *testing.T, holderURL string, edit func(*proofing.Catalogue)) string {
	t.Helper()
	cat := proofing.DefaultCatalogue()
	s, _ := cat.Secret("sin")
	s.Remote.URL = holderURL
	if edit != nil {
		edit(cat)
	}
	b, err := json.Marshal(cat)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "catalogue.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type testServer struct {
	base   string
	stderr *syncBuffer
}

// startServe runs sqin serve --demo on db with the test's SMTP sink and
// catalogue until the test ends.
func startServe(t *testing.T, db, smtpAddr, catalogue string, extra ...string) *testServer {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	errb := &syncBuffer{}
	args := append([]string{"serve", "--demo", "--demo-users", "1", "--demo-rp-addr", "", "--addr", addr, "--db", db,
		"--data-dir", t.TempDir(), "--smtp-addr", smtpAddr, "--proofing-catalogue", catalogue}, extra...)
	go func() { done <- Main(ctx, args, io.Discard, errb, func(string) string { return "" }) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %s", errb.String())
		}
	}
	return &testServer{base: base, stderr: errb}
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
	lang string // Accept-Language
}

func newBrowser(t *testing.T, base, lang string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, lang: lang, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = b.base + path
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(page), resp.Header
}

func (b *browser) get(path string) (int, string, http.Header) { return b.do(http.MethodGet, path, nil) }

// submit reads the hidden fields of the page at path and posts them with
// fields to action.
func (b *browser) submit(page, action string, fields url.Values) (int, string, http.Header) {
	b.t.Helper()
	form := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for k, v := range fields {
		form[k] = v
	}
	return b.do(http.MethodPost, action, form)
}

const testPassword = "trois chats dorment au soleil"

// register creates an account through the pages and returns the code
// page's body.
func (b *browser) register(req, email string) string {
	b.t.Helper()
	path := "/inscription"
	if req != "" {
		path += "?req=" + req
	}
	_, page, _ := b.get(path)
	status, _, h := b.submit(page, "/inscription", url.Values{"email": {email}, "password": {testPassword},
		"password2": {testPassword}, "terms": {"yes"}})
	if status != http.StatusSeeOther || h.Get("Location") != "/inscription/code" {
		b.t.Fatalf("register: %d %s", status, h.Get("Location"))
	}
	_, page, _ = b.get("/inscription/code")
	return page
}

func (b *browser) enterCode(page, code string) (int, string, http.Header) {
	return b.submit(page, "/inscription/code", url.Values{"code": {code}})
}

// prove posts the identity of p with the health card and, when sin is
// not empty, the SIN.
func (b *browser) prove(p testPerson, sin string) (int, string) {
	b.t.Helper()
	var more url.Values
	if sin != "" {
		more = url.Values{"use-sin": {"yes"}, "sin.sin": {sin}}
	}
	return b.proveWith(p, more)
}

// proveWith posts the identity of p with the health card and the fields
// of more (other secrets).
func (b *browser) proveWith(p testPerson, more url.Values) (int, string) {
	b.t.Helper()
	_, page, _ := b.get("/verification")
	f := url.Values{"family_name": {p.Family}, "given_names": {p.Given}, "birth_date": {p.Birth},
		"use-health-card": {"yes"}, "health-card.nam": {registry.FormatHealthNumber(p.NAM)},
		"health-card.expiry": {strings.ReplaceAll(p.Expiry, "-", " ")}}
	for k, v := range more {
		f[k] = v
	}
	status, out, _ := b.submit(page, "/verification", f)
	return status, out
}

func codeOf(t *testing.T, mail string) string {
	t.Helper()
	m := mailCodeRE.FindStringSubmatch(mail)
	if m == nil {
		t.Fatalf("no code in the mail %q", mail)
	}
	return m[1]
}

// authorize starts a code flow of client and returns the pending request
// and the PKCE verifier.
func (b *browser) authorize(clientID, redirect string) (req, verifier string) {
	b.t.Helper()
	verifier = strings.Repeat("v", 50)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"st"}, "nonce": {"n"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}}
	status, _, h := b.get("/authorize?" + q.Encode())
	loc, _ := url.Parse(h.Get("Location"))
	if status != http.StatusSeeOther && status != http.StatusFound || loc == nil || loc.Path != "/login" {
		b.t.Fatalf("authorize: %d %v", status, h.Get("Location"))
	}
	return loc.Query().Get("req"), verifier
}

// followForCode follows redirects (and the consent page) to the client's
// redirect and returns the code.
func (b *browser) followForCode(next string) string {
	b.t.Helper()
	status, page, h := b.get(next)
	for i := 0; i < 5; i++ {
		if status == http.StatusOK && strings.Contains(page, `name="approve"`) {
			status, page, h = b.submit(page, "/consent", url.Values{"approve": {"yes"}})
			continue
		}
		if status/100 != 3 {
			break
		}
		loc := h.Get("Location")
		if u, _ := url.Parse(loc); u != nil && u.Query().Get("code") != "" {
			return u.Query().Get("code")
		}
		status, page, h = b.get(loc)
	}
	b.t.Fatalf("no code: %d %s %s", status, h.Get("Location"), page)
	return ""
}

func idTokenACR(t *testing.T, base, clientID, secret, redirect, code, verifier string) string {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
	req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	parts := strings.Split(tok.IDToken, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token %q", tok.IDToken)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		ACR string `json:"acr"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.ACR
}

// TestSignupEndToEnd: a citizen comes from an online service, creates an
// account in French, verifies the email with the code received over SMTP,
// proves identity with the health card (checked against the registry) and
// the SIN (asked of a real HTTP holder), reaches level 2, signs in to the
// service and its ID token says urn:sqin:loa:2 — on SQLite and PostgreSQL.
// The same database then serves the English variant, a duplicate email and
// a second account for the same person.
func TestSignupEndToEnd(t *testing.T) {
	for name, newDB := range testDatabases(t) {
		t.Run(name, func(t *testing.T) {
			db := newDB(t)
			people := importRegistry(t, db, 3)
			sink := newSMTPSink(t)
			holder := sinHolder(t, people)
			const clientID, secret, redirect = "service-famille", "secret-du-service-de-test", "http://127.0.0.1:9/cb"
			if code, _, errOut := run(t, nil, "client", "create", "--db", db, "--id", clientID, "--secret", secret,
				"--redirect-uri", redirect); code != 0 {
				t.Fatalf("client create: %s", errOut)
			}
			srv := startServe(t, db, sink.ln.Addr().String(), catalogueWith(t, holder.URL, nil))

			// French, from the service's sign-in page.
			b := newBrowser(t, srv.base, "fr-CA,fr;q=0.9")
			req, verifier := b.authorize(clientID, redirect)
			_, login, _ := b.get("/login?req=" + req)
			if !strings.Contains(login, `href="/inscription?req=`+req+`"`) {
				t.Fatal("the sign-in page has no link to account creation")
			}
			_, regPage, _ := b.get("/inscription?req=" + req)
			for _, want := range []string{`lang="fr"`, "Créer votre compte", `autocomplete="new-password"`, `href="/conditions"`} {
				if !strings.Contains(regPage, want) {
					t.Errorf("registration page lacks %q", want)
				}
			}
			email := "marie." + name + "@exemple.test"
			codePage := b.register(req, email)
			if !strings.Contains(codePage, "Vérifier votre adresse courriel") {
				t.Fatalf("code page: %s", codePage)
			}
			mail := sink.wait(t, email, "Voici votre code")
			code := codeOf(t, mail)
			status, _, h := b.enterCode(codePage, code)
			if status != http.StatusSeeOther || h.Get("Location") != "/verification" {
				t.Fatalf("code: %d %s", status, h.Get("Location"))
			}
			_, proofPage, _ := b.get("/verification")
			for _, want := range []string{"Carte d'assurance maladie", "Numéro d'assurance sociale", "Exemple : ABCD 1234 5678",
				`name="use-sin"`, "je consens"} {
				if !strings.Contains(html.UnescapeString(proofPage), want) {
					t.Errorf("proofing page lacks %q", want)
				}
			}
			// The health card alone is one proof of the two the ladder asks.
			status, page := b.prove(people[0], "")
			if status != http.StatusOK || !strings.Contains(page, "Preuves confirmées : 1 sur 2") {
				t.Fatalf("health card alone: %d %s", status, page)
			}
			status, page = b.prove(people[0], people[0].SIN)
			if status != http.StatusOK || !strings.Contains(page, "Vérification de votre identité terminée") {
				t.Fatalf("proofing: %d %s", status, page)
			}
			// Signed in by the proofing itself: the link resumes the
			// service's request, without the sign-in form.
			next := regexp.MustCompile(`href="(/authorize/resume\?req=[^"]+)"`).FindStringSubmatch(page)
			if next == nil || html.UnescapeString(next[1]) != "/authorize/resume?req="+req {
				t.Fatalf("no next step to the service: %s", page)
			}
			// A reload shows the same way on.
			if _, again, _ := b.get("/verification"); !strings.Contains(again, `href="`+next[1]+`"`) {
				t.Fatalf("the page shown again does not resume the request: %s", again)
			}
			authCode := b.followForCode(html.UnescapeString(next[1]))
			if acr := idTokenACR(t, srv.base, clientID, secret, redirect, authCode, verifier); acr != sqin.LoA2.ACR() {
				t.Fatalf("acr %q, want %s", acr, sqin.LoA2.ACR())
			}
			st, err := sqlstore.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			acct, err := st.GetAccountByEmail(context.Background(), email)
			if err != nil || acct.LoA != sqin.LoA2 || acct.PersonID == "" || !acct.EmailVerified {
				t.Fatalf("account %+v %v", acct, err)
			}
			if strings.Contains(srv.stderr.String(), code) || strings.Contains(srv.stderr.String(), people[0].NAM) ||
				strings.Contains(srv.stderr.String(), people[0].SIN) {
				t.Error("the log holds the code or a secret")
			}

			t.Run("english", func(t *testing.T) {
				b := newBrowser(t, srv.base, "en-CA,en;q=0.9")
				email := "john." + name + "@example.test"
				codePage := b.register("", email)
				if !strings.Contains(codePage, "Verify your email address") || !strings.Contains(codePage, `lang="en"`) {
					t.Fatalf("code page in English: %s", codePage)
				}
				mail := sink.wait(t, email, "Subject: Your verification code")
				if _, _, h := b.enterCode(codePage, codeOf(t, mail)); h.Get("Location") != "/verification" {
					t.Fatalf("code: %s", h.Get("Location"))
				}
				_, page, _ := b.get("/verification")
				if !strings.Contains(page, "Health insurance card") || !strings.Contains(page, "Example: ABCD 1234 5678") {
					t.Fatal("proofing page not in English")
				}
				status, page := b.prove(people[1], "046454287")
				if status != http.StatusOK || !strings.Contains(page, "Proofs confirmed: 1 of 2 required") ||
					!strings.Contains(page, "does not match") {
					t.Fatalf("a wrong SIN: %d %s", status, page)
				}
				status, page = b.prove(people[1], people[1].SIN)
				if !strings.Contains(page, "Identity verification complete") || !strings.Contains(page, `href="/"`) {
					t.Fatalf("proofing in English: %d %s", status, page)
				}
			})

			t.Run("duplicate email is not revealed", func(t *testing.T) {
				fresh := newBrowser(t, srv.base, "fr")
				newPage := fresh.register("", "nouvelle."+name+"@exemple.test")
				dup := newBrowser(t, srv.base, "fr")
				dupPage := dup.register("", email)
				norm := func(s, addr string) string {
					s = strings.ReplaceAll(s, addr, "ADDR")
					return hiddenRE.ReplaceAllString(s, "")
				}
				if norm(newPage, "nouvelle."+name+"@exemple.test") != norm(dupPage, email) {
					t.Fatal("the code page differs for an address that has an account")
				}
				sink.wait(t, email, "Quelqu'un a tenté de créer un compte")
				for _, m := range sink.to(email) {
					if strings.Contains(m, "Voici votre code") && m != mail {
						t.Fatal("a code was sent for an address that has an account")
					}
				}
				if status, page, _ := dup.enterCode(dupPage, code); status != http.StatusBadRequest || !strings.Contains(page, "incorrect") {
					t.Fatalf("a code on a duplicate: %d", status)
				}
			})

			t.Run("same person, second account", func(t *testing.T) {
				// A first account for another person, for comparison.
				ok := newBrowser(t, srv.base, "fr")
				email3 := "troisieme." + name + "@exemple.test"
				codePage := ok.register("", email3)
				ok.enterCode(codePage, codeOf(t, sink.wait(t, email3, "Voici votre code")))
				_, success := ok.prove(people[2], people[2].SIN)

				b := newBrowser(t, srv.base, "fr")
				email2 := "autre." + name + "@exemple.test"
				codePage = b.register("", email2)
				b.enterCode(codePage, codeOf(t, sink.wait(t, email2, "Voici votre code")))
				status, page := b.prove(people[0], people[0].SIN)
				// The person typing sees the page of a success: it says what
				// happens when the identity had an account.
				if status != http.StatusOK || hiddenRE.ReplaceAllString(page, "") != hiddenRE.ReplaceAllString(success, "") ||
					!strings.Contains(html.UnescapeString(page), "Si cette identité était déjà associée à un autre compte") {
					t.Fatalf("second account: %d %s", status, page)
				}
				taken := sink.wait(t, email, "Quelqu'un a vérifié votre identité pour un autre compte")
				if !strings.Contains(taken, srv.base+"/mot-de-passe-oublie") {
					t.Fatalf("the mail offers no recovery: %s", taken)
				}
				if n := len(sink.to(email2)); n != 1 {
					t.Fatalf("the second account got %d mails (only its code expected)", n)
				}
				a2, err := st.GetAccountByEmail(context.Background(), email2)
				if err != nil || a2.LoA != sqin.LoA1 || a2.PersonID != "" {
					t.Fatalf("second account changed: %+v %v", a2, err)
				}
			})

			var actions []string
			for _, r := range logOf(t, db) {
				actions = append(actions, r.Action)
			}
			all := strings.Join(actions, " ")
			for _, want := range []string{"account.created", "proofing.attempt", "account.proofed"} {
				if !strings.Contains(all, want) {
					t.Errorf("audit log lacks %s: %s", want, all)
				}
			}
		})
	}
}

// TestSignupDemoOffline: in serve --demo, with nothing configured, a
// newcomer creates an account with an identity the demo prints, reads the
// code in the demo mail sink's file and reaches level 2 with the health
// card and the SIN the built-in demo holder accepts.
func TestSignupDemoOffline(t *testing.T) {
	addr, dataDir := freeAddr(t), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	out := &syncBuffer{}
	go func() {
		done <- Main(ctx, []string{"serve", "--demo", "--demo-users", "1", "--demo-rp-addr", "", "--addr", addr,
			"--data-dir", dataDir, "--log-level", "error"}, out, io.Discard, func(string) string { return "" })
	}()
	defer func() {
		cancel()
		<-done
	}()
	base := "http://" + addr
	line := regexp.MustCompile(`\n    (.+), (.+)  born ([0-9-]+)  health card ([A-Z]{4} [0-9]{4} [0-9]{4}) exp\. ([0-9-]+)  SIN ([0-9 ]+)\n`)
	var m []string
	for deadline := time.Now().Add(30 * time.Second); m == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no demo identity printed: %s", out.String())
		}
		m = line.FindStringSubmatch(out.String())
	}
	if !strings.Contains(out.String(), "DEMO holder") || !strings.Contains(out.String(), base+"/inscription") {
		t.Errorf("the demo does not say how account creation works: %s", out.String())
	}
	who := testPerson{Family: m[1], Given: m[2], Birth: m[3], NAM: strings.ReplaceAll(m[4], " ", ""), Expiry: m[5]}
	b := newBrowser(t, base, "fr")
	codePage := b.register("", "demo.signup@exemple.test")
	code := sinkCode(t, dataDir, "demo.signup@exemple.test")
	if _, _, h := b.enterCode(codePage, code); h.Get("Location") != "/verification" {
		t.Fatalf("code: %s", h.Get("Location"))
	}
	if status, page := b.prove(who, strings.ReplaceAll(m[6], " ", "")); status != http.StatusOK || !strings.Contains(page, "Vérification de votre identité terminée") {
		t.Fatalf("demo proofing: %d %s", status, page)
	}

	// Another printed person, with the health card and the driver's
	// licence the demo's synthetic holder delivered (checked locally).
	withLicence := regexp.MustCompile(`
    (.+), (.+)  born ([0-9-]+)  health card ([A-Z]{4} [0-9]{4} [0-9]{4}) exp\. ([0-9-]+)  SIN [0-9 ]+
` +
		`      or health card \+ driver's licence ([A-Z][0-9]{4} [0-9]{6} [0-9]{2}) `)
	all := withLicence.FindAllStringSubmatch(out.String(), -1)
	if len(all) < 2 {
		t.Fatalf("no second demo identity with a driver's licence: %s", out.String())
	}
	m = all[1]
	who = testPerson{Family: m[1], Given: m[2], Birth: m[3], NAM: strings.ReplaceAll(m[4], " ", ""), Expiry: m[5]}
	b = newBrowser(t, base, "fr")
	codePage = b.register("", "demo.licence@exemple.test")
	code = sinkCode(t, dataDir, "demo.licence@exemple.test")
	if _, _, h := b.enterCode(codePage, code); h.Get("Location") != "/verification" {
		t.Fatalf("code: %s", h.Get("Location"))
	}
	licence := url.Values{"use-driving-licence": {"yes"}, "driving-licence.number": {m[6]}}
	if status, page := b.proveWith(who, licence); status != http.StatusOK || !strings.Contains(page, "Vérification de votre identité terminée") {
		t.Fatalf("demo proofing with the driver's licence: %d %s", status, page)
	}
}

// sinkCode waits for the email code mailed to `to` in the demo mail sink
// of dataDir.
func sinkCode(t *testing.T, dataDir, to string) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		files, _ := filepath.Glob(filepath.Join(dataDir, "mail", "*.eml"))
		for _, f := range files {
			if raw, err := os.ReadFile(f); err == nil && strings.Contains(string(raw), "To: "+to) {
				return codeOf(t, string(raw))
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no mail file in the demo sink")
		}
	}
}

var letterCodeRE = regexp.MustCompile(`Votre code : ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4})`)

// TestLettersExportCommand: a citizen asks for a code by mail; `sqin
// letters export` (another process, the same master key) writes the
// batch; the code read from the PDF raises the account to level 2 and the
// audit log records the request, the printing and the entry, never the
// code. Then a password reset ends the account's sessions.
func TestLettersExportCommand(t *testing.T) {
	dataDir := t.TempDir()
	db := "sqlite://" + filepath.Join(t.TempDir(), "sqin.db")
	people := importRegistry(t, db, 1)
	sink := newSMTPSink(t)
	srv := startServe(t, db, sink.ln.Addr().String(), catalogueWith(t, sinHolder(t, people).URL, nil), "--data-dir", dataDir)
	b := newBrowser(t, srv.base, "fr")
	const email = "courrier@exemple.test"
	codePage := b.register("", email)
	b.enterCode(codePage, codeOf(t, sink.wait(t, email, "Voici votre code")))
	_, page, _ := b.get("/verification/courrier/demande")
	who := people[0]
	if status, page, _ := b.submit(page, "/verification/courrier/demande", url.Values{"family_name": {who.Family},
		"given_names": {who.Given}, "birth_date": {who.Birth}, "consent": {"yes"}}); status != http.StatusOK ||
		!strings.Contains(page, "Demande de lettre reçue") {
		t.Fatalf("letter request: %d %s", status, page)
	}

	out := filepath.Join(t.TempDir(), "lettres")
	code, stdout, stderr := run(t, nil, "letters", "export", "--db", db, "--demo", "--data-dir", dataDir, "--out", out,
		"--issuer", srv.base)
	if code != 0 {
		t.Fatalf("letters export: %d %s", code, stderr)
	}
	var res struct {
		Batch, Dir string
		Printed    int
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Printed != 1 {
		t.Fatalf("export output %q: %v", stdout, err)
	}
	files, _ := filepath.Glob(filepath.Join(res.Dir, "ltr-*.pdf"))
	if len(files) != 1 {
		t.Fatalf("PDFs: %v", files)
	}
	pdf, _ := os.ReadFile(files[0])
	m := letterCodeRE.FindSubmatch(pdf)
	if m == nil {
		t.Fatal("no code in the PDF's content stream")
	}
	if _, err := os.Stat(filepath.Join(res.Dir, "manifest.json")); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, nil, "letters", "export", "--db", db, "--out", out); code == 0 || !strings.Contains(stderr, "--issuer") {
		t.Fatalf("export without an issuer or key: %d %s", code, stderr)
	}

	// Days later the letter arrives: the citizen signs in on another
	// browser; the home page of an account below level 2 leads to the
	// code's entry.
	later, phone := newBrowser(t, srv.base, "fr"), newBrowser(t, srv.base, "fr")
	for _, br := range []*browser{later, phone} {
		_, page, _ = br.get("/login")
		if status, _, h := br.submit(page, "/login", url.Values{"username": {email}, "password": {testPassword}}); status != http.StatusSeeOther || h.Get("Location") != "/" {
			t.Fatalf("sign-in: %d %s", status, h.Get("Location"))
		}
	}
	_, home, _ := later.get("/")
	for _, want := range []string{"Confirmez votre identité", `href="/verification"`, `href="/verification/courrier"`} {
		if !strings.Contains(home, want) {
			t.Fatalf("home page below level 2 lacks %q:\n%s", want, home)
		}
	}
	_, page, _ = later.get("/verification/courrier")
	status, page, _ := later.submit(page, "/verification/courrier", url.Values{"code": {string(m[1])}})
	if status != http.StatusOK || !strings.Contains(page, "Vérification de votre identité terminée") {
		t.Fatalf("code entry: %d %s", status, page)
	}
	st, err := sqlstore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	acct, err := st.GetAccountByEmail(context.Background(), email)
	if err != nil || acct.LoA != sqin.LoA2 {
		t.Fatalf("account %+v %v", acct, err)
	}
	// Signed in at level 2 by the code entry: nothing left to prove, not
	// even on the phone whose session began at level 1.
	for _, br := range []*browser{later, phone} {
		if _, home, _ := br.get("/"); !strings.Contains(home, `name="logout"`) || strings.Contains(home, `href="/verification/courrier"`) {
			t.Fatalf("home page after the code:\n%s", home)
		}
	}
	var actions []string
	for _, r := range logOf(t, db) {
		if strings.Contains(r.Detail, string(m[1])) || strings.Contains(r.Detail, strings.ReplaceAll(string(m[1]), "-", "")) {
			t.Fatal("the audit log holds the code")
		}
		actions = append(actions, r.Action+":"+r.Outcome)
	}
	all := strings.Join(actions, " ")
	for _, want := range []string{"proofing.letter.requested:success", "proofing.letter.printed:success", "proofing.letter.entered:success",
		"account.proofed:success", "signin.success:success"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit log lacks %s: %s", want, all)
		}
	}
	if strings.Contains(srv.stderr.String(), string(m[1])) {
		t.Error("the server log holds the code")
	}

	// Someone else's failed sign-ins lock the address…
	signIn := func(pw string) int {
		t.Helper()
		c := newBrowser(t, srv.base, "fr")
		_, page, _ := c.get("/login")
		status, _, _ := c.submit(page, "/login", url.Values{"username": {email}, "password": {pw}})
		return status
	}
	for range 5 {
		signIn("pas le bon mot de passe")
	}
	if status := signIn("pas le bon mot de passe"); status != http.StatusTooManyRequests {
		t.Fatalf("sixth sign-in: %d", status)
	}

	// A password reset from another browser signs this one out.
	other := newBrowser(t, srv.base, "fr")
	_, page, _ = other.get("/mot-de-passe-oublie")
	other.submit(page, "/mot-de-passe-oublie", url.Values{"email": {email}})
	link := regexp.MustCompile(`(/mot-de-passe-oublie/nouveau\?jeton=[A-Za-z0-9_-]+)`).FindStringSubmatch(sink.wait(t, email, "/mot-de-passe-oublie/nouveau"))
	other.get(link[1])
	_, page, _ = other.get("/mot-de-passe-oublie/nouveau")
	if status, page, _ := other.submit(page, "/mot-de-passe-oublie/nouveau", url.Values{"password": {"quatre hiboux sous la lune"},
		"password2": {"quatre hiboux sous la lune"}}); status != http.StatusOK || !strings.Contains(page, "Votre mot de passe a été changé") {
		t.Fatalf("reset: %d %s", status, page)
	}
	if _, home, _ := later.get("/"); strings.Contains(home, `name="logout"`) {
		t.Fatal("still signed in after a password reset")
	}
	// …and the reset lifts the lock: the new password works at once.
	if status := signIn("quatre hiboux sous la lune"); status != http.StatusSeeOther && status != http.StatusFound {
		t.Fatalf("sign-in with the new password after the reset: %d", status)
	}
	sink.wait(t, email, "Le mot de passe de votre compte vient d'être changé")
}
