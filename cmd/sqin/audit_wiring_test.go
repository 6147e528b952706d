package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/sqlstore"
)

// logOf reads the whole audit log of the database at url.
func logOf(t *testing.T, dbURL string) []*audit.Record {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.AuditSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := db.Events(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestAdminCommandsAudited: every administrative change from the command
// line commits its event, naming the operator; refused and dry-run
// commands record nothing, and no secret reaches the log.
func TestAdminCommandsAudited(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "a.db")
	env := func(k string) string {
		if k == "USER" {
			return "alice"
		}
		return ""
	}
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := run(t, env, args...)
		if code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut)
		}
		return out
	}
	refused := func(args ...string) {
		t.Helper()
		if code, _, _ := run(t, env, args...); code == 0 {
			t.Fatalf("%v succeeded", args)
		}
	}
	const secret = "a-client-secret-for-audit"
	must("client", "create", "--db", db, "--id", "rp-saaq", "--secret", secret, "--redirect-uri", "https://rp.example/cb", "--sector", "saaq")
	refused("client", "create", "--db", db, "--id", "rp-saaq", "--secret", secret, "--redirect-uri", "https://rp.example/cb")
	must("client", "delete", "--db", db, "--id", "rp-saaq")
	refused("client", "delete", "--db", db, "--id", "rp-saaq")

	var tok tokenJSON
	if err := json.Unmarshal([]byte(must("registration", "token", "create", "--db", db, "--sector", "saaq")), &tok); err != nil {
		t.Fatal(err)
	}
	must("registration", "token", "revoke", "--db", db, "--id", tok.ID)
	refused("registration", "token", "revoke", "--db", db, "--id", "iat-nope")

	st, err := openDB(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(context.Background(), &sqin.Account{ID: "acct-a", Email: "a@example.test", LoA: sqin.LoA1}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	csv := filepath.Join(dir, "subs.csv")
	if err := os.WriteFile(csv, []byte("account_email,sub\na@example.test,legacy-a-4242\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must("client", "import-subjects", "--db", db, "--sector", "saaq", "--file", csv, "--dry-run")
	must("client", "import-subjects", "--db", db, "--sector", "saaq", "--file", csv)

	rs := logOf(t, db)
	want := []struct{ action, clientID, body, detail string }{
		{audit.ClientCreated, "rp-saaq", "saaq", "sqin client create"},
		{audit.ClientDeleted, "rp-saaq", "saaq", "sqin client delete"},
		{audit.RegistrationTokenCreated, "", "saaq", "initial access token " + tok.ID},
		{audit.RegistrationTokenRevoked, "", "saaq", "initial access token " + tok.ID},
		{audit.SubjectsImported, "", "saaq", "sqin client import-subjects: 1 lines"},
	}
	if len(rs) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(rs), len(want), rs)
	}
	for i, w := range want {
		r := rs[i]
		if r.Action != w.action || r.Actor != (audit.Actor{Kind: audit.ActorAdmin, ID: "cli:alice"}) || r.ClientID != w.clientID ||
			r.PublicBody != w.body || r.Detail != w.detail || r.Outcome != audit.Success {
			t.Errorf("event %d: %+v, want %+v", i, r.Event, w)
		}
	}
	b, _ := json.Marshal(rs)
	for _, v := range []string{secret, tok.Token, "a@example.test", "legacy-a-4242", "acct-a"} {
		if strings.Contains(string(b), v) {
			t.Errorf("the log holds %q", v)
		}
	}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// TestServeAuditWiring: sqin serve signs tree heads with the key sqin audit
// derives, names accounts with the pseudonym key derived from the master
// key, and serves the citizen's events.
func TestServeAuditWiring(t *testing.T) {
	addr := freeAddr(t)
	dataDir := t.TempDir()
	dbURL := "sqlite://" + filepath.Join(dataDir, "sqin.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--demo", "--demo-users", "1", "--demo-rp-addr", "", "--addr", addr,
			"--data-dir", dataDir, "--log-level", "error", "--audit-head-interval", "50ms"}, io.Discard, io.Discard,
			func(string) string { return "" })
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A wrong password for a demo account, then the right one.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func(password string) int {
		resp, err := c.Get(base + "/login")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		form := url.Values{}
		for _, m := range hiddenRE.FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		form.Set("username", "citoyen1@demo.sqin.test")
		form.Set("password", password)
		resp, err = c.PostForm(base+"/login", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := login("not-the-password"); s != http.StatusOK {
		t.Fatalf("wrong password: %d", s)
	}
	if s := login("demo-password-2026"); s != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", s)
	}

	// The head job covers both events soon; its key is sqin audit key's.
	var th struct {
		TreeSize  uint64 `json:"tree_size"`
		Timestamp int64  `json:"timestamp"`
		RootHash  string `json:"root_hash"`
		Signature string `json:"signature"`
	}
	for deadline := time.Now().Add(10 * time.Second); th.TreeSize < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("no signed head covering the sign-ins: %+v", th)
		}
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get(base + "/audit/v1/tree-head")
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&th)
		resp.Body.Close()
	}
	code, pemOut, errOut := run(t, nil, "audit", "key", "--demo", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("audit key: %s", errOut)
	}
	blk, _ := pem.Decode([]byte(pemOut[strings.Index(pemOut, "-----"):]))
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := base64.StdEncoding.DecodeString(th.RootHash)
	msg := binary.BigEndian.AppendUint64([]byte("sqin-audit-tree-head/v1\n"), th.TreeSize)
	msg = binary.BigEndian.AppendUint64(msg, uint64(th.Timestamp))
	sig, _ := base64.StdEncoding.DecodeString(th.Signature)
	if !ed25519.Verify(pub.(ed25519.PublicKey), append(msg, root...), sig) {
		t.Fatal("the head served does not verify with sqin audit key's public key")
	}

	// The citizen reads both events with their session.
	resp, err := c.Get(base + "/api/v1/me/events")
	if err != nil {
		t.Fatal(err)
	}
	var me struct {
		Events []struct {
			Event audit.Record `json:"event"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || resp.StatusCode != 200 {
		t.Fatalf("me/events: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	var actions []string
	for _, e := range me.Events {
		actions = append(actions, e.Event.Action)
	}
	if strings.Join(actions, " ") != "signin.failure signin.success" {
		t.Fatalf("the citizen's events: %v", actions)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit status %d", code)
	}
	// The subject is the pseudonym under derive(master, "audit-pseudonym").
	raw, err := os.ReadFile(filepath.Join(dataDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	master, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	ps, _ := audit.NewPseudonymizer(derive(master, "audit-pseudonym"))
	st, err := sqlstore.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := st.GetAccountByEmail(context.Background(), "citoyen1@demo.sqin.test")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range me.Events {
		if e.Event.Subject != ps.Account(acct.ID) {
			t.Errorf("%s: subject %q, want the account's pseudonym under the audit-pseudonym key", e.Event.Action, e.Event.Subject)
		}
	}
	if code, out, errOut := run(t, nil, "audit", "verify", "--demo", "--data-dir", dataDir); code != 0 {
		t.Fatalf("audit verify after serve: %d %s %s", code, out, errOut)
	}
}

// TestRetentionJob: --audit-retention's job redacts the personal fields of
// older events only, records that it did, and the log still verifies.
func TestRetentionJob(t *testing.T) {
	ctx := context.Background()
	db, err := openDB(ctx, "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := time.Now().Add(-48 * time.Hour)
	var evs []*audit.Event
	for i, at := range []time.Time{old, old, time.Now()} {
		evs = append(evs, &audit.Event{Time: at, RequestID: fmt.Sprint("rid-", i), Actor: audit.Actor{Kind: audit.ActorCitizen, ID: "ps1.someone"},
			Action: audit.SigninSuccess, Subject: "ps1.someone", Outcome: audit.Success})
	}
	if err := db.AppendEvents(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: &config.Config{AuditRetention: 24 * time.Hour}, log: slog.New(slog.DiscardHandler), db: db}
	a.redactOld(ctx, time.Now().Add(-a.cfg.AuditRetention))
	a.redactOld(ctx, time.Now().Add(-a.cfg.AuditRetention)) // nothing left: no second event
	rs, err := db.Events(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 || !rs[0].Redacted || !rs[1].Redacted || rs[2].Redacted || rs[2].Subject != "ps1.someone" ||
		rs[3].Action != "audit.redacted" || rs[3].Actor != (audit.Actor{Kind: audit.ActorSystem, ID: "sqin serve"}) {
		t.Fatalf("log after retention: %+v", rs)
	}
	if rep, err := audit.Verify(ctx, db, audit.VerifyOptions{}); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// TestDemoClientAudited: the demo registers its relying party with an
// event, records nothing when it is already there, and records both the
// deletion and the creation when the relying party moves.
func TestDemoClientAudited(t *testing.T) {
	dataDir := t.TempDir()
	start := func(rpAddr string) {
		t.Helper()
		addr := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var errOut syncBuffer
		go func() {
			done <- Main(ctx, []string{"serve", "--demo", "--demo-users", "1", "--demo-rp-addr", rpAddr, "--addr", addr,
				"--data-dir", dataDir, "--log-level", "error", "--audit-head-interval", "0"}, io.Discard, &errOut,
				func(string) string { return "" })
		}()
		// The demo relying party listens once it is registered.
		for deadline := time.Now().Add(20 * time.Second); ; {
			resp, err := http.Get("http://" + rpAddr + "/")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("demo relying party not listening: %s", errOut.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("exit status %d: %s", code, errOut.String())
		}
	}
	rp1, rp2 := freeAddr(t), freeAddr(t)
	start(rp1)
	start(rp1)
	start(rp2)
	var got []string
	for _, r := range logOf(t, "sqlite://"+filepath.Join(dataDir, "sqin.db")) {
		if strings.HasPrefix(r.Action, "client.") { // the demo also imports sign-up people (registry.imported)
			got = append(got, r.Action+" "+r.ClientID+" "+r.Actor.ID)
		}
	}
	want := []string{"client.created " + demoClientID + " sqin serve --demo", "client.deleted " + demoClientID + " sqin serve --demo",
		"client.created " + demoClientID + " sqin serve --demo"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// syncBuffer is a bytes.Buffer safe for a server goroutine and the test.
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
