package oidc

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/sqlstore"
)

// In-process benchmarks of the hot endpoints (handler + real store, no
// network but the code flow's): they show where a request's time goes.
// `make bench` measures the whole server over loopback.
//
// Each runs on SQLite and, when it answers, on PostgreSQL
// (SQIN_TEST_POSTGRES), with the audit log on as serve runs it (a Batcher
// of 1000); SQIN_BENCH_AUDIT=off leaves the auditor out. Parallel
// benchmarks run 8 goroutines per CPU (-cpu sets the CPUs), like the
// load generator's concurrency.

func benchStores(b *testing.B, run func(b *testing.B, e *env)) {
	for _, s := range hotpathStores {
		b.Run(s.name, func(b *testing.B) {
			batch := 1000
			if os.Getenv("SQIN_BENCH_AUDIT") == "off" {
				batch = 0
			}
			run(b, newEnvOn(b, benchDB(b, s.name), batch))
		})
	}
}

// benchDB opens an empty, migrated store of the dialect; PostgreSQL in a
// schema of its own, dropped at the end (skipped when unreachable).
func benchDB(b *testing.B, dialect string) *sqlstore.DB {
	ctx := context.Background()
	u := "sqlite://" + filepath.Join(b.TempDir(), "op.db")
	if dialect == "postgres" {
		base := cmp.Or(os.Getenv("SQIN_TEST_POSTGRES"), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			b.Skipf("PostgreSQL unreachable: %v", err)
		}
		defer conn.Close(ctx)
		schema := "sqin_bench_" + strings.ToLower(rand.Text())
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if c, err := pgx.Connect(ctx, base); err == nil {
				_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
				c.Close(ctx)
			}
		})
		pu, err := url.Parse(base)
		if err != nil {
			b.Fatal(err)
		}
		q := pu.Query()
		q.Set("search_path", schema)
		pu.RawQuery = q.Encode()
		u = pu.String()
	}
	db, err := sqlstore.Open(ctx, u)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return db
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure reports, from now to the end of b, the process's CPU time per
// operation (cpu-ns/op: on a machine shared with other work, it moves far
// less than the wall time per operation) and the statements and commits
// the store sent per operation (stmts/op, commits/op; BEGIN and COMMIT are
// statements, and on PostgreSQL each statement is a round trip).
func measure(b *testing.B, e *env) {
	start, counts := cpuTime(), e.db.Counts()
	b.Cleanup(func() {
		if b.N > 0 {
			d := e.db.Counts().Sub(counts)
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(d.Statements)/float64(b.N), "stmts/op")
			b.ReportMetric(float64(d.Commits)/float64(b.N), "commits/op")
		}
	})
}

func benchServe(b *testing.B, e *env, newReq func() *http.Request) {
	h := e.srv.Config.Handler
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	measure(b, e)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, newReq())
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

func BenchmarkClientCredentials(b *testing.B) {
	benchStores(b, func(b *testing.B, e *env) {
		body := "grant_type=client_credentials&scope=profile"
		benchServe(b, e, func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.SetBasicAuth("rp", testSecret)
			return r
		})
	})
}

func BenchmarkUserinfo(b *testing.B) {
	benchStores(b, func(b *testing.B, e *env) {
		tok := e.signIn(e.browser(), nil)
		at := tok["access_token"].(string)
		benchServe(b, e, func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
			r.Header.Set("Authorization", "Bearer "+at)
			return r
		})
	})
}

// BenchmarkRefresh rotates 32 refresh-token chains (one grant each) in
// parallel.
func BenchmarkRefresh(b *testing.B) {
	benchStores(b, func(b *testing.B, e *env) {
		const chains = 32
		br := e.browser()
		rts := make([]string, chains)
		for i := range rts {
			rts[i] = e.signIn(br, func(q url.Values) { q.Set("scope", "openid profile offline_access") })["refresh_token"].(string)
		}
		var next atomic.Int32
		h := e.srv.Config.Handler
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer()
		measure(b, e)
		b.RunParallel(func(pb *testing.PB) {
			var mine []int // the chains this goroutine owns
			for i := int(next.Add(1)) - 1; i < chains; i += 16 {
				mine = append(mine, i)
			}
			if len(mine) == 0 {
				b.Error("more goroutines than chains")
				return
			}
			for n := 0; pb.Next(); n++ {
				i := mine[n%len(mine)]
				r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{
					"grant_type": {"refresh_token"}, "refresh_token": {rts[i]}}.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.SetBasicAuth("rp", testSecret)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
				rts[i] = extract(w.Body.String(), "refresh_token")
			}
		})
	})
}

