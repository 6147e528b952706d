package goclient

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	_ "modernc.org/sqlite" // integrity check of the SQLite file after the crash
)

// storm records what the concurrent clients saw while the server ran.
type storm struct {
	killed atomic.Bool

	mu        sync.Mutex
	exchanged []issuedCode // exchanged with 200 before the kill
	inflight  []issuedCode // exchange sent, no answer (killed meanwhile)
	unused    []issuedCode // received, never sent to the token endpoint
	refreshed int
	problems  []string // answers that are wrong whatever the kill
}

type issuedCode struct {
	code string
	a    authReq
}

func (s *storm) add(list *[]issuedCode, c issuedCode) {
	s.mu.Lock()
	*list = append(*list, c)
	s.mu.Unlock()
}

func (s *storm) problem(format string, args ...any) {
	if s.killed.Load() {
		return // answers cut by the kill are expected
	}
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *storm) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.exchanged)
}

// worker signs in, exchanges codes and refreshes in a loop until ctx ends
// or the server is gone.
func (s *storm) worker(ctx context.Context, r *rp, n int) {
	b := newBrowser()
	creds := navOpts{Username: demoUser(n%3 + 1), Password: demoPassword}
	for i := 0; ctx.Err() == nil && i < 200; i++ {
		a := r.authURL([]string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess})
		cb, err := b.navigate(a.URL, rpRedirect, creds)
		if err != nil {
			s.problem("worker %d: authorization: %v", n, err)
			return
		}
		code := cb.Query().Get("code")
		if code == "" {
			s.problem("worker %d: callback without code: %s", n, cb)
			continue
		}
		c := issuedCode{code, a}
		if i%4 == 3 || ctx.Err() != nil {
			s.add(&s.unused, c) // keep some codes for after the restart
			continue
		}
		tok, err := r.cfg.Exchange(ctx, code, oauth2.VerifierOption(a.Verifier))
		var re *oauth2.RetrieveError
		switch {
		case err == nil:
			s.add(&s.exchanged, c)
		case errors.As(err, &re):
			s.problem("worker %d: exchange: %s", n, describeErr(err))
			continue
		default: // no answer: the server died with the request in flight
			s.add(&s.inflight, c)
			if !s.killed.Load() {
				s.problem("worker %d: exchange: %v", n, err)
			}
			return
		}
		if tok.RefreshToken == "" {
			s.problem("worker %d: no refresh token with offline_access", n)
			continue
		}
		if _, err := r.cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
			if errors.As(err, &re) {
				s.problem("worker %d: refresh: %s", n, describeErr(err))
			} else if !s.killed.Load() {
				s.problem("worker %d: refresh: %v", n, err)
			}
			continue
		}
		s.mu.Lock()
		s.refreshed++
		s.mu.Unlock()
	}
}

// exchangeRaw posts a code to the token endpoint and returns status and
// error code.
func exchangeRaw(t *testing.T, r *rp, c issuedCode) (int, string, string) {
	t.Helper()
	v := url.Values{"grant_type": {"authorization_code"}, "code": {c.code}, "redirect_uri": {rpRedirect},
		"code_verifier": {c.a.Verifier}}
	status, m, raw := r.formPost(t, r.provider.Endpoint().TokenURL, v)
	e, _ := m["error"].(string)
	return status, e, raw
}

