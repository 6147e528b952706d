package goclient

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// browser is a minimal user agent for the sign-in pages: a cookie jar,
// redirects followed by hand, and the simple forms of the login, consent
// and logout pages read with regular expressions.
type browser struct {
	c     *http.Client
	trail []string
}

func newBrowser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		panic(err)
	}
	return &browser{c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is one response, body read.
type page struct {
	URL    *url.URL
	Status int
	Header http.Header
	Body   string
}

func (p *page) String() string {
	body := p.Body
	if len(body) > 1500 {
		body = body[:1500] + "…"
	}
	loc := ""
	if l := p.Header.Get("Location"); l != "" {
		loc = " Location: " + l
	}
	return fmt.Sprintf("%d from %s%s\n%s", p.Status, p.URL, loc, body)
}

func (b *browser) do(method, u string, form url.Values) (*page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		return nil, err
	}
	raw, err := readAll(resp)
	if err != nil {
		return nil, err
	}
	b.trail = append(b.trail, fmt.Sprintf("%s %s -> %d %s", method, u, resp.StatusCode, resp.Header.Get("Location")))
	return &page{URL: req.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(raw)}, nil
}

// get fetches u without following redirects.
func (b *browser) get(u string) (*page, error) { return b.do(http.MethodGet, u, nil) }

func (b *browser) recent() string {
	t := b.trail
	if len(t) > 8 {
		t = t[len(t)-8:]
	}
	return strings.Join(t, "\n  ")
}

// navOpts says how to fill the pages met on the way.
type navOpts struct {
	Username, Password string
	Deny               bool // press the consent form's other button
	ConfirmLogout      bool // submit the logout confirmation form
	SawLogin           *bool
	SawConsent         *bool
}

// navigate follows redirects from start and fills the sign-in, consent and
// (if asked) logout forms, until the server redirects to a URL starting
// with until. It returns that URL, or an error showing the page the server
// showed instead.
func (b *browser) navigate(start, until string, o navOpts) (*url.URL, error) {
	method, next, data := http.MethodGet, start, url.Values(nil)
	loginPosted := false
	for hop := 0; hop < 20; hop++ {
		p, err := b.do(method, next, data)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w (trail:\n  %s)", method, next, err, b.recent())
		}
		if p.Status >= 300 && p.Status < 400 {
			loc, err := p.URL.Parse(p.Header.Get("Location"))
			if err != nil || p.Header.Get("Location") == "" {
				return nil, fmt.Errorf("bad redirect: %s", p)
			}
			if strings.HasPrefix(loc.String(), until) {
				return loc, nil
			}
			method, next, data = http.MethodGet, loc.String(), nil
			continue
		}
		if p.Status != http.StatusOK {
			return nil, fmt.Errorf("unexpected page (trail:\n  %s)\n%s", b.recent(), p)
		}
		forms := parseForms(p.Body)
		f, kind := findForm(forms, p.URL, "/login", "/consent", "/logout")
		switch kind {
		case "/login":
			if o.Username == "" {
				return nil, fmt.Errorf("login page shown but no credentials given (trail:\n  %s)\n%s", b.recent(), p)
			}
			if loginPosted {
				return nil, fmt.Errorf("sign-in of %s refused: the login page came back (trail:\n  %s)\n%s", o.Username, b.recent(), p)
			}
			loginPosted = true
			if o.SawLogin != nil {
				*o.SawLogin = true
			}
			v := f.values()
			v.Set("username", o.Username)
			v.Set("password", o.Password)
			method, next, data = http.MethodPost, f.target(p.URL), v
		case "/consent":
			val, ok := f.Buttons["approve"]
			if !ok {
				return nil, fmt.Errorf("consent form without an approve button:\n%s", p)
			}
			if o.SawConsent != nil {
				*o.SawConsent = true
			}
			v := f.values()
			if o.Deny {
				for name, bv := range f.Buttons {
					if name != "approve" {
						v.Set(name, bv)
					}
				}
			} else {
				v.Set("approve", val)
			}
			method, next, data = http.MethodPost, f.target(p.URL), v
		case "/logout":
			if !o.ConfirmLogout {
				return nil, fmt.Errorf("logout confirmation shown but not expected (trail:\n  %s)\n%s", b.recent(), p)
			}
			val, ok := f.Buttons["logout"]
			if !ok {
				return nil, fmt.Errorf("logout form without a logout button:\n%s", p)
			}
			v := f.values()
			v.Set("logout", val)
			method, next, data = http.MethodPost, f.target(p.URL), v
		default:
			return nil, fmt.Errorf("page with no form to fill (trail:\n  %s)\n%s", b.recent(), p)
		}
	}
	return nil, fmt.Errorf("more than 20 hops:\n  %s", b.recent())
}

// form is an HTML form: its fields (hidden, text, password…) in order and
// its submit buttons by name.
type form struct {
	Action, Method string
	Fields         [][2]string
	Buttons        map[string]string
}

func (f *form) values() url.Values {
	v := url.Values{}
	for _, kv := range f.Fields {
		v.Add(kv[0], kv[1])
	}
	return v
}

func (f *form) target(base *url.URL) string {
	u, err := base.Parse(f.Action)
	if err != nil {
		return f.Action
	}
	return u.String()
}

func findForm(forms []*form, base *url.URL, paths ...string) (*form, string) {
	for _, f := range forms {
		if f.Method != "post" {
			continue
		}
		for _, p := range paths {
			if u, err := base.Parse(f.Action); err == nil && u.Path == p {
				return f, p
			}
		}
	}
	return nil, ""
}

var (
	formRe   = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRe  = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	buttonRe = regexp.MustCompile(`(?is)<button\b([^>]*)>`)
	attrRe   = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>` + "`" + `]+)))?`)
)

func parseAttrs(s string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(s, -1) {
		out[strings.ToLower(m[1])] = html.UnescapeString(m[2] + m[3] + m[4])
	}
	return out
}

// parseForms reads the forms of a page.
func parseForms(body string) []*form {
	var forms []*form
	for _, m := range formRe.FindAllStringSubmatch(body, -1) {
		a := parseAttrs(m[1])
		f := &form{Action: a["action"], Method: strings.ToLower(a["method"]), Buttons: map[string]string{}}
		if f.Method == "" {
			f.Method = "get"
		}
		for _, im := range inputRe.FindAllStringSubmatch(m[2], -1) {
			ia := parseAttrs(strings.TrimSuffix(im[1], "/"))
			name := ia["name"]
			if name == "" {
				continue
			}
			switch typ := strings.ToLower(ia["type"]); typ {
			case "submit", "image", "button":
				f.Buttons[name] = ia["value"]
			case "checkbox", "radio":
				if _, checked := ia["checked"]; checked {
					f.Fields = append(f.Fields, [2]string{name, ia["value"]})
				}
			default:
				f.Fields = append(f.Fields, [2]string{name, ia["value"]})
			}
		}
		for _, bm := range buttonRe.FindAllStringSubmatch(m[2], -1) {
			ba := parseAttrs(bm[1])
			if ba["name"] != "" {
				f.Buttons[ba["name"]] = ba["value"]
			}
		}
		forms = append(forms, f)
	}
	return forms
}
