package proofing

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sqin/sqin"
)

func TestDefaultCatalogue(t *testing.T) {
	c := DefaultCatalogue()
	var ids []string
	for _, s := range c.Secrets {
		ids = append(ids, s.ID+"/"+s.Verify)
	}
	want := []string{"health-card/local", "sin/remote", "notice-of-assessment/remote", "driving-licence/local"}
	if !slices.Equal(ids, want) {
		t.Fatalf("secrets %v, want %v", ids, want)
	}
}

func TestNormalize(t *testing.T) {
	c := DefaultCatalogue()
	for _, tc := range []struct {
		secret string
		in     map[string]string
		want   []string
		bad    string // field named in the error
	}{
		{"health-card", map[string]string{"nam": "trem 5607 1512", "expiry": "2028 05"}, []string{"TREM56071512", "202805"}, ""},
		{"health-card", map[string]string{"nam": "TREM-5657-1512", "expiry": "2028-05"}, []string{"TREM56571512", "202805"}, ""},
		{"health-card", map[string]string{"nam": "TREM 5613 1512", "expiry": "2028 05"}, nil, "nam"},  // month 13
		{"health-card", map[string]string{"nam": "TRÉM56071512", "expiry": "2028 05"}, nil, "nam"},    // accent
		{"health-card", map[string]string{"nam": "TREM56071512", "expiry": "2028 13"}, nil, "expiry"}, // month 13
		{"health-card", map[string]string{"nam": "TREM56071512"}, nil, "expiry"},
		{"sin", map[string]string{"sin": "046 454 286"}, []string{"046454286"}, ""},
		{"sin", map[string]string{"sin": "046 454 287"}, nil, "sin"}, // Luhn
		{"sin", map[string]string{"sin": "04645428"}, nil, "sin"},
		{"sin", map[string]string{"sin": "046454286\n"}, nil, "sin"},
		{"driving-licence", map[string]string{"number": "t1234 567890 12"}, []string{"T123456789012"}, ""},
		{"notice-of-assessment", map[string]string{"reference": "ab12cd34"}, []string{"AB12CD34"}, ""},
		{"notice-of-assessment", map[string]string{"reference": strings.Repeat("A", 200)}, nil, "reference"},
	} {
		s, ok := c.Secret(tc.secret)
		if !ok {
			t.Fatalf("no secret %s", tc.secret)
		}
		got, err := s.Normalize(tc.in)
		if tc.bad != "" {
			if !errors.Is(err, ErrFormat) || !strings.HasSuffix(err.Error(), ": "+tc.bad) {
				t.Errorf("%s %v: error %v, want a format error on %s", tc.secret, tc.in, err, tc.bad)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s %v = %v, %v; want %v", tc.secret, tc.in, got, err, tc.want)
		}
	}
}

func TestLuhn(t *testing.T) {
	for s, want := range map[string]bool{"046454286": true, "130692544": true, "046454287": false, "": false, "04645428a": false} {
		if luhn(s) != want {
			t.Errorf("luhn(%q) != %v", s, want)
		}
	}
}

func TestLevel(t *testing.T) {
	c := DefaultCatalogue()
	for _, tc := range []struct {
		proofs []string
		want   sqin.LoA
	}{
		{nil, sqin.LoA1},
		{[]string{"health-card"}, sqin.LoA1},
		{[]string{"sin", "notice-of-assessment"}, sqin.LoA1}, // neither held with the registry
		{[]string{"sin", "sin"}, sqin.LoA1},                  // one proof counted once
		{[]string{"health-card", "sin"}, sqin.LoA2},
		{[]string{"driving-licence", "notice-of-assessment"}, sqin.LoA2},
		{[]string{"mail-code"}, sqin.LoA2},
	} {
		if got := c.Level(tc.proofs); got != tc.want {
			t.Errorf("Level(%v) = %d, want %d", tc.proofs, got, tc.want)
		}
	}
}

func TestParseCatalogueErrors(t *testing.T) {
	base := string(defaultCatalogue)
	known := func(a string) bool { return a != "shoe_size" }
	for name, tc := range map[string]struct{ old, new, want string }{
		"unknown member":     {`"holder": "SAAQ"`, `"holder": "SAAQ", "colour": "blue"`, "unknown field"},
		"duplicate id":       {`"id": "sin"`, `"id": "health-card"`, "declared twice"},
		"reserved id":        {`"id": "sin"`, `"id": "mail-code"`, "id"},
		"unanchored":         {`"pattern": "^[0-9]{9}$"`, `"pattern": "[0-9]{9}"`, "anchored"},
		"bad regexp":         {`"pattern": "^[0-9]{9}$"`, `"pattern": "^[0-9{9}$"`, "pattern"},
		"unknown checksum":   {`"checksum": "luhn"`, `"checksum": "crc"`, "unknown checksum"},
		"unknown attribute":  {`"match": ["family_name", "birth_date"]`, `"match": ["shoe_size"]`, "not a registry attribute"},
		"remote over http":   {`https://verification.revenuquebec.example/v1/match/sin`, `http://verification.example/sin`, "https"},
		"no verify":          {`"verify": "local"`, `"verify": "magic"`, "verify"},
		"no english label":   {`"en": "Driver's licence"}`, `"en": ""}`, "French and English"},
		"bad duration":       {`"open_for": "30s"`, `"open_for": "soon"`, "duration"},
		"ladder unknown":     {`"one_of": ["health-card", "driving-licence"]`, `"one_of": ["passport"]`, "unknown proof"},
		"ladder min too big": {`"min": 1, "from": ["mail-code"]`, `"min": 2, "from": ["mail-code"]`, "min 2"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("the built-in catalogue no longer contains %s", tc.old)
			}
			_, err := ParseCatalogue(strings.NewReader(strings.Replace(base, tc.old, tc.new, 1)), known)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
