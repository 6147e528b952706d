package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/clientreg"
	"github.com/sqin/sqin/internal/sqlstore"
)

// writeJWKS writes a JWKS with one P-256 key, public or with its private
// part, and returns the file.
func writeJWKS(t *testing.T, dir string, private bool) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var key any = &k.PublicKey
	if private {
		key = k
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "jwks.json")
	if private {
		f = filepath.Join(dir, "private.json")
	}
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestClientCreateSecuritySettings(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "c.db")
	pub, priv := writeJWKS(t, dir, false), writeJWKS(t, dir, true)
	redirect := []string{"--redirect-uri", "https://permis.example/cb"}
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" = created
		check   func(t *testing.T, m *clientreg.Metadata)
	}{
		{"fapi2 without keys", []string{"--profile", "fapi2"}, "--jwks-file: token_endpoint_auth_method private_key_jwt needs", nil},
		{"fapi2 with secret auth", []string{"--profile", "fapi2", "--auth", "client_secret_basic"}, "--auth: profile fapi2 requires", nil},
		{"fapi2 without PAR", []string{"--profile", "fapi2", "--jwks-file", pub, "--require-par=false"}, "--require-par: profile fapi2", nil},
		{"fapi2 without DPoP", []string{"--profile", "fapi2", "--jwks-file", pub, "--require-dpop=false"}, "--require-dpop: profile fapi2", nil},
		{"fapi2 RS256", []string{"--profile", "fapi2", "--jwks-file", pub, "--signing-alg", "RS256"}, "--signing-alg: profile fapi2", nil},
		{"fapi2", []string{"--profile", "fapi2", "--jwks-file", pub}, "", func(t *testing.T, m *clientreg.Metadata) {
			if m.TokenEndpointAuthMethod != sqin.AuthPrivateKey || !*m.RequirePAR || !*m.DPoPBound || m.Profile != "fapi2" ||
				m.ClientSecret != "" || len(m.JWKS) == 0 {
				t.Fatalf("fapi2 client %+v", m)
			}
		}},
		{"secret with private_key_jwt", []string{"--auth", "private_key_jwt", "--jwks-file", pub, "--secret", "0123456789abcdef"}, "--secret: client_secret makes no sense", nil},
		{"private key in jwks", []string{"--auth", "private_key_jwt", "--jwks-file", priv}, `--jwks-file: jwks.keys[0] has the private member "d"`, nil},
		{"jwks file missing", []string{"--auth", "private_key_jwt", "--jwks-file", filepath.Join(dir, "nope.json")}, "--jwks-file", nil},
		{"jwks-uri http", []string{"--auth", "private_key_jwt", "--jwks-uri", "http://permis.example/jwks"}, "--jwks-uri", nil},
		{"jwks-uri and file", []string{"--auth", "private_key_jwt", "--jwks-uri", "https://permis.example/jwks", "--jwks-file", pub}, "mutually exclusive", nil},
		{"jwks-uri", []string{"--auth", "private_key_jwt", "--jwks-uri", "https://permis.example/jwks", "--require-par", "--require-dpop"}, "", func(t *testing.T, m *clientreg.Metadata) {
			if m.JWKSURI != "https://permis.example/jwks" || !*m.RequirePAR || !*m.DPoPBound {
				t.Fatalf("client %+v", m)
			}
		}},
		{"subject public", []string{"--subject-type", "public"}, "", func(t *testing.T, m *clientreg.Metadata) {
			if m.SubjectType != "public" {
				t.Fatalf("subject_type %q", m.SubjectType)
			}
		}},
		{"subject unknown", []string{"--subject-type", "global"}, "--subject-type", nil},
		{"backchannel http", []string{"--backchannel-logout-uri", "http://permis.example/bc"}, "--backchannel-logout-uri: backchannel_logout_uri", nil},
		{"frontchannel elsewhere", []string{"--frontchannel-logout-uri", "https://other.example/fc"}, "--frontchannel-logout-uri", nil},
		{"logout URIs", []string{"--backchannel-logout-uri", "https://permis.example/bc", "--frontchannel-logout-uri", "https://permis.example/fc"}, "", func(t *testing.T, m *clientreg.Metadata) {
			if m.BackchannelLogoutURI != "https://permis.example/bc" || m.FrontchannelLogoutURI != "https://permis.example/fc" {
				t.Fatalf("client %+v", m)
			}
		}},
		{"profile unknown", []string{"--profile", "fapi1"}, "--profile", nil},
		{"empty grant types", []string{"--grant-types", ""}, "--grant-types: grant_types must not be empty", nil},
		{"unknown claim", []string{"--claims", "nas"}, "--claims", nil},
		{"sector", []string{"--sector", "saaq"}, "", func(t *testing.T, m *clientreg.Metadata) {
			if m.SectorIdentifier != "saaq" || m.ClientSecret == "" || *m.ClientSecretExpiresAt != 0 {
				t.Fatalf("client %+v", m)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"client", "create", "--db", db, "--id", "rp-" + string(rune('a'+i))}, redirect...)
			code, out, errOut := run(t, nil, append(args, tt.args...)...)
			if tt.wantErr != "" {
				if code != 1 || !strings.Contains(errOut, tt.wantErr) {
					t.Fatalf("exit %d, stderr %q, want %q", code, errOut, tt.wantErr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var m clientreg.Metadata
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatal(err)
			}
			tt.check(t, &m)
		})
	}
	// What was stored reads back the same.
	code, out, _ := run(t, nil, "client", "show", "--db", db, "--id", "rp-f")
	if code != 0 || !strings.Contains(out, `"profile": "fapi2"`) || !strings.Contains(out, `"dpop_bound_access_tokens": true`) {
		t.Fatalf("show: %d %s", code, out)
	}
	if code, _, errOut := run(t, nil, "client", "show", "--db", db, "--id", "nobody"); code != 1 || !strings.Contains(errOut, "no client") {
		t.Fatalf("show missing: %d %s", code, errOut)
	}
}

