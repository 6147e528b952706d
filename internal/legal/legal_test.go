package legal

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustWhen(t *testing.T, s string) time.Time {
	t.Helper()
	w, err := ParseWhen(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func sample(t *testing.T) *Authorisation {
	a := &Authorisation{
		Ref: "D-1234-2026", Title: "Expérimentation", Purpose: "allocation-famille",
		LegalBasis: "Loi 95, art. 3", Source: "Fichier des personnes assurées",
		Recipients: []string{"client:svc-a", "body:mfa", "client:svc-a"},
		Attributes: []string{"family_name", "birth_date", "given_names"},
		From:       mustWhen(t, "2026-12-01"), To: mustWhen(t, "2027-04-01"),
	}
	a.Normalize()
	return a
}

func TestParseWhen(t *testing.T) {
	// Midnight in Québec: EST (-05:00) in winter, EDT (-04:00) in summer.
	for s, want := range map[string]string{
		"2027-04-01":                "2027-04-01T04:00:00Z",
		"2026-12-01":                "2026-12-01T05:00:00Z",
		"2027-04-01T00:00:00-04:00": "2027-04-01T04:00:00Z",
		"2027-04-01T12:30:00Z":      "2027-04-01T12:30:00Z",
	} {
		if got := mustWhen(t, s).UTC().Format(time.RFC3339); got != want {
			t.Errorf("ParseWhen(%q) = %s, want %s", s, got, want)
		}
	}
	for _, s := range []string{"", "2027-13-01", "01/04/2027", "demain"} {
		if _, err := ParseWhen(s); err == nil {
			t.Errorf("ParseWhen(%q) accepted", s)
		}
	}
}

func TestValidate(t *testing.T) {
	known := func(n string) bool { return n != "shoe_size" }
	if err := sample(t).Validate(known); err != nil {
		t.Fatalf("valid authorisation refused: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Authorisation)
		want string
	}{
		"empty ref":          {func(a *Authorisation) { a.Ref = "" }, "reference"},
		"ref with newline":   {func(a *Authorisation) { a.Ref = "D-1\n2" }, "reference"},
		"long ref":           {func(a *Authorisation) { a.Ref = strings.Repeat("x", 65) }, "reference"},
		"no title":           {func(a *Authorisation) { a.Title = "  " }, "title is required"},
		"control in basis":   {func(a *Authorisation) { a.LegalBasis = "a\x00b" }, "legal basis"},
		"purpose not a code": {func(a *Authorisation) { a.Purpose = "Allocation famille" }, "purpose"},
		"no recipients":      {func(a *Authorisation) { a.Recipients = nil }, "recipients"},
		"bare recipient":     {func(a *Authorisation) { a.Recipients = []string{"svc-a"} }, "recipient"},
		"empty recipient":    {func(a *Authorisation) { a.Recipients = []string{"body:"} }, "recipient"},
		"no attributes":      {func(a *Authorisation) { a.Attributes = nil }, "attributes"},
		"unknown attribute":  {func(a *Authorisation) { a.Attributes = []string{"shoe_size"} }, "shoe_size"},
		"malformed attr":     {func(a *Authorisation) { a.Attributes = []string{"Family Name"} }, "catalogue"},
		"no end":             {func(a *Authorisation) { a.To = time.Time{} }, "period"},
		"end before start":   {func(a *Authorisation) { a.To = a.From.Add(-time.Hour) }, "period"},
		"empty period":       {func(a *Authorisation) { a.To = a.From }, "period"},
	} {
		t.Run(name, func(t *testing.T) {
			a := sample(t)
			tc.edit(a)
			a.Normalize()
			err := a.Validate(known)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	a := sample(t)
	if !slices.Equal(a.Recipients, []string{"body:mfa", "client:svc-a"}) {
		t.Errorf("recipients %v", a.Recipients)
	}
	if !slices.Equal(a.Attributes, []string{"birth_date", "family_name", "given_names"}) {
		t.Errorf("attributes %v", a.Attributes)
	}
	if a.From.Location() != time.UTC {
		t.Error("From not in UTC")
	}
}

func TestDecide(t *testing.T) {
	a := sample(t) // svc-a and body mfa; family_name, birth_date, given_names; Dec 1 to Apr 1
	b := sample(t)
	b.Ref, b.Recipients, b.Attributes = "A-0001", []string{"client:svc-c"}, []string{"family_name"}
	b.Normalize()
	consentable := func(n string) bool { return n == "address" || n == "family_name" }
	during := mustWhen(t, "2027-01-15")
	lastInstant := mustWhen(t, "2027-04-01").Add(-time.Millisecond)
	for _, tc := range []struct {
		name string
		now  time.Time
		req  Request
		want map[string]string // attribute → basis, or "-" + reason
	}{
		{"covered client", during, Request{ClientID: "svc-a", Purpose: "allocation-famille", Attributes: []string{"family_name", "birth_date"}},
			map[string]string{"family_name": "D-1234-2026", "birth_date": "D-1234-2026"}},
		{"covered through its public body", during, Request{ClientID: "svc-b", Body: "mfa", Purpose: "allocation-famille", Attributes: []string{"given_names"}},
			map[string]string{"given_names": "D-1234-2026"}},
		{"attribute not covered", during, Request{ClientID: "svc-a", Purpose: "allocation-famille", Attributes: []string{"address"}},
			map[string]string{"address": "-" + WithheldNoAuthorisation}},
		{"other purpose", during, Request{ClientID: "svc-a", Purpose: "permis", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "-" + WithheldNoAuthorisation}},
		{"no declared purpose", during, Request{ClientID: "svc-a", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "-" + WithheldNoPurpose}},
		{"other client, other body", during, Request{ClientID: "svc-x", Body: "rq", Purpose: "allocation-famille", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "-" + WithheldNoAuthorisation}},
		{"body name used as a client id", during, Request{ClientID: "mfa", Purpose: "allocation-famille", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "-" + WithheldNoAuthorisation}},
		{"before it starts", mustWhen(t, "2026-11-30"), Request{ClientID: "svc-a", Purpose: "allocation-famille", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "-" + WithheldNotInForce}},
		{"its first instant", mustWhen(t, "2026-12-01"), Request{ClientID: "svc-a", Purpose: "allocation-famille", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "D-1234-2026"}},
		{"its last instant", lastInstant, Request{ClientID: "svc-a", Purpose: "allocation-famille", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "D-1234-2026"}},
		{"midnight it ends", mustWhen(t, "2027-04-01"), Request{ClientID: "svc-a", Purpose: "allocation-famille", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "-" + WithheldNotInForce}},
		{"expired, consent allowed", mustWhen(t, "2027-05-01"), Request{ClientID: "svc-a", Purpose: "allocation-famille", Attributes: []string{"family_name", "birth_date"}, Consent: "c-9", ConsentAllowed: consentable},
			map[string]string{"family_name": "consent:c-9", "birth_date": "-" + WithheldNotInForce}},
		{"consent where the law allows it", during, Request{ClientID: "svc-z", Purpose: "x", Attributes: []string{"address", "birth_date"}, Consent: "c-1", ConsentAllowed: consentable},
			map[string]string{"address": "consent:c-1", "birth_date": "-" + WithheldNoAuthorisation}},
		{"consent without a rule", during, Request{ClientID: "svc-z", Purpose: "x", Attributes: []string{"address"}, Consent: "c-1"},
			map[string]string{"address": "-" + WithheldNoAuthorisation}},
		{"authorisation wins over consent", during, Request{ClientID: "svc-a", Purpose: "allocation-famille", Attributes: []string{"family_name"}, Consent: "c-1", ConsentAllowed: consentable},
			map[string]string{"family_name": "D-1234-2026"}},
		{"two authorisations: earliest reference", during, Request{ClientID: "svc-c", Purpose: "allocation-famille", Attributes: []string{"family_name"}},
			map[string]string{"family_name": "A-0001"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide([]*Authorisation{a, b}, tc.now, tc.req)
			got := map[string]string{}
			for _, r := range d.Released {
				got[r.Attribute] = r.Basis
			}
			for _, w := range d.Withheld {
				got[w.Attribute] = "-" + w.Reason
			}
			if len(got) != len(tc.want) || len(d.Released)+len(d.Withheld) != len(tc.req.Attributes) {
				t.Fatalf("decision %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
				if d.Allowed(k) != !strings.HasPrefix(v, "-") {
					t.Errorf("Allowed(%s) disagrees", k)
				}
			}
		})
	}
}

func TestBases(t *testing.T) {
	d := Decision{Released: []Release{{"a", "D-2"}, {"b", "consent:c"}, {"c", "D-2"}}}
	if got := d.Bases(); !slices.Equal(got, []string{"D-2", "consent:c"}) {
		t.Fatalf("Bases = %v", got)
	}
}
