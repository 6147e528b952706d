package web

import (
	"net/http"
	"strings"
)

// AllowFrames lets the page embed frames from exactly origins (front-channel
// logout): it adds them to the frame-src directive of the page's CSP,
// which otherwise falls back to default-src 'none'. Each origin is
// scheme://host[:port]; a value with any other character is left out, so
// nothing can be smuggled into the policy. Without usable origins the
// policy is unchanged.
func AllowFrames(w http.ResponseWriter, origins ...string) {
	var ok []string
	for _, o := range origins {
		if validOrigin(o) {
			ok = append(ok, o)
		}
	}
	if len(ok) == 0 {
		return
	}
	h := w.Header()
	csp := h.Get("Content-Security-Policy")
	extra := strings.Join(ok, " ")
	if strings.Contains(csp, "frame-src ") {
		csp = strings.Replace(csp, "frame-src ", "frame-src "+extra+" ", 1)
	} else {
		csp += "; frame-src " + extra
	}
	h.Set("Content-Security-Policy", csp)
}

// validOrigin reports whether o is http(s)://host[:port] made of characters
// a host name, an IPv6 literal or a port may hold.
func validOrigin(o string) bool {
	rest, ok := strings.CutPrefix(o, "https://")
	if !ok {
		if rest, ok = strings.CutPrefix(o, "http://"); !ok {
			return false
		}
	}
	if rest == "" {
		return false
	}
	for _, c := range rest {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}
