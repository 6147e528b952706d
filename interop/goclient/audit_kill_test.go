package goclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// auditStorm drives sign-ins, failed sign-ins and consents, each with its
// own X-Request-Id, and remembers those the server acknowledged.
type auditStorm struct {
	killed atomic.Bool
	mu     sync.Mutex
	acked  map[string]string // request ID -> the event its answer promises
	probs  []string
}

func (s *auditStorm) ack(rid, action string) {
	s.mu.Lock()
	s.acked[rid] = action
	s.mu.Unlock()
}

func (s *auditStorm) problem(format string, args ...any) {
	if s.killed.Load() {
		return
	}
	s.mu.Lock()
	s.probs = append(s.probs, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *auditStorm) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// send is one request with a request ID, redirects not followed.
func send(c *http.Client, method, u string, form url.Values, rid string) (*http.Response, string, error) {
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if rid != "" {
		req.Header.Set("X-Request-Id", rid)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	b, err := readAll(resp)
	return resp, string(b), err
}

// worker signs in with a fresh browser each round (prompt=login, consent
// asked every time), first failing once with an unknown identifier every
// third round.
func (s *auditStorm) worker(ctx context.Context, r *rp, n int) {
	for i := 0; ctx.Err() == nil && i < 300; i++ {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		a := r.authURL([]string{oidc.ScopeOpenID, "email"}, oauth2.SetAuthURLParam("prompt", "login consent"))
		resp, _, err := send(c, http.MethodGet, a.URL, nil, "")
		if err != nil {
			s.problem("worker %d: authorize: %v", n, err)
			return
		}
		loginURL, err := resp.Location()
		if err != nil {
			s.problem("worker %d: authorize: %d without redirect", n, resp.StatusCode)
			return
		}
		_, page, err := send(c, http.MethodGet, loginURL.String(), nil, "")
		if err != nil {
			s.problem("worker %d: login page: %v", n, err)
			return
		}
		form, _ := findForm(parseForms(page), loginURL, "/login")
		if form == nil {
			s.problem("worker %d: no login form", n)
			return
		}
		target := form.target(loginURL)
		rid := fmt.Sprintf("kill-%d-%d", n, i)
		if i%3 == 0 {
			v := form.values()
			v.Set("username", fmt.Sprintf("ghost-%d-%d@example.test", n, i))
			v.Set("password", "not-a-password")
			resp, _, err := send(c, http.MethodPost, target, v, rid+"-f")
			if err != nil {
				return // killed
			}
			if resp.StatusCode == http.StatusOK {
				s.ack(rid+"-f", "signin.failure")
			} else {
				s.problem("worker %d: failed sign-in answered %d", n, resp.StatusCode)
			}
		}
		v := form.values()
		v.Set("username", demoUser(n%3+1))
		v.Set("password", demoPassword)
		resp, _, err = send(c, http.MethodPost, target, v, rid)
		if err != nil {
			return // killed
		}
		if resp.StatusCode != http.StatusSeeOther {
			s.problem("worker %d: sign-in answered %d", n, resp.StatusCode)
			continue
		}
		s.ack(rid, "signin.success")
		// Resume, then the consent page.
		next, _ := resp.Location()
		next = loginURL.ResolveReference(next)
		resp, _, err = send(c, http.MethodGet, next.String(), nil, "")
		if err != nil {
			return
		}
		cons, err := resp.Location()
		if err != nil || !strings.HasPrefix(cons.Path, "/consent") {
			s.problem("worker %d: resume answered %d %v", n, resp.StatusCode, cons)
			continue
		}
		cons = loginURL.ResolveReference(cons)
		_, page, err = send(c, http.MethodGet, cons.String(), nil, "")
		if err != nil {
			return
		}
		cf, _ := findForm(parseForms(page), cons, "/consent")
		if cf == nil {
			s.problem("worker %d: no consent form", n)
			continue
		}
		cv := cf.values()
		cv.Set("approve", cf.Buttons["approve"])
		resp, _, err = send(c, http.MethodPost, cf.target(cons), cv, rid+"-c")
		if err != nil {
			return
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, rpRedirect) &&
			strings.Contains(loc, "code=") {
			s.ack(rid+"-c", "consent.given")
		} else {
			s.problem("worker %d: consent answered %d %s", n, resp.StatusCode, loc)
		}
	}
}

// sqinCmd runs the sqin binary in the database's directory (where the
// demo keeps its master key).
func sqinCmd(db *database, args ...string) ([]byte, error) {
	cmd := exec.Command(sqinBin, args...)
	cmd.Dir = db.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// TestAuditSurvivesKill kills sqin serve with SIGKILL while citizens sign
// in, fail to and consent, restarts it on the same database, and requires
// sqin audit verify to pass (before and after more activity and heads)
// and every answered action to have its event.
func TestAuditSurvivesKill(t *testing.T) {
	// The storm comes from one address: lift the per-address limit; sign
	// heads often, so that some are signed under load and after the kill.
	t.Setenv("SQIN_LOGIN_LIMIT_ADDRESS", "1000000")
	t.Setenv("SQIN_AUDIT_HEAD_INTERVAL", "100ms")
	t.Setenv("SQIN_TRUSTED_PROXIES", "127.0.0.1, ::1") // the load generator names its requests (X-Request-Id)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			db := requireDatabase(t, backend)
			srv := mustStart(t, db)
			r := newRP(t, srv, confidential("go-audit-kill", "client_secret_basic"))

			st := &auditStorm{acked: map[string]string{}}
			stormThenKill(srv, 6, 40, 30*time.Second, &st.killed, st.count, func(ctx context.Context, i int) { st.worker(ctx, r, i) })
			for _, p := range st.probs {
				t.Errorf("while the server ran: %s", p)
			}
			if st.count() < 10 {
				t.Fatalf("only %d actions acknowledged before the kill; server log:\n%s", st.count(), srv.LogTail(30))
			}
			dbFlags := []string{"--db", db.url, "--demo"}
			if out, err := sqinCmd(db, append([]string{"audit", "verify"}, dbFlags...)...); err != nil {
				t.Fatalf("sqin audit verify after SIGKILL: %v\n%s", err, out)
			}

			if err := srv.launch(); err != nil {
				t.Fatalf("restart after SIGKILL: %v", err)
			}
			after := r.signIn(t, signInOpts{User: 1})
			if after.Claims.Sub == "" {
				t.Fatal("no sign-in after the restart")
			}
			time.Sleep(300 * time.Millisecond) // a head after the restart
			if err := srv.Stop(); err != nil {
				t.Errorf("graceful stop: %v", err)
			}
			out, err := sqinCmd(db, append([]string{"audit", "verify"}, dbFlags...)...)
			if err != nil || !strings.Contains(string(out), "OK") {
				t.Fatalf("sqin audit verify after the restart: %v\n%s", err, out)
			}
			t.Logf("after restart: %s", strings.TrimSpace(string(out)))

			exp, err := sqinCmd(db, "audit", "export", "--db", db.url)
			if err != nil {
				t.Fatalf("sqin audit export: %v\n%s", err, exp)
			}
			got := map[string][]string{}
			sc := bufio.NewScanner(bytes.NewReader(exp))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			lines := 0
			for sc.Scan() {
				var ev struct {
					RequestID string `json:"request_id"`
					Action    string `json:"action"`
				}
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatalf("export line %d: %v", lines, err)
				}
				lines++
				if ev.RequestID != "" {
					got[ev.RequestID] = append(got[ev.RequestID], ev.Action)
				}
			}
			missing := 0
			for rid, action := range st.acked {
				if !strings.Contains(strings.Join(got[rid], " "), action) {
					missing++
					if missing <= 5 {
						t.Errorf("acknowledged %s (request %s) has no event; the log holds %v for it", action, rid, got[rid])
					}
				}
			}
			t.Logf("%d actions acknowledged before SIGKILL, %d events in the log, %d missing", len(st.acked), lines, missing)
		})
	}
}