// TestKillAndRestart kills the server with SIGKILL while clients sign in
// and exchange tokens, restarts it on the same database, and checks that
// it comes back ready, that no code can be used twice, that what was
// committed survived, and that clients can start over.
func TestKillAndRestart(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			db := requireDatabase(t, backend)
			srv := mustStart(t, db)
			r := newRP(t, srv, confidential("go-kill", "client_secret_basic"))

			// Before the storm: tokens, and a code received but not yet used.
			pre := r.signIn(t, signInOpts{User: 1, Scopes: []string{oidc.ScopeOpenID, "email", oidc.ScopeOfflineAccess}})
			a := r.authURL([]string{oidc.ScopeOpenID})
			pending := issuedCode{r.checkCallback(t, a, r.callback(t, a, pre.Browser, navOpts{})), a}

			st := &storm{}
			stormThenKill(srv, 6, 8, 15*time.Second, &st.killed, st.count, func(ctx context.Context, i int) { st.worker(ctx, r, i) })
			t.Logf("before SIGKILL: %d codes exchanged, %d refreshes; %d exchanges cut in flight, %d codes unused",
				len(st.exchanged), st.refreshed, len(st.inflight), len(st.unused))
			for _, p := range st.problems {
				t.Errorf("while the server ran: %s", p)
			}
			if len(st.exchanged) == 0 {
				t.Fatalf("no code exchanged before the kill; server log:\n%s", srv.LogTail(30))
			}

			if err := srv.launch(); err != nil {
				t.Fatalf("restart on the same database after SIGKILL: %v", err)
			}

			for _, c := range st.exchanged {
				if status, e, raw := exchangeRaw(t, r, c); status != http.StatusBadRequest || e != "invalid_grant" {
					t.Errorf("code exchanged before the kill, again after restart: %d %s, want 400 invalid_grant", status, clip(raw))
				}
			}
			for _, c := range st.inflight {
				// Its fate is unknown: at most one success, then invalid_grant.
				status, e, raw := exchangeRaw(t, r, c)
				if status == http.StatusOK {
					status, e, raw = exchangeRaw(t, r, c)
				}
				if status != http.StatusBadRequest || e != "invalid_grant" {
					t.Errorf("code whose exchange was cut by the kill: %d %s, want 400 invalid_grant (at most one success)", status, clip(raw))
				}
			}
			// A code the client received is committed: still good once.
			for i, c := range append([]issuedCode{pending}, st.unused...) {
				if i > 3 {
					break
				}
				status, _, raw := exchangeRaw(t, r, c)
				if status != http.StatusOK {
					t.Errorf("code received before the kill and never used: %d %s, want 200 (codes live %s)", status, clip(raw), "a minute")
					continue
				}
				if status, e, raw := exchangeRaw(t, r, c); status != http.StatusBadRequest || e != "invalid_grant" {
					t.Errorf("second use of that code: %d %s, want 400 invalid_grant", status, clip(raw))
				}
			}

			// Signing keys survived: a token from before verifies with a
			// freshly discovered key set.
			r2 := discoverRP(t, srv, r.spec)
			if _, err := r2.verifier.Verify(ctxT(t), pre.RawIDToken); err != nil {
				t.Errorf("ID token issued before the kill no longer verifies after restart: %v", err)
			}
			if _, err := r2.refresh(t, pre.Token.RefreshToken); err != nil {
				t.Errorf("refresh token issued before the kill: %s", describeErr(err))
			}

			// Clients start over.
			fresh := r2.signIn(t, signInOpts{User: 2})
			if fresh.Claims.ACR != acrLoA2 {
				t.Errorf("fresh sign-in after restart: acr %q", fresh.Claims.ACR)
			}
			if ui, _ := r2.userinfo(t, fresh.Token.AccessToken); ui.Subject != fresh.Claims.Sub {
				t.Errorf("userinfo after restart: sub %q, want %q", ui.Subject, fresh.Claims.Sub)
			}
			again := r2.signIn(t, signInOpts{User: 1, Browser: pre.Browser})
			if again.Claims.Sub != pre.Claims.Sub {
				t.Errorf("same account, same client, sub changed across the restart: %q then %q", pre.Claims.Sub, again.Claims.Sub)
			}

			if err := srv.Stop(); err != nil {
				t.Errorf("graceful stop after restart: %v\nserver log:\n%s", err, srv.LogTail(5))
			}
			if db.file != "" {
				checkSQLite(t, db.file)
			}
		})
	}
}

// checkSQLite runs PRAGMA integrity_check on the server's database file.
func checkSQLite(t *testing.T, file string) {
	t.Helper()
	conn, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", file, err)
	}
	defer conn.Close()
	rows, err := conn.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if got := strings.Join(out, "; "); got != "ok" {
		t.Errorf("SQLite integrity_check after SIGKILL and restart: %s", got)
	}
}
