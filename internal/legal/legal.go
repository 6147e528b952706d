// Package legal holds the legal authorisations under which registry
// attributes leave SQIN, and the rule that decides, attribute by attribute,
// whether a public body's service receives one.
//
// An authorisation (in Québec, typically a government decree authorising a
// communication of personal information for an experiment or a programme)
// names a purpose, the recipients (services or whole public bodies), the
// attributes it covers and the period it is in force. A registry attribute
// reaches a service only while an authorisation covers that service, that
// attribute and that purpose, or, for the attributes where the law allows
// it, when the citizen consented. Everything else is withheld, and the
// caller audits the refusal.
package legal

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Recipient prefixes: a recipient is one service (client) or every service
// of one public body (the clients' sector).
const (
	RecipientClient = "client:"
	RecipientBody   = "body:"
)

// Authorisation is one legal authority to communicate registry attributes.
// It is in force from From (inclusive) to To (exclusive).
type Authorisation struct {
	Ref        string    // reference, e.g. a decree number; unique; shown to citizens
	Title      string    // plain-language title
	Purpose    string    // purpose code the receiving service declares, e.g. "allocation-famille"
	LegalBasis string    // the legal text it rests on (law, section, decree)
	Source     string    // data source, e.g. the health-insurance register of insured persons
	Recipients []string  // "client:<id>" or "body:<sector>", sorted
	Attributes []string  // registry attribute names, sorted
	From, To   time.Time // in force in [From, To)
	CreatedAt  time.Time
	EndedAt    time.Time // set when ended before its term; To then equals it
}

// ErrInvalid is the error of every authorisation that cannot be recorded.
var ErrInvalid = errors.New("legal: invalid authorisation")

// Limits on the fields, in bytes; they keep the audit events that quote a
// reference small.
const (
	maxRef  = 64
	maxText = 2000
	maxList = 256
)

// Normalize sorts the lists, drops duplicates and puts times in UTC at the
// millisecond, the precision of storage.
func (a *Authorisation) Normalize() {
	norm := func(s []string) []string {
		s = slices.Clone(s)
		for i := range s {
			s[i] = strings.TrimSpace(s[i])
		}
		slices.Sort(s)
		return slices.Compact(s)
	}
	a.Recipients = norm(a.Recipients)
	a.Attributes = norm(a.Attributes)
	for _, t := range []*time.Time{&a.From, &a.To, &a.CreatedAt, &a.EndedAt} {
		if !t.IsZero() {
			*t = time.UnixMilli(t.UnixMilli()).UTC()
		}
	}
}

// Validate reports the first problem of a normalised authorisation; known
// says whether an attribute name exists in the registry catalogue (nil
// accepts any well-formed name).
func (a *Authorisation) Validate(known func(string) bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if !validRef(a.Ref) {
		return bad("reference %q: 1 to %d letters, digits, spaces or -./:_ characters", a.Ref, maxRef)
	}
	for _, f := range []struct{ name, v string }{
		{"title", a.Title}, {"purpose", a.Purpose}, {"legal basis", a.LegalBasis}, {"source", a.Source},
	} {
		if strings.TrimSpace(f.v) == "" {
			return bad("%s is required", f.name)
		}
		if len(f.v) > maxText || !utf8.ValidString(f.v) || strings.ContainsFunc(f.v, unicode.IsControl) {
			return bad("%s: at most %d bytes of text without control characters", f.name, maxText)
		}
	}
	if !validCode(a.Purpose) {
		return bad("purpose %q: a code of lower-case letters, digits and dashes", a.Purpose)
	}
	if len(a.Recipients) == 0 || len(a.Recipients) > maxList {
		return bad("between 1 and %d recipients are required", maxList)
	}
	for _, r := range a.Recipients {
		id, ok := strings.CutPrefix(r, RecipientClient)
		if !ok {
			id, ok = strings.CutPrefix(r, RecipientBody)
		}
		if !ok || id == "" || strings.ContainsFunc(id, unicode.IsSpace) || len(id) > maxRef*2 {
			return bad("recipient %q: write client:<client id> or body:<public body sector>", r)
		}
	}
	if len(a.Attributes) == 0 || len(a.Attributes) > maxList {
		return bad("between 1 and %d attributes are required", maxList)
	}
	for _, n := range a.Attributes {
		if !validCode(strings.ReplaceAll(n, "_", "-")) || (known != nil && !known(n)) {
			return bad("attribute %q is not in the registry catalogue", n)
		}
	}
	if a.From.IsZero() || a.To.IsZero() || !a.To.After(a.From) {
		return bad("the period must have a start before its end")
	}
	return nil
}

func validRef(s string) bool {
	if s == "" || len(s) > maxRef || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" -./:_", r)) {
			return false
		}
	}
	return true
}

func validCode(s string) bool {
	if s == "" || len(s) > maxRef {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// InForce reports whether a is in force at t.
func (a *Authorisation) InForce(t time.Time) bool {
	return !t.Before(a.From) && t.Before(a.To)
}

// Covers reports whether a, whatever its period, names the service (by its
// client ID or its public body's sector), the attribute and the purpose.
func (a *Authorisation) Covers(clientID, body, purpose, attribute string) bool {
	if purpose == "" || a.Purpose != purpose {
		return false
	}
	if _, ok := slices.BinarySearch(a.Attributes, attribute); !ok {
		return false
	}
	if _, ok := slices.BinarySearch(a.Recipients, RecipientClient+clientID); ok && clientID != "" {
		return true
	}
	_, ok := slices.BinarySearch(a.Recipients, RecipientBody+body)
	return ok && body != ""
}