func TestRegistrationTokenCommands(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "t.db")
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--expires", "0s"}, "--expires"},
		{[]string{"--expires", "9000h"}, "--expires"},
		{[]string{"--sector", "saaq permis"}, "--sector"},
		{[]string{"--max-uses", "-1"}, "--max-uses"},
	} {
		if code, _, errOut := run(t, nil, append([]string{"registration", "token", "create", "--db", db}, tt.args...)...); code != 1 || !strings.Contains(errOut, tt.wantErr) {
			t.Fatalf("%v: exit %d, %q; want %q", tt.args, code, errOut, tt.wantErr)
		}
	}
	code, out, errOut := run(t, nil, "registration", "token", "create", "--db", db, "--sector", "saaq", "--max-uses", "3", "--note", "intégrateur SAAQ")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	var created tokenJSON
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	exp, _ := time.Parse(time.RFC3339, created.ExpiresAt)
	if !strings.HasPrefix(created.Token, "sqin_iat_") || created.Status != "active" || created.Sector != "saaq" ||
		created.MaxUses != 3 || time.Until(exp) < 23*time.Hour || time.Until(exp) > 25*time.Hour {
		t.Fatalf("created %+v", created)
	}
	// Only the hash is stored.
	store, err := sqlstore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := store.ListInitialAccessTokens(context.Background())
	store.Close()
	if err != nil || len(ts) != 1 || ts[0].Hash == created.Token || strings.Contains(ts[0].Hash, created.Token) {
		t.Fatalf("stored %+v, %v", ts, err)
	}

	code, out, _ = run(t, nil, "registration", "token", "list", "--db", db)
	if code != 0 || strings.Contains(out, created.Token) || !strings.Contains(out, created.ID) || !strings.Contains(out, `"active"`) {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, out, _ := run(t, nil, "registration", "token", "revoke", "--db", db, "--id", created.ID); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %s", code, out)
	}
	if code, out, _ := run(t, nil, "registration", "token", "list", "--db", db); code != 0 || !strings.Contains(out, `"status": "revoked"`) {
		t.Fatalf("list after revoke: %d %s", code, out)
	}
	if code, _, errOut := run(t, nil, "registration", "token", "revoke", "--db", db, "--id", "iat-nope"); code != 1 || !strings.Contains(errOut, "no initial access token") {
		t.Fatalf("revoke missing: %d %s", code, errOut)
	}
	if code, _, _ := run(t, nil, "registration", "token", "frob", "--db", db); code != 1 {
		t.Fatal("unknown subcommand accepted")
	}
}

