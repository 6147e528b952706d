package web

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func frameSrc(csp string) []string {
	for _, d := range strings.Split(csp, ";") {
		if f := strings.Fields(d); len(f) > 0 && f[0] == "frame-src" {
			return f[1:]
		}
	}
	return nil
}

func TestAllowFrames(t *testing.T) {
	w := httptest.NewRecorder()
	SecurityHeaders(w.Header(), false)
	before := w.Header().Get("Content-Security-Policy")
	AllowFrames(w)
	AllowFrames(w, "javascript:alert(1)")
	if got := w.Header().Get("Content-Security-Policy"); got != before {
		t.Fatalf("no usable origin changed the CSP: %q", got)
	}
	AllowFrames(w, "https://ok.example", "https://bad.example; script-src *", "https://[::1]:8443", "http://")
	AllowFrames(w, "http://127.0.0.1:9")
	csp := w.Header().Get("Content-Security-Policy")
	got := frameSrc(csp)
	slices.Sort(got)
	if want := []string{"http://127.0.0.1:9", "https://[::1]:8443", "https://ok.example"}; !slices.Equal(got, want) {
		t.Fatalf("frame-src %v, want %v", got, want)
	}
	if strings.Count(csp, "frame-src") != 1 || strings.Contains(csp, "script-src") {
		t.Fatalf("CSP %q", csp)
	}
	if !strings.HasPrefix(csp, before) {
		t.Fatalf("the rest of the policy changed: %q", csp)
	}
}
