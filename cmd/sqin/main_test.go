package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/clientreg"
)

func run(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	code := Main(context.Background(), args, &out, &errb, getenv)
	return code, out.String(), errb.String()
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := run(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "sqin ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errOut := run(t, nil, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
	if code, _, _ := run(t, nil); code != 2 {
		t.Fatalf("no command: %d", code)
	}
}

func TestClientCommands(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "c.db")
	base := []string{"client", "create", "--db", db}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"http on a public host", []string{"--id", "a", "--secret", "0123456789abcdef", "--redirect-uri", "http://rp.example/cb"}, "use https"},
		{"fragment", []string{"--id", "a", "--secret", "0123456789abcdef", "--redirect-uri", "https://rp.example/cb#x"}, "fragment"},
		{"wildcard", []string{"--id", "a", "--secret", "0123456789abcdef", "--redirect-uri", "https://*.rp.example/cb"}, "wildcard"},
		{"relative", []string{"--id", "a", "--secret", "0123456789abcdef", "--redirect-uri", "/cb"}, "absolute"},
		{"short secret", []string{"--id", "a", "--secret", "short", "--redirect-uri", "https://rp.example/cb"}, "at least 12"},
		{"unknown scope", []string{"--id", "a", "--secret", "0123456789abcdef", "--redirect-uri", "https://rp.example/cb", "--scopes", "openid,everything"}, "unknown scope"},
		{"public client_credentials", []string{"--id", "a", "--auth", "none", "--grant-types", "client_credentials"}, "public client"},
		{"bad level", []string{"--id", "a", "--secret", "0123456789abcdef", "--redirect-uri", "https://rp.example/cb", "--min-loa", "4"}, "--min-loa"},
		{"no redirect", []string{"--id", "a", "--secret", "0123456789abcdef"}, "--redirect-uri: redirect_uris is required"},
		{"no id", []string{"--secret", "0123456789abcdef", "--redirect-uri", "https://rp.example/cb"}, "--id: client_id"},
		{"bad alg", []string{"--id", "a", "--secret", "0123456789abcdef", "--redirect-uri", "https://rp.example/cb", "--signing-alg", "HS256"}, "--signing-alg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, nil, append(base, tt.args...)...)
			if code != 1 || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q, want %q", code, errOut, tt.wantErr)
			}
		})
	}
	code, out, errOut := run(t, nil, append(base, "--id", "saaq-permis", "--redirect-uri", "https://permis.example/cb",
		"--redirect-uri", "http://127.0.0.1:9000/cb", "--post-logout-redirect-uri", "https://permis.example/",
		"--sector", "saaq", "--min-loa", "2")...)
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	var c clientreg.Metadata
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "saaq-permis" || len(c.ClientSecret) < 32 || len(c.RedirectURIs) != 2 || c.MinimumACR != "urn:sqin:loa:2" || c.SectorIdentifier != "saaq" {
		t.Fatalf("created client: %+v", c)
	}
	if code, _, errOut := run(t, nil, append(base, "--id", "saaq-permis", "--secret", "0123456789abcdef", "--redirect-uri", "https://x.example/cb")...); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("duplicate: %d %q", code, errOut)
	}
	code, out, _ = run(t, nil, "client", "list", "--db", db)
	if code != 0 || !strings.Contains(out, `"saaq-permis"`) || strings.Contains(out, `"client_secret":`) {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, _, _ := run(t, nil, "client", "delete", "--db", db, "--id", "saaq-permis"); code != 0 {
		t.Fatal("delete failed")
	}
	if code, out, _ := run(t, nil, "client", "list", "--db", db); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after delete: %s", out)
	}
}

func TestServeNeedsIssuerAndMasterKey(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := run(t, nil, "serve", "--data-dir", dir); code != 1 || !strings.Contains(errOut, "--issuer") {
		t.Fatalf("no issuer: %d %q", code, errOut)
	}
	if code, _, errOut := run(t, nil, "serve", "--data-dir", dir, "--issuer", "https://auth.example"); code != 1 || !strings.Contains(errOut, "SQIN_MASTER_KEY") {
		t.Fatalf("no master key: %d %q", code, errOut)
	}
	env := func(k string) string {
		if k == "SQIN_MASTER_KEY" {
			return "not base64!"
		}
		return ""
	}
	if code, _, errOut := run(t, env, "serve", "--data-dir", dir, "--issuer", "https://auth.example"); code != 1 || !strings.Contains(errOut, "32 bytes") {
		t.Fatalf("bad master key: %d %q", code, errOut)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SIGTERM (here: the context's cancellation) lets a request that is still
// being received finish before the process exits.
func TestGracefulShutdown(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--demo", "--demo-users", "1", "--demo-rp-addr", "", "--addr", addr,
			"--data-dir", t.TempDir(), "--log-level", "error"}, io.Discard, io.Discard, func(string) string { return "" })
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mresp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(metrics), `sqin_http_responses_total{class="2xx"}`) || strings.Contains(string(metrics), `class="2xx"} 0`) {
		t.Fatalf("metrics do not count responses:\n%s", metrics)
	}
	// The audit log's state: the first signing keys' events at least, and
	// its latest signed head (none yet counts as size 0).
	if !regexp.MustCompile(`(?m)^sqin_audit_events [1-9][0-9]*$`).Match(metrics) ||
		!regexp.MustCompile(`(?m)^sqin_audit_tree_head_size [0-9]+$`).Match(metrics) ||
		!regexp.MustCompile(`(?m)^sqin_audit_queued_events 0$`).Match(metrics) {
		t.Fatalf("metrics do not show the audit log:\n%s", metrics)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "grant_type=client_credentials&client_id=nobody&client_secret=0123456789abcdef"
	fmt.Fprintf(conn, "POST /token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body[:10])
	time.Sleep(100 * time.Millisecond)
	cancel() // shutdown starts while the request is in flight
	time.Sleep(200 * time.Millisecond)
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request was cut: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || !strings.Contains(string(b), "invalid_client") {
		t.Fatalf("in-flight answer: %d %s", resp.StatusCode, b)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit status %d", code)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("server did not stop")
	}
}
