package oidc

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// In-process benchmarks of the hot endpoints (handler + real SQLite store,
// no network): they show where a request's time goes. `make bench` measures
// the whole server over loopback.

func benchServe(b *testing.B, e *env, newReq func() *http.Request) {
	h := e.srv.Config.Handler
	b.ReportAllocs()
	b.ResetTimer()
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
	e := newEnv(b)
	body := "grant_type=client_credentials&scope=profile"
	benchServe(b, e, func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("rp", testSecret)
		return r
	})
}

func BenchmarkUserinfo(b *testing.B) {
	e := newEnv(b)
	tok := e.signIn(e.browser(), nil)
	at := tok["access_token"].(string)
	benchServe(b, e, func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
		r.Header.Set("Authorization", "Bearer "+at)
		return r
	})
}

func BenchmarkRefresh(b *testing.B) {
	e := newEnv(b)
	tok := e.signIn(e.browser(), nil)
	rt := tok["refresh_token"].(string)
	h := e.srv.Config.Handler
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("rp", testSecret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		rt = extract(w.Body.String(), "refresh_token")
	}
}

func extract(body, key string) string {
	i := strings.Index(body, `"`+key+`":"`)
	rest := body[i+len(key)+4:]
	return rest[:strings.IndexByte(rest, '"')]
}
