package web

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strings"

	"golang.org/x/text/language"
)

// Languages SQIN speaks, French first.
var Languages = []string{"fr", "en"}

var matcher = language.NewMatcher([]language.Tag{language.French, language.English})

// Catalog holds translated messages per language.
type Catalog struct {
	msgs map[string]map[string]string // lang -> key -> text
}

// LoadCatalog reads locales/<lang>.json from fsys. Every key of the French
// catalogue must exist in every other one.
func LoadCatalog(fsys fs.FS) (*Catalog, error) {
	c := &Catalog{msgs: map[string]map[string]string{}}
	for _, l := range Languages {
		b, err := fs.ReadFile(fsys, "locales/"+l+".json")
		if err != nil {
			return nil, fmt.Errorf("web: catalogue %s: %w", l, err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("web: catalogue %s: %w", l, err)
		}
		c.msgs[l] = m
	}
	for k := range c.msgs["fr"] {
		for _, l := range Languages[1:] {
			if _, ok := c.msgs[l][k]; !ok {
				return nil, fmt.Errorf("web: message %q missing in %s", k, l)
			}
		}
	}
	return c, nil
}

// T returns the message key in lang, formatted with args; the key itself
// when it is unknown, so a missing translation is visible, never blank.
func (c *Catalog) T(lang, key string, args ...any) string {
	s, ok := c.msgs[lang][key]
	if !ok {
		if s, ok = c.msgs["fr"][key]; !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Has reports whether key exists.
func (c *Catalog) Has(key string) bool { _, ok := c.msgs["fr"][key]; return ok }

// LangCookie remembers the chosen language.
const LangCookie = "sqin_lang"

// PickLang chooses the page language: an explicit ?lang=, then the
// ui_locales hint, then the cookie, then Accept-Language; French otherwise.
func PickLang(r *http.Request, uiLocales string) string {
	if l := normLang(r.URL.Query().Get("lang")); l != "" {
		return l
	}
	for _, l := range strings.Fields(uiLocales) {
		if n := normLang(l); n != "" {
			return n
		}
	}
	if c, err := r.Cookie(LangCookie); err == nil {
		if l := normLang(c.Value); l != "" {
			return l
		}
	}
	if al := r.Header.Get("Accept-Language"); al != "" {
		tags, _, err := language.ParseAcceptLanguage(al)
		if err == nil && len(tags) > 0 {
			_, i, conf := matcher.Match(tags...)
			if conf != language.No {
				return Languages[i]
			}
		}
	}
	return "fr"
}

func normLang(s string) string {
	s = strings.ToLower(s)
	if len(s) > 2 && (s[2] == '-' || s[2] == '_') {
		s = s[:2]
	}
	for _, l := range Languages {
		if s == l {
			return l
		}
	}
	return ""
}