// BenchmarkCodeFlow runs authorize (SSO session, consent given) and the
// code exchange over loopback HTTP, as a relying party would.
func BenchmarkCodeFlow(b *testing.B) {
	benchStores(b, func(b *testing.B, e *env) {
		const browsers = 16
		bs := make([]*browser, browsers)
		for i := range bs {
			bs[i] = e.browser()
			e.signIn(bs[i], nil)
		}
		var next atomic.Int32
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer()
		measure(b, e)
		b.RunParallel(func(pb *testing.PB) {
			br := bs[int(next.Add(1)-1)%browsers]
			for pb.Next() {
				u, ap := e.authorizeURL(nil)
				resp, err := br.c.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				loc, err := resp.Location()
				if err != nil || loc.Query().Get("code") == "" {
					b.Fatalf("authorize: %d %v", resp.StatusCode, loc)
				}
				req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader(url.Values{
					"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
					"redirect_uri": {testRedirect}, "code_verifier": {ap.verifier}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("rp", testSecret)
				tr, err := e.client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				tr.Body.Close()
				if tr.StatusCode != 200 {
					b.Fatalf("token: %d", tr.StatusCode)
				}
			}
		})
	})
}

func extract(body, key string) string {
	i := strings.Index(body, `"`+key+`":"`)
	rest := body[i+len(key)+4:]
	return rest[:strings.IndexByte(rest, '"')]
}

// BenchmarkFAPIFlow runs the FAPI 2.0 flow of `sqin-bench`'s fapi2
// scenario over loopback HTTP on SSO sessions: PAR (private_key_jwt, DPoP
// proof with the server's nonce, PKCE) → authorize with the request_uri →
// token (new assertion and proof) → userinfo with a DPoP proof carrying
// ath. Compare with BenchmarkCodeFlow.
func BenchmarkFAPIFlow(b *testing.B) {
	benchStores(b, func(b *testing.B, e *env) {
		e.p.cfg.DPoPNonce = true
		k, dk := newECKey(b, "k1"), newECKey(b, "")
		e.addKeyClient("fapi", k, func(c *sqin.Client) { c.Profile = sqin.ProfileFAPI2; c.RequirePAR, c.RequireDPoP = true, true })
		const browsers = 16
		bs := make([]*browser, browsers)
		for i := range bs {
			bs[i] = e.browser()
			e.signIn(bs[i], nil)
			// The first flow gives the FAPI client its consent.
			if err := fapiFlow(e, bs[i], k, dk, true); err != nil {
				b.Fatal(err)
			}
		}
		var next atomic.Int32
		b.ReportAllocs()
		b.SetParallelism(8)
		b.ResetTimer()
		measure(b, e)
		b.RunParallel(func(pb *testing.PB) {
			br := bs[int(next.Add(1)-1)%browsers]
			for pb.Next() {
				if err := fapiFlow(e, br, k, dk, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// fapiFlow runs one FAPI 2.0 flow for client "fapi" (key k, DPoP key dk)
// in browser br; consent walks the consent page.
func fapiFlow(e *env, br *browser, k, dk *ecKey, consent bool) error {
	nonce := e.p.nonce(e.now)
	_, ap := e.authorizeURL(func(q url.Values) { q.Set("client_id", "fapi") })
	send := func(req *http.Request) (*http.Response, []byte, error) {
		resp, err := e.client().Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	post := func(path string, form url.Values) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(
			merge(form, assertionAuth(e.assertion(k, "fapi", nil))).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", e.proof(dk, http.MethodPost, e.srv.URL+path, "", nonce))
		return send(req)
	}
	resp, body, err := post("/par", ap.query)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("par: %v %s", err, body)
	}
	start := e.srv.URL + "/authorize?" + url.Values{"client_id": {"fapi"}, "request_uri": {extract(string(body), "request_uri")}}.Encode()
	var loc *url.URL
	if consent {
		loc = br.follow(start)
	} else {
		ar, err := br.c.Get(start)
		if err != nil {
			return err
		}
		ar.Body.Close()
		if loc, err = ar.Location(); err != nil {
			return fmt.Errorf("authorize: %d %w", ar.StatusCode, err)
		}
	}
	if loc.Query().Get("code") == "" {
		return fmt.Errorf("authorize: %v", loc)
	}
	resp, body, err = post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {testRedirect}, "code_verifier": {ap.verifier}})
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token: %v %s", err, body)
	}
	at := extract(string(body), "access_token")
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "DPoP "+at)
	req.Header.Set("DPoP", e.proof(dk, http.MethodGet, e.srv.URL+"/userinfo", at, nonce))
	resp, body, err = send(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("userinfo: %v %s", err, body)
	}
	return nil
}
