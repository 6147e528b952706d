package registry

import (
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/sqin/sqin"
)

func generate(t testing.TB, seed uint64, n int) []*sqin.Person {
	t.Helper()
	var ps []*sqin.Person
	if err := Generate(seed, n, func(p *sqin.Person) error { ps = append(ps, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ps) != n {
		t.Fatalf("emitted %d people, want %d", len(ps), n)
	}
	return ps
}

func TestGenerateDeterministic(t *testing.T) {
	a := generate(t, 42, 2000)
	b := generate(t, 42, 2000)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs with the same seed differ")
	}
	prefix := generate(t, 42, 500)
	if !reflect.DeepEqual(prefix, a[:500]) {
		t.Fatal("Generate(seed, 500) is not the start of Generate(seed, 2000)")
	}
	c := generate(t, 43, 2000)
	same := 0
	for i := range a {
		if a[i].HealthNo == c[i].HealthNo || a[i].ID == c[i].ID {
			same++
		}
	}
	if same > 5 {
		t.Fatalf("seeds 42 and 43 share %d of 2000 people", same)
	}
	for _, p := range a[:3] {
		t.Logf("%+v", *p)
	}
}

var (
	idRE     = regexp.MustCompile(`^p_[0-9a-f]{20}$`)
	postalRE = regexp.MustCompile(`^[GHJ][0-9][ABCEGHJ-NPRSTV-Z] [0-9][ABCEGHJ-NPRSTV-Z][0-9]$`)
	civicRE  = regexp.MustCompile(`^[1-9][0-9]{0,4}$`)
	unitRE   = regexp.MustCompile(`^([1-9][0-9]{0,3})?$`)
)

func TestGeneratePeople(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	fsaOf := map[string][]string{}
	for _, m := range municipalities {
		fsaOf[m.name] = m.fsas
	}
	ids := make(map[string]bool, n)
	nams := make(map[string]bool, n)
	var women, x, en, hPostal, units, accents int
	family := map[string]int{}
	municipality := map[string]int{}
	yearSum := 0
	i := 0
	err := Generate(7, n, func(p *sqin.Person) error {
		i++
		if !idRE.MatchString(p.ID) || ids[p.ID] {
			t.Fatalf("person %d: bad or repeated ID %q", i, p.ID)
		}
		ids[p.ID] = true
		if err := ValidHealthNumber(p.HealthNo, p.FamilyName, p.GivenName, p.BirthDate, p.Sex); err != nil {
			t.Fatalf("person %d %+v: %v", i, *p, err)
		}
		if !SyntheticHealthNumber(p.HealthNo) || len(p.HealthNo) != 12 || nams[p.HealthNo] {
			t.Fatalf("person %d: health number %q not synthetic, not compact or repeated", i, p.HealthNo)
		}
		nams[p.HealthNo] = true
		if p.BirthDate < "1930-01-01" || p.BirthDate > "2012-12-31" {
			t.Fatalf("person %d: birth date %s", i, p.BirthDate)
		}
		for _, s := range []string{p.FamilyName, p.GivenName, p.Address.Street, p.Address.Municipality} {
			if !norm.NFC.IsNormalString(s) || NormalizeName(s) != s || s == "" {
				t.Fatalf("person %d: %q is not a normalised name", i, s)
			}
		}
		a := p.Address
		if !postalRE.MatchString(a.PostalCode) || !slices.Contains(fsaOf[a.Municipality], a.PostalCode[:3]) {
			t.Fatalf("person %d: postal code %q for %s", i, a.PostalCode, a.Municipality)
		}
		if !civicRE.MatchString(a.CivicNumber) || !unitRE.MatchString(a.Unit) || a.Province != "QC" || a.Country != "CA" || a.Street == "" {
			t.Fatalf("person %d: address %+v", i, a)
		}
		if p.DeathDate != "" || !p.UpdatedAt.IsZero() {
			t.Fatalf("person %d: death date or update time set", i)
		}
		switch p.Sex {
		case "F":
			women++
		case "X":
			x++
		case "M":
		default:
			t.Fatalf("person %d: sex %q", i, p.Sex)
		}
		switch p.Language {
		case "en":
			en++
		case "fr":
		default:
			t.Fatalf("person %d: language %q", i, p.Language)
		}
		if a.PostalCode[0] == 'H' {
			hPostal++
		}
		if a.Unit != "" {
			units++
		}
		if !isASCII(p.FamilyName + p.GivenName) {
			accents++
		}
		family[p.FamilyName]++
		municipality[a.Municipality]++
		yearSum += int(p.BirthDate[0]-'0')*1000 + int(p.BirthDate[1]-'0')*100 + int(p.BirthDate[2]-'0')*10 + int(p.BirthDate[3]-'0')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pct := func(k int) float64 { return 100 * float64(k) / float64(n) }
	check := func(what string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.2f, want between %v and %v", what, got, lo, hi)
		}
	}
	check("% women", pct(women), 47, 53)
	check("% sex X", pct(x), 0.005, 0.2)
	check("% English", pct(en), 5, 20)
	check("% postal codes H", pct(hPostal), 30, 50)
	check("% with a unit", pct(units), 10, 30)
	check("% names with accents", pct(accents), 20, 80)
	check("mean birth year", float64(yearSum)/float64(n), 1968, 1985)
	if top := maxKey(family); top != "Tremblay" {
		t.Errorf("most frequent family name %q, want Tremblay", top)
	}
	if top := maxKey(municipality); top != "Montréal" {
		t.Errorf("most frequent municipality %q, want Montréal", top)
	}
}

func maxKey(m map[string]int) string {
	best, k := -1, ""
	for s, c := range m {
		if c > best || (c == best && s < k) {
			best, k = c, s
		}
	}
	return k
}

func TestGenerateEmitError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := Generate(1, 100, func(*sqin.Person) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 10 {
		t.Fatalf("err %v after %d calls, want stop after 10", err, calls)
	}
}

func TestGenerateArguments(t *testing.T) {
	called := false
	emit := func(*sqin.Person) error { called = true; return nil }
	for _, n := range []int{0, -5} {
		if err := Generate(1, n, emit); err != nil || called {
			t.Errorf("n = %d: err %v, called %v", n, err, called)
		}
	}
	if err := Generate(1, MaxGenerate+1, emit); err == nil || called {
		t.Errorf("n too large: err %v, called %v", err, called)
	}
	if err := Generate(1, 1, nil); err == nil {
		t.Error("nil emit accepted")
	}
}

func TestNAMTable(t *testing.T) {
	tab := newNAMTable(3)
	seen := map[uint64]bool{}
	const key = 0xabcdef1
	for i := range 10 {
		c, ok := tab.add(key)
		if !ok || c != uint32(i) {
			t.Fatalf("add %d: count %d, ok %v", i, c, ok)
		}
		admin := SyntheticAdminMin + (mix64(key^99)+uint64(c))%10
		if seen[admin] {
			t.Fatalf("admin digits %d repeated", admin)
		}
		seen[admin] = true
	}
	if _, ok := tab.add(key); ok {
		t.Fatal("an 11th number for one key was accepted")
	}
	if c, ok := tab.add(0); !ok || c != 0 {
		t.Fatalf("key 0: count %d, ok %v", c, ok)
	}
}

func TestTables(t *testing.T) {
	tb := synthTables()
	if len(tb.yearDays) != lastBirthYear-firstBirthYear+1 || tb.yearDays[2000-firstBirthYear] != 366 || tb.yearDays[1930-firstBirthYear] != 365 {
		t.Fatal("year table wrong")
	}
	if yearWeight(1930) != 400 || yearWeight(1932) != 640 || yearWeight(2012) != 11000 {
		t.Errorf("yearWeight: %d %d %d", yearWeight(1930), yearWeight(1932), yearWeight(2012))
	}
	for _, m := range municipalities {
		for _, f := range m.fsas {
			if len(f) != 3 || !strings.ContainsRune("GHJ", rune(f[0])) {
				t.Errorf("%s: FSA %q", m.name, f)
			}
		}
	}
	if m, d := monthDay(2000, 59); m != 2 || d != 29 {
		t.Errorf("monthDay(2000, 59) = %d-%d", m, d)
	}
	if m, d := monthDay(2001, 364); m != 12 || d != 31 {
		t.Errorf("monthDay(2001, 364) = %d-%d", m, d)
	}
}

var sink *sqin.Person

// BenchmarkGenerate measures one person per op.
func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	if err := Generate(1, b.N, func(p *sqin.Person) error { sink = p; return nil }); err != nil {
		b.Fatal(err)
	}
}
