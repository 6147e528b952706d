package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a transport that remembers every response's status.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	log  []string // "METHOD /path STATUS"
	bad  []string // statuses other than 2xx, 302 and 303, with why
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	line := fmt.Sprintf("%s %s %d", req.Method, req.URL.Path, resp.StatusCode)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, line)
	if s := resp.StatusCode; (s < 200 || s > 299) && s != http.StatusFound && s != http.StatusSeeOther {
		r.bad = append(r.bad, fmt.Sprintf("%s WWW-Authenticate=%q DPoP-Nonce=%t", line,
			resp.Header.Get("WWW-Authenticate"), resp.Header.Get("DPoP-Nonce") != ""))
	}
	return resp, nil
}

func (r *recorder) take() (log, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	log, bad = r.log, r.bad
	r.log, r.bad = nil, nil
	return log, bad
}

var built struct {
	once sync.Once
	bin  string
	err  error
}

// buildSQIN builds ./cmd/sqin once into a temporary directory, unless
// SQIN_BENCH_TEST_BIN names a binary to use.
func buildSQIN(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("SQIN_BENCH_TEST_BIN"); bin != "" {
		return bin
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "sqin-bench-test-")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(dir, "sqin")
		cmd := exec.Command("go", "build", "-o", built.bin, "./cmd/sqin")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./cmd/sqin: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.bin != "" {
		os.RemoveAll(filepath.Dir(built.bin))
	}
	os.Exit(code)
}

// TestFAPIFlow runs the FAPI 2.0 scenario's client against a real `sqin
// serve` (SQLite): a first flow signs in on the login form, gives consent
// and meets the server's first DPoP nonce challenge; the next ones ride on
// the SSO session, keep the nonce and must see nothing but 2xx, 302 and
// 303 answers.
func TestFAPIFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	bin := buildSQIN(t)
	dir := t.TempDir()
	ctx := t.Context()
	db := "sqlite://" + filepath.Join(dir, "bench.db")
	srv, err := startServer(ctx, bin, db, dir, []string{"--demo-users", "2"}, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Logf("server stop: %v", err)
		}
	})
	const clientID, redirectURI = "bench-fapi", "http://127.0.0.1:9/callback"
	key, err := newFAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := createFAPIClient(bin, db, dir, clientID, redirectURI, key); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: newTransport(2)}
	api := &http.Client{Transport: rec, CheckRedirect: noFollow, Timeout: time.Minute}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Transport: rec, Jar: jar, CheckRedirect: noFollow, Timeout: time.Minute}
	c, err := newFAPIClient(ctx, api, srv.issuer, clientID, redirectURI, key)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := newDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var tok tokenResponse
	if err := c.flow(ctx, api, browser, dk, demoUser(0), demoPassword, true, &buf, &tok); err != nil {
		t.Fatalf("first flow (sign-in and consent): %v\nserver log:\n%s", err, srv.logTail(10))
	}
	log, bad := rec.take()
	t.Logf("first flow: %s", strings.Join(log, ", "))
	// The client had no nonce: its first PAR is refused with one, and
	// nothing else may fail.
	if len(bad) != 1 || !strings.HasPrefix(bad[0], "POST /par 400") || !strings.Contains(bad[0], "DPoP-Nonce=true") {
		t.Errorf("first flow: want exactly one 400 use_dpop_nonce at /par, got %q", bad)
	}
	if n := c.nonceRetries.Load(); n != 1 {
		t.Errorf("%d nonce retries in the first flow, want 1", n)
	}
	for _, want := range []string{"/login", "/consent", "/token 200", "/userinfo 200"} {
		if !strings.Contains(strings.Join(log, ","), want) {
			t.Errorf("first flow never went through %s", want)
		}
	}
	// The access token is bound to the worker's key (RFC 9449 §6.1).
	if cnf := atCnf(t, tok.AccessToken); cnf != dk.jkt {
		t.Errorf("access token cnf.jkt = %q, want the DPoP key's thumbprint %q", cnf, dk.jkt)
	}
	for i := range 3 {
		if err := c.flow(ctx, api, browser, dk, "", "", false, &buf, &tok); err != nil {
			t.Fatalf("flow %d on the SSO session: %v\nserver log:\n%s", i+2, err, srv.logTail(10))
		}
		log, bad := rec.take()
		if len(bad) > 0 {
			t.Errorf("flow %d: answers other than 2xx/302/303: %q", i+2, bad)
		}
		if i == 0 {
			t.Logf("flow on the SSO session: %s", strings.Join(log, ", "))
		}
		if len(log) != 3 {
			t.Errorf("flow %d took %d requests (%s), want PAR, authorize, token", i+2, len(log), strings.Join(log, ", "))
		}
	}
	// The token is really bound: as a bearer token it is refused.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.userinfo, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if status, err := do(api, req, &buf); err != nil || status != http.StatusUnauthorized {
		t.Errorf("DPoP-bound token sent as Bearer: status %d, %v; want 401", status, err)
	}
	rec.take()
}

// atCnf returns the cnf.jkt claim of a JWT access token (a test may look
// inside; the client itself treats the token as opaque).
func atCnf(t *testing.T, at string) string {
	t.Helper()
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(b, &cl); err != nil {
		t.Fatal(err)
	}
	return cl.Cnf.JKT
}
