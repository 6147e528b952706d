// Package proofing is identity proofing against the registry: the
// declarative catalogue of shared secrets (facts only the citizen and one
// public body know), how each is checked (locally against keyed hashes the
// holder delivered, or remotely by the holder's verification API), and the
// ladder that says which proofs reach which level of assurance.
//
// Adding a secret type is a change of configuration, not of code: the
// catalogue is a JSON file (DefaultCatalogue is the built-in one).
package proofing

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sqin/sqin"
)

// Verification kinds.
const (
	VerifyLocal  = "local"  // keyed hashes delivered by the holder (or the registry itself)
	VerifyRemote = "remote" // the holder's verification API answers match / no match
)

// ProofMailCode is the proof of a code sent by letter to the registry
// address; ladder rules name it like a secret type.
const ProofMailCode = "mail-code"

// Text is a text in French and English.
type Text struct {
	FR string `json:"fr"`
	EN string `json:"en"`
}

// In returns the text in lang ("fr" or "en"), French when missing.
func (t Text) In(lang string) string {
	if lang == "en" && t.EN != "" {
		return t.EN
	}
	return t.FR
}

// Field is one input of a secret (a secret may need two: the health-card
// number and its expiry).
type Field struct {
	Name         string `json:"name"`
	Label        Text   `json:"label"`
	Hint         Text   `json:"hint"` // format shown under the input, e.g. "XXXX 0000 0000"
	Pattern      string `json:"pattern"`
	Normalize    string `json:"normalize,omitempty"`
	Checksum     string `json:"checksum,omitempty"`
	Autocomplete string `json:"autocomplete,omitempty"`
	// Attribute, for a secret the registry itself holds, is the registry
	// attribute the field is compared with (normalised the same way).
	Attribute string `json:"attribute,omitempty"`

	re *regexp.Regexp
}

// Remote configures a holder's verification API.
type Remote struct {
	URL       string   `json:"url"`
	TokenFile string   `json:"token_file,omitempty"` // bearer token presented to the holder
	Timeout   Duration `json:"timeout,omitempty"`    // per attempt; default 2 s
	Retries   int      `json:"retries,omitempty"`    // extra attempts on timeouts and 5xx; default 1
	// The circuit opens after FailureThreshold consecutive failures and
	// stays open for OpenFor before one trial request.
	FailureThreshold int      `json:"failure_threshold,omitempty"` // default 5
	OpenFor          Duration `json:"open_for,omitempty"`          // default 30 s
}

// SecretType declares one kind of shared secret.
type SecretType struct {
	ID     string  `json:"id"`
	Holder string  `json:"holder"` // public body that holds it
	Label  Text    `json:"label"`
	Help   Text    `json:"help"`  // where to find it
	Image  string  `json:"image"` // picture of where it is printed, under /static/
	Fields []Field `json:"fields"`
	// Match names the registry attributes the secret is checked with: for
	// a local secret, those whose values (with the secret) form the keyed
	// hash; for a remote one, those sent to the holder.
	Match  []string `json:"match"`
	Verify string   `json:"verify"` // VerifyLocal or VerifyRemote
	Remote *Remote  `json:"remote,omitempty"`
}

// Rule says that Min distinct proofs taken From the listed kinds (secret
// type IDs or ProofMailCode; empty means any), including at least one of
// OneOf when it is not empty, reach Level.
type Rule struct {
	Level sqin.LoA `json:"level"`
	Min   int      `json:"min"`
	From  []string `json:"from,omitempty"`
	OneOf []string `json:"one_of,omitempty"`
}

// Catalogue is the whole proofing configuration.
type Catalogue struct {
	Secrets []SecretType `json:"secrets"`
	Ladder  []Rule       `json:"ladder"`
}

// Duration is a time.Duration written as "2s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "2s", "500ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a duration is a string such as \"2s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: %v", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

//go:embed catalogue.json
var defaultCatalogue []byte

// DefaultCatalogue returns the built-in catalogue: the health card (local,
// from the registry), the SIN (remote), the notice-of-assessment number
// (remote) and the driver's-licence number (local).
func DefaultCatalogue() *Catalogue {
	c, err := ParseCatalogue(strings.NewReader(string(defaultCatalogue)), nil)
	if err != nil {
		panic("proofing: built-in catalogue: " + err.Error())
	}
	return c
}

var idRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ParseCatalogue reads and checks a catalogue. known says whether a
// registry attribute name exists (nil accepts any).
func ParseCatalogue(r io.Reader, known func(string) bool) (*Catalogue, error) {
	var c Catalogue
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("proofing catalogue: %w", err)
	}
	if err := c.check(known); err != nil {
		return nil, fmt.Errorf("proofing catalogue: %w", err)
	}
	return &c, nil
}