// TestAuditTwoServersPostgres runs two sqin serve processes on one
// PostgreSQL database, both signing tree heads every 50 ms, while citizens
// sign in and consent on both: one log, gap-free, that sqin audit verify
// accepts, holding every acknowledged action.
func TestAuditTwoServersPostgres(t *testing.T) {
	t.Setenv("SQIN_LOGIN_LIMIT_ADDRESS", "1000000")
	t.Setenv("SQIN_AUDIT_HEAD_INTERVAL", "50ms")
	t.Setenv("SQIN_TRUSTED_PROXIES", "127.0.0.1, ::1")
	db := requireDatabase(t, "postgres")
	var servers []*Server
	for range 2 {
		servers = append(servers, mustStart(t, db))
	}
	spec := confidential("go-audit-two", "client_secret_basic")
	rps := []*rp{newRP(t, servers[0], spec), discoverRP(t, servers[1], spec)}

	st := &auditStorm{acked: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.worker(ctx, rps[i%2], i)
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for st.count() < 60 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for _, p := range st.probs {
		t.Errorf("while the servers ran: %s", p)
	}
	for _, s := range servers {
		if err := s.Stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if strings.Contains(s.LogTail(200), "ALERT") {
			t.Errorf("a server raised an alert:\n%s", s.LogTail(20))
		}
	}
	out, err := sqinCmd(db, "audit", "verify", "--db", db.url, "--demo")
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("sqin audit verify: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	exp, err := sqinCmd(db, "audit", "export", "--db", db.url)
	if err != nil {
		t.Fatalf("sqin audit export: %v\n%s", err, exp)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(exp))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			RequestID string `json:"request_id"`
			Action    string `json:"action"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		got[ev.RequestID] += " " + ev.Action
	}
	for rid, action := range st.acked {
		if !strings.Contains(got[rid], action) {
			t.Errorf("acknowledged %s (request %s) has no event", action, rid)
		}
	}
	t.Logf("%d actions acknowledged on two servers", len(st.acked))
}
