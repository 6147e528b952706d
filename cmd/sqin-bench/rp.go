package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// rp is the benchmark's relying party: one confidential client that speaks
// only standard OpenID Connect and OAuth 2.0 to the provider.
type rp struct {
	issuer      string
	authorize   string
	token       string
	userinfo    string
	par         string // pushed authorization request endpoint (RFC 9126), if any
	jwksURI     string
	clientID    string
	secret      string
	redirectURI string
	basic       string // Authorization header value (client_secret_basic)

	mu   sync.RWMutex
	jwks jose.JSONWebKeySet
}

type discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	UserinfoEndpoint      string `json:"userinfo_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	PAREndpoint           string `json:"pushed_authorization_request_endpoint"`
}

// newRP reads the discovery document and the JWKS.
func newRP(ctx context.Context, hc *http.Client, issuer, clientID, secret, redirectURI string) (*rp, error) {
	var d discovery
	if err := getJSON(ctx, hc, issuer+"/.well-known/openid-configuration", &d); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if d.Issuer != issuer {
		return nil, fmt.Errorf("discovery: issuer %q, want %q", d.Issuer, issuer)
	}
	if d.AuthorizationEndpoint == "" || d.TokenEndpoint == "" || d.UserinfoEndpoint == "" || d.JWKSURI == "" {
		return nil, errors.New("discovery: an endpoint is missing")
	}
	r := &rp{issuer: issuer, authorize: d.AuthorizationEndpoint, token: d.TokenEndpoint,
		userinfo: d.UserinfoEndpoint, par: d.PAREndpoint, jwksURI: d.JWKSURI, clientID: clientID, secret: secret,
		redirectURI: redirectURI}
	// RFC 6749 2.3.1: both parts form-urlencoded before base64.
	r.basic = "Basic " + base64.StdEncoding.EncodeToString(
		[]byte(url.QueryEscape(clientID)+":"+url.QueryEscape(secret)))
	if err := r.loadJWKS(ctx, hc); err != nil {
		return nil, err
	}
	return r, nil
}

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.Unmarshal(b, v)
}

func (r *rp) loadJWKS(ctx context.Context, hc *http.Client) error {
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, hc, r.jwksURI, &set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("jwks: no keys")
	}
	r.mu.Lock()
	r.jwks = set
	r.mu.Unlock()
	return nil
}

// pkce returns a fresh S256 verifier and challenge (RFC 7636).
func pkce() (verifier, challenge string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	verifier = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func randString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authRequest is one authorization request the RP started.
type authRequest struct {
	url      string
	state    string
	nonce    string
	verifier string
}

func (r *rp) newAuthRequest(scope string) authRequest {
	verifier, challenge := pkce()
	a := authRequest{state: randString(12), nonce: randString(12), verifier: verifier}
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {r.clientID},
		"redirect_uri":          {r.redirectURI},
		"scope":                 {scope},
		"state":                 {a.state},
		"nonce":                 {a.nonce},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
	a.url = r.authorize + "?" + q.Encode()
	return a
}

// codeFrom checks an authorization response (state, iss; RFC 9207) and
// returns its code.
func (r *rp) codeFrom(loc *url.URL, a authRequest) (string, error) {
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != a.state {
		return "", errors.New("authorization response: state mismatch")
	}
	if q.Get("iss") != r.issuer {
		return "", errors.New("authorization response: iss mismatch")
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("authorization response: no code")
	}
	return code, nil
}

// isRedirect tells whether u is the client's redirect URI.
func (r *rp) isRedirect(u *url.URL) bool {
	s := u.Scheme + "://" + u.Host + u.Path
	return s == r.redirectURI
}

// noFollow makes an http.Client return redirects instead of following
// them: the benchmark follows them itself, as a browser would, and stops at
// the redirect URI.
func noFollow(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

// postToken sends a token request with client_secret_basic. buf is the
// caller's reusable body buffer.
func (r *rp) postToken(ctx context.Context, hc *http.Client, form string, buf *bytes.Buffer, out *tokenResponse) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.token, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", r.basic)
	status, err := do(hc, req, buf)
	if err != nil {
		return err
	}
	*out = tokenResponse{}
	if err := json.Unmarshal(buf.Bytes(), out); err != nil {
		return fmt.Errorf("token: status %d, bad JSON", status)
	}
	if status != http.StatusOK {
		return fmt.Errorf("token: status %d %s", status, out.Error)
	}
	if out.AccessToken == "" || !strings.EqualFold(out.TokenType, "Bearer") {
		return errors.New("token: no bearer access token")
	}
	return nil
}

// postTokenQuick is postToken for responses the benchmark does not use:
// it checks the status and that an access token is there, without
// decoding the JSON, so that the generator spends its CPU on requests.
func (r *rp) postTokenQuick(ctx context.Context, hc *http.Client, form string, buf *bytes.Buffer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.token, strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", r.basic)
	status, err := do(hc, req, buf)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("token: status %d %s", status, oneLine(buf.String()))
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"access_token":"ey`)) {
		return errors.New("token: no access token")
	}
	return nil
}