func (c *Catalogue) check(known func(string) bool) error {
	if len(c.Secrets) == 0 {
		return errors.New("no secret types")
	}
	ids := map[string]bool{ProofMailCode: true}
	for i := range c.Secrets {
		s := &c.Secrets[i]
		if !idRE.MatchString(s.ID) || s.ID == ProofMailCode {
			return fmt.Errorf("secret %d: id %q: lower-case letters, digits and dashes, not %q", i, s.ID, ProofMailCode)
		}
		if ids[s.ID] {
			return fmt.Errorf("secret %q declared twice", s.ID)
		}
		ids[s.ID] = true
		if s.Holder == "" || s.Label.FR == "" || s.Label.EN == "" || s.Help.FR == "" || s.Help.EN == "" {
			return fmt.Errorf("secret %q: holder, label and help in French and English are required", s.ID)
		}
		if len(s.Fields) == 0 {
			return fmt.Errorf("secret %q: no fields", s.ID)
		}
		names := map[string]bool{}
		for j := range s.Fields {
			f := &s.Fields[j]
			if !idRE.MatchString(f.Name) || names[f.Name] {
				return fmt.Errorf("secret %q: field name %q missing, malformed or repeated", s.ID, f.Name)
			}
			names[f.Name] = true
			if f.Label.FR == "" || f.Label.EN == "" {
				return fmt.Errorf("secret %q field %q: label in French and English required", s.ID, f.Name)
			}
			if !strings.HasPrefix(f.Pattern, "^") || !strings.HasSuffix(f.Pattern, "$") {
				return fmt.Errorf("secret %q field %q: the pattern must be anchored (^…$)", s.ID, f.Name)
			}
			re, err := regexp.Compile(f.Pattern)
			if err != nil {
				return fmt.Errorf("secret %q field %q: pattern: %w", s.ID, f.Name, err)
			}
			f.re = re
			if !slices.Contains([]string{ChecksumNone, ChecksumLuhn, ChecksumNAM}, f.Checksum) {
				return fmt.Errorf("secret %q field %q: unknown checksum %q (luhn, nam)", s.ID, f.Name, f.Checksum)
			}
			if !slices.Contains([]string{"", NormUpperAlnum, NormDigits, NormTrim}, f.Normalize) {
				return fmt.Errorf("secret %q field %q: unknown normalisation %q", s.ID, f.Name, f.Normalize)
			}
			if f.Attribute != "" && (s.Verify == VerifyRemote || !slices.Contains(s.Match, f.Attribute)) {
				return fmt.Errorf("secret %q field %q: attribute %q must be one of match, on a local secret", s.ID, f.Name, f.Attribute)
			}
		}
		if len(s.Match) == 0 {
			return fmt.Errorf("secret %q: match names no registry attribute", s.ID)
		}
		for _, a := range s.Match {
			if known != nil && !known(a) {
				return fmt.Errorf("secret %q: %q is not a registry attribute", s.ID, a)
			}
		}
		switch s.Verify {
		case VerifyLocal:
			if s.Remote != nil {
				return fmt.Errorf("secret %q: a local secret has no remote settings", s.ID)
			}
		case VerifyRemote:
			if s.Remote == nil || !strings.HasPrefix(s.Remote.URL, "https://") && !strings.HasPrefix(s.Remote.URL, "http://127.0.0.1") &&
				!strings.HasPrefix(s.Remote.URL, "http://localhost") {
				return fmt.Errorf("secret %q: a remote secret needs remote.url in https (http only on loopback)", s.ID)
			}
		default:
			return fmt.Errorf("secret %q: verify is %q or %q", s.ID, VerifyLocal, VerifyRemote)
		}
	}
	if len(c.Ladder) == 0 {
		return errors.New("the ladder has no rule")
	}
	for i, r := range c.Ladder {
		if r.Level < sqin.LoA1 || r.Level > sqin.LoA3 || r.Min < 1 {
			return fmt.Errorf("ladder rule %d: level 1 to 3 and min at least 1", i)
		}
		for _, k := range append(slices.Clone(r.From), r.OneOf...) {
			if !ids[k] {
				return fmt.Errorf("ladder rule %d: unknown proof %q", i, k)
			}
		}
		if len(r.From) > 0 && r.Min > len(r.From) {
			return fmt.Errorf("ladder rule %d: min %d but only %d kinds of proof", i, r.Min, len(r.From))
		}
	}
	return nil
}

// Secret returns the secret type id.
func (c *Catalogue) Secret(id string) (*SecretType, bool) {
	for i := range c.Secrets {
		if c.Secrets[i].ID == id {
			return &c.Secrets[i], true
		}
	}
	return nil, false
}

// Level returns the highest level the distinct proofs reach (sqin.LoA1 when
// no rule applies: proofing starts from a verified email).
func (c *Catalogue) Level(proofs []string) sqin.LoA {
	have := slices.Clone(proofs)
	slices.Sort(have)
	have = slices.Compact(have)
	best := sqin.LoA1
	for _, r := range c.Ladder {
		if r.Level <= best {
			continue
		}
		n, one := 0, len(r.OneOf) == 0
		for _, p := range have {
			if len(r.From) == 0 || slices.Contains(r.From, p) {
				n++
				one = one || slices.Contains(r.OneOf, p)
			}
		}
		if n >= r.Min && one {
			best = r.Level
		}
	}
	return best
}

// ErrFormat is returned for a value that does not have the field's format.
var ErrFormat = errors.New("proofing: the value does not have the expected format")

// FormatError names the field whose value is malformed; it is ErrFormat.
type FormatError struct{ Field string }

func (e *FormatError) Error() string { return ErrFormat.Error() + ": " + e.Field }
func (e *FormatError) Unwrap() error { return ErrFormat }

// Normalize checks the values typed for secret s (by field name) and
// returns them normalised, in field order. A missing or malformed value is
// ErrFormat, naming the field.
func (s *SecretType) Normalize(values map[string]string) ([]string, error) {
	out := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		v := normalize(f.Normalize, values[f.Name])
		ok := len(v) <= 64 && f.re.MatchString(v)
		switch f.Checksum {
		case ChecksumLuhn:
			ok = ok && luhn(v)
		case ChecksumNAM:
			ok = ok && namShape(v)
		}
		if !ok {
			return nil, &FormatError{Field: f.Name}
		}
		out[i] = v
	}
	return out, nil
}
