package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTrustProxies(t *testing.T) {
	trusted, err := ParseProxies("10.0.0.0/8, 192.0.2.7 ::1")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	h := TrustProxies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.RemoteAddr }), trusted)
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"direct client, no header", "203.0.113.9:4000", nil, "203.0.113.9:4000"},
		{"direct client forging the header", "203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9:4000"},
		{"through one proxy", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1:0"},
		{"client-written entries left of the real one", "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1:0"},
		{"two trusted hops", "192.0.2.7:5000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1:0"},
		{"header split over two lines", "10.1.2.3:5000", []string{"1.1.1.1", "198.51.100.1, 10.0.0.2"}, "198.51.100.1:0"},
		{"malformed entry stops at the last trusted hop", "10.1.2.3:5000", []string{"198.51.100.1, bogus, 10.0.0.5"}, "10.0.0.5:0"},
		{"trusted proxy without header", "10.1.2.3:5000", nil, "10.1.2.3:5000"},
		{"only trusted hops", "10.1.2.3:5000", []string{"10.0.0.5"}, "10.0.0.5:0"},
		{"IPv6 loopback proxy", "[::1]:5000", []string{"2001:db8::1"}, "[2001:db8::1]:0"},
		{"IPv4-mapped client", "10.1.2.3:5000", []string{"::ffff:198.51.100.2"}, "198.51.100.2:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tc.want {
				t.Fatalf("RemoteAddr %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0.1:80"} {
		if _, err := ParseProxies(bad); err == nil {
			t.Errorf("ParseProxies(%q) accepted", bad)
		}
	}
	if ps, err := ParseProxies(""); err != nil || len(ps) != 0 {
		t.Errorf("empty list: %v %v", ps, err)
	}
	plain := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if TrustProxies(plain, nil) == nil {
		t.Fatal("nil handler")
	}
}

func TestRequestIDOnlyFromTrustedProxies(t *testing.T) {
	var got string
	h := Observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = RequestID(r.Context()) }),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	trusted, _ := ParseProxies("10.0.0.0/8")
	for _, tc := range []struct {
		name, peer string
		wrap       bool
		kept       bool
	}{
		{"no proxies configured", "10.1.2.3:5000", false, false},
		{"from a trusted proxy", "10.1.2.3:5000", true, true},
		{"from anyone else", "203.0.113.9:4000", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handler := h
			if tc.wrap {
				handler = TrustProxies(h, trusted)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			r.Header.Set("X-Request-Id", "attacker-chosen-id")
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, r)
			if (got == "attacker-chosen-id") != tc.kept || w.Header().Get("X-Request-Id") != got {
				t.Fatalf("request id %q (kept=%v)", got, tc.kept)
			}
		})
	}
}

func TestLimitAddress(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:1234", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1234", "192.0.2.7"}, // IPv4-mapped: the IPv4 address
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:443", "2001:db8:1:2::/64"}, // same /64, same bucket
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::/64"},                  // the next /64, another
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"not-an-address", "not-an-address"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if got := LimitAddress(r); got != tc.want {
			t.Errorf("LimitAddress(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