// exchange redeems a code (with its PKCE verifier) and verifies the ID
// token.
func (r *rp) exchange(ctx context.Context, hc *http.Client, code string, a authRequest, buf *bytes.Buffer, out *tokenResponse) error {
	form := "grant_type=authorization_code&code=" + url.QueryEscape(code) +
		"&redirect_uri=" + url.QueryEscape(r.redirectURI) + "&code_verifier=" + a.verifier
	if err := r.postToken(ctx, hc, form, buf, out); err != nil {
		return err
	}
	return r.verifyIDToken(ctx, hc, out.IDToken, a.nonce)
}

type idClaims struct {
	Iss   string          `json:"iss"`
	Sub   string          `json:"sub"`
	Aud   json.RawMessage `json:"aud"`
	Exp   int64           `json:"exp"`
	Nonce string          `json:"nonce"`
}

var idTokenAlgs = []jose.SignatureAlgorithm{jose.ES256}

// verifyIDToken checks the ID token's ES256 signature against the JWKS,
// then iss, aud, exp and nonce (OIDC Core 3.1.3.7).
func (r *rp) verifyIDToken(ctx context.Context, hc *http.Client, token, nonce string) error {
	if token == "" {
		return errors.New("id_token missing")
	}
	sig, err := jose.ParseSignedCompact(token, idTokenAlgs)
	if err != nil {
		return fmt.Errorf("id_token: %w", err)
	}
	if len(sig.Signatures) != 1 {
		return errors.New("id_token: want one signature")
	}
	kid := sig.Signatures[0].Header.KeyID
	r.mu.RLock()
	ks := r.jwks.Key(kid)
	r.mu.RUnlock()
	if len(ks) == 0 { // a rotated key: read the JWKS again, once
		if err := r.loadJWKS(ctx, hc); err != nil {
			return err
		}
		r.mu.RLock()
		ks = r.jwks.Key(kid)
		r.mu.RUnlock()
		if len(ks) == 0 {
			return fmt.Errorf("id_token: unknown kid %q", kid)
		}
	}
	payload, err := sig.Verify(ks[0])
	if err != nil {
		return fmt.Errorf("id_token: %w", err)
	}
	var c idClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return fmt.Errorf("id_token claims: %w", err)
	}
	if c.Iss != r.issuer {
		return errors.New("id_token: iss mismatch")
	}
	if !audContains(c.Aud, r.clientID) {
		return errors.New("id_token: aud mismatch")
	}
	if c.Exp <= time.Now().Unix() {
		return errors.New("id_token: expired")
	}
	if c.Nonce != nonce {
		return errors.New("id_token: nonce mismatch")
	}
	if c.Sub == "" {
		return errors.New("id_token: no sub")
	}
	return nil
}

func audContains(raw json.RawMessage, id string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == id
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == id {
				return true
			}
		}
	}
	return false
}

// do sends req, reads the whole body into buf (reused) and returns the
// status.
func do(hc *http.Client, req *http.Request, buf *bytes.Buffer) (int, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// browse plays a browser from the authorization request to the redirect
// URI: it follows redirects, fills in and submits the sign-in form with
// username and password (all hidden inputs included) and approves the
// consent page when it is shown. It returns the code.
func (r *rp) browse(ctx context.Context, hc *http.Client, a authRequest, username, password string, buf *bytes.Buffer) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return "", err
	}
	for step := 0; step < 12; step++ {
		status, loc, err := doBrowser(hc, req, buf)
		if err != nil {
			return "", err
		}
		switch {
		case status == http.StatusSeeOther || status == http.StatusFound:
			if loc == nil {
				return "", fmt.Errorf("%s %s: redirect without Location", req.Method, req.URL.Path)
			}
			if r.isRedirect(loc) {
				return r.codeFrom(loc, a)
			}
			if req, err = http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil); err != nil {
				return "", err
			}
		case status == http.StatusOK && req.Method == http.MethodGet:
			f, ok := parseForm(buf.Bytes())
			if !ok {
				return "", fmt.Errorf("GET %s: no form on the page", req.URL.Path)
			}
			switch {
			case f.has("password"):
				if username == "" {
					return "", errors.New("sign-in page shown where an SSO session was expected")
				}
				f.fields.Set("username", username)
				f.fields.Set("password", password)
			case f.has("approve"):
				f.fields.Set("approve", "yes")
			default:
				return "", fmt.Errorf("GET %s: unknown form", req.URL.Path)
			}
			action, err := req.URL.Parse(f.action)
			if err != nil {
				return "", err
			}
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, action.String(), strings.NewReader(f.fields.Encode()))
			if err != nil {
				return "", err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		default:
			return "", fmt.Errorf("%s %s: status %d%s", req.Method, req.URL.Path, status, pageAlert(buf.Bytes()))
		}
	}
	return "", errors.New("too many steps before the redirect URI")
}