func TestImportSubjects(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "s.db")
	st, err := openDB(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	for i, email := range []string{"a@example.test", "b@example.test", "c@example.test"} {
		if err := st.CreateAccount(context.Background(), &sqin.Account{ID: "acct-" + string(rune('a'+i)), Email: email,
			LoA: sqin.LoA1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetLegacySubject(context.Background(), "saaq", "acct-c", "legacy-c"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	csvFile := func(body string) string {
		f := filepath.Join(dir, "subs.csv")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	imp := func(args ...string) (int, string, string) {
		return run(t, nil, append([]string{"client", "import-subjects", "--db", db, "--sector", "saaq"}, args...)...)
	}
	legacy := func(account string) string {
		st, err := sqlstore.Open(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		sub, _ := st.GetLegacySubject(context.Background(), "saaq", account)
		return sub
	}

	// One bad line and nothing is imported; every line is reported.
	bad := csvFile("\ufeffaccount_email,sub\nA@Example.test ,legacy-a\nnobody@example.test,legacy-x\nb@example.test,legacy-c\nc@example.test,other\nb@example.test,has space\nb@example.test\n")
	code, out, errOut := imp("--file", bad)
	if code != 1 || !strings.Contains(errOut, "nothing imported") {
		t.Fatalf("bad file: %d %s %s", code, out, errOut)
	}
	for _, want := range []string{"line 2: imported", "line 3: unknown account", "line 4: conflict: this sub already belongs",
		"line 5: conflict: the account already has another sub", "line 6: invalid: sub must be printable", "line 7: invalid: want 2 fields",
		"6 lines: 1 imported, 0 unchanged, 1 unknown accounts, 2 conflicts, 2 invalid"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "example.test") {
		t.Errorf("the report names people:\n%s", out)
	}
	if sub := legacy("acct-a"); sub != "" {
		t.Fatalf("a line of a refused file was imported: %q", sub)
	}

	good := csvFile("account_email,sub\na@example.test,legacy-a\nb@example.test,legacy-b\nc@example.test,legacy-c\n")
	if code, out, errOut := imp("--file", good, "--dry-run"); code != 0 || !strings.Contains(out, "dry run") || legacy("acct-a") != "" {
		t.Fatalf("dry run: %d %s %s", code, out, errOut)
	}
	code, out, errOut = imp("--file", good)
	if code != 0 || !strings.Contains(out, "3 lines: 2 imported, 1 unchanged") || !strings.Contains(out, `no client of sector "saaq"`) {
		t.Fatalf("import: %d %s %s", code, out, errOut)
	}
	if legacy("acct-a") != "legacy-a" || legacy("acct-b") != "legacy-b" {
		t.Fatal("subs not imported")
	}
	// Running it again changes nothing.
	if code, out, _ := imp("--file", good); code != 0 || !strings.Contains(out, "0 imported, 3 unchanged") {
		t.Fatalf("again: %d %s", code, out)
	}

	for _, tt := range []struct{ body, want string }{
		{"email,sub\na@example.test,x\n", "header account_email,sub"},
		{"", "no header"},
		{"account_email,sub\n", "no lines"},
		{"account_email,sub\n\"a@example.test,x\n", "nothing imported"},
	} {
		if code, _, errOut := imp("--file", csvFile(tt.body)); code != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%q: %d %s, want %q", tt.body, code, errOut, tt.want)
		}
	}
	if code, _, errOut := run(t, nil, "client", "import-subjects", "--db", db, "--file", good); code != 1 || !strings.Contains(errOut, "--sector") {
		t.Fatalf("no sector: %d %s", code, errOut)
	}
}

// An integrator registers a client at the running server with a token
// from the CLI, and the client gets tokens at once.
func TestRegisterThroughServe(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--demo", "--demo-users", "1", "--demo-rp-addr", "", "--addr", addr,
			"--data-dir", dir, "--log-level", "error"}, io.Discard, io.Discard, func(string) string { return "" })
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("server did not stop")
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("server not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, out, errOut := run(t, nil, "registration", "token", "create", "--data-dir", dir, "--sector", "saaq", "--max-uses", "1")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errOut)
	}
	var tok tokenJSON
	_ = json.Unmarshal([]byte(out), &tok)

	body := `{"client_name":"Permis","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/register", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	id, _ := reg["client_id"].(string)
	secret, _ := reg["client_secret"].(string)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(id, "saaq.") || secret == "" ||
		reg["registration_client_uri"] != base+"/register/"+id {
		t.Fatalf("register: %d %v", resp.StatusCode, reg)
	}

	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ = http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || tr["access_token"] == nil {
		t.Fatalf("token endpoint: %d %v", resp.StatusCode, tr)
	}

	// The CLI sees the client; a second registration with the one-use
	// token is refused.
	if code, out, _ := run(t, nil, "client", "show", "--data-dir", dir, "--id", id); code != 0 || !strings.Contains(out, `"sector_identifier": "saaq"`) {
		t.Fatalf("client show: %d %s", code, out)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/register", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second registration with a one-use token: %d", resp.StatusCode)
	}
}