// doBrowser sends req and returns its status, body (in buf) and resolved
// Location.
func doBrowser(hc *http.Client, req *http.Request, buf *bytes.Buffer) (int, *url.URL, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	var loc *url.URL
	if l := resp.Header.Get("Location"); l != "" {
		if loc, err = req.URL.Parse(l); err != nil {
			return 0, nil, err
		}
	}
	return resp.StatusCode, loc, nil
}

// form is an HTML form: its action and the inputs a browser submits by
// default (hidden and pre-filled ones), plus the names of every control.
type form struct {
	action string
	fields url.Values
	names  map[string]bool
}

func (f form) has(name string) bool { return f.names[name] }

// parseForm reads the first <form> of a page rendered by html/template:
// attributes are double-quoted and HTML-escaped. It is not a general HTML
// parser.
func parseForm(page []byte) (form, bool) {
	s := string(page)
	i := strings.Index(s, "<form")
	if i < 0 {
		return form{}, false
	}
	s = s[i:]
	if j := strings.Index(s, "</form>"); j >= 0 {
		s = s[:j]
	}
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return form{}, false
	}
	f := form{action: attrs(s[len("<form"):end])["action"], fields: url.Values{}, names: map[string]bool{}}
	for _, tag := range []string{"<input", "<button", "<select", "<textarea"} {
		rest := s
		for {
			k := strings.Index(rest, tag)
			if k < 0 {
				break
			}
			rest = rest[k+len(tag):]
			e := strings.IndexByte(rest, '>')
			if e < 0 {
				break
			}
			a := attrs(rest[:e])
			rest = rest[e:]
			name := a["name"]
			if name == "" {
				continue
			}
			f.names[name] = true
			if tag == "<input" {
				switch a["type"] {
				case "hidden":
					f.fields.Add(name, a["value"])
				case "checkbox", "radio":
					if _, on := a["checked"]; on {
						f.fields.Add(name, a["value"])
					}
				}
			}
		}
	}
	return f, true
}

// attrs parses name="value" attributes (and bare names) of one tag.
func attrs(s string) map[string]string {
	m := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t\r\n/")
		if s == "" {
			return m
		}
		n := strings.IndexAny(s, "= \t\r\n/")
		if n < 0 {
			m[strings.ToLower(s)] = ""
			return m
		}
		name := strings.ToLower(s[:n])
		s = s[n:]
		if s[0] != '=' {
			m[name] = ""
			continue
		}
		s = s[1:]
		var val string
		if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, `'`) {
			q := s[0]
			e := strings.IndexByte(s[1:], q)
			if e < 0 {
				return m
			}
			val, s = s[1:1+e], s[2+e:]
		} else {
			e := strings.IndexAny(s, " \t\r\n")
			if e < 0 {
				e = len(s)
			}
			val, s = s[:e], s[e:]
		}
		m[name] = html.UnescapeString(val)
	}
}

// pageAlert returns the text of an alert on an HTML page, to explain a
// failed step in the report.
func pageAlert(page []byte) string {
	s := string(page)
	i := strings.Index(s, `role="alert"`)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if k := strings.IndexByte(s, '>'); k >= 0 {
		s = s[k+1:]
	}
	if j := strings.Index(s, "</div>"); j >= 0 {
		s = s[:j]
	}
	var b strings.Builder
	in := false
	for _, c := range s {
		switch c {
		case '<':
			in = true
		case '>':
			in = false
		default:
			if !in {
				b.WriteRune(c)
			}
		}
	}
	t := strings.Join(strings.Fields(html.UnescapeString(b.String())), " ")
	if t == "" {
		return ""
	}
	if len(t) > 120 {
		t = t[:120]
	}
	return " (" + t + ")"
}
