package registry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sqin/sqin"
)

// MaxGenerate is the largest n Generate accepts.
const MaxGenerate = 1 << 27

// Generate emits n clearly fictitious residents of Québec, deterministically
// for a seed: the same seed always yields the same people in the same
// order, and Generate(seed, n) emits the first n people of Generate(seed,
// m) for any m ≥ n. It stops at, and returns, the first error emit returns.
// emit receives a new Person each time and may keep it.
//
// The people look real but are not:
//
//   - names are drawn from frequent Québec family names (Tremblay, Gagnon,
//     Roy, Côté…) and given names of each person's generation (Marie-Ève,
//     Élodie, François, Jérôme…), with their accents and hyphens, in NFC;
//     a minority speak English and have English names more often;
//   - sex is F or M, and rarely X; birth dates run from 1930 to 2012,
//     weighted like Québec's age pyramid;
//   - addresses are in real municipalities with a postal code whose
//     sortation area serves them (G east, H Montréal and Laval, J west and
//     south), a common street name and a civic number, Province "QC",
//     Country "CA"; the combination is random and not checked against
//     Canada Post's data;
//   - HealthNo is a health number consistent with name, birth date and sex
//     (see HealthNumber) whose administrative digits are in the range
//     reserved for fictitious people, SyntheticAdminMin–SyntheticAdminMax:
//     that is what marks the data as synthetic. Numbers are unique within
//     one run; when more than 10 people would share the first 10
//     characters, the later one's birth day is drawn again;
//   - ID is "p_" followed by 20 hexadecimal digits derived from the seed
//     and the index, unique within a seed;
//   - DeathDate and UpdatedAt are left empty.
//
// Cost: about a microsecond and two allocations per person (the Person
// and one string that backs its generated fields) and, to keep health
// numbers unique, a table of 6 to 11 bytes per person allocated once.
func Generate(seed uint64, n int, emit func(*sqin.Person) error) error {
	if emit == nil {
		return errors.New("registry.Generate: nil emit")
	}
	if n <= 0 {
		return nil
	}
	if n > MaxGenerate {
		return fmt.Errorf("registry.Generate: n = %d is larger than %d", n, MaxGenerate)
	}
	t := synthTables()
	g := generator{
		t:      t,
		r:      rand.New(rand.NewPCG(seed, 0x5351494e53594e54)), // "SQINSYNT"
		used:   newNAMTable(n),
		idTag:  uint16(mix64(seed ^ 0x6964746167)),
		idKey:  mix64(seed + 0x9e3779b97f4a7c15),
		idKey2: mix64(seed ^ 0xd1b54a32d192ed03),
		adKey:  mix64(seed ^ 0x61646d696e),
	}
	for i := range n {
		p, err := g.person(uint64(i))
		if err != nil {
			return err
		}
		if err := emit(p); err != nil {
			return err
		}
	}
	return nil
}

type generator struct {
	t      *tables
	r      *rand.Rand
	used   namTable
	idTag  uint16
	idKey  uint64
	idKey2 uint64
	adKey  uint64
}

const (
	langFR = iota
	langEN
)

func (g *generator) person(i uint64) (*sqin.Person, error) {
	t, r := g.t, g.r

	m := &municipalities[t.munis.pick(r)]
	lang := langFR
	if r.Uint32N(100) < m.enPct {
		lang = langEN
	}

	// Sex: about 0.05 % X, then slightly more women than men.
	sex, female := "M", false
	switch x := r.Uint32N(10000); {
	case x < 5:
		sex = "X"
	case x < 5+5030:
		sex, female = "F", true
	}

	yi := t.years.pick(r)
	year := firstBirthYear + yi
	doy := r.IntN(t.yearDays[yi])
	cohort := 2
	if year < 1960 {
		cohort = 0
	} else if year < 1985 {
		cohort = 1
	}

	var given *nameTable
	switch {
	case sex == "X":
		given = &t.unisex
	case lang == langEN && r.Uint32N(100) < 70:
		given = &t.enGiven[b2i(!female)][cohort]
	default:
		given = &t.frGiven[b2i(!female)][cohort]
	}
	gi := given.pick(r)

	family := &t.frFamily
	if (lang == langEN && r.Uint32N(100) < 55) || (lang == langFR && r.Uint32N(100) < 2) {
		family = &t.enFamily
	}
	fi := family.pick(r)

	// Health number: unique first 10 characters for at most 10 people.
	var admin uint32
	for try := 0; ; try++ {
		key := uint32(family.code[fi])<<21 | uint32(given.initial[gi]-'A')<<16 |
			uint32(b2i(female))<<15 | uint32(t.yearStart[yi]+doy)
		count, ok := g.used.add(key)
		if ok {
			admin = SyntheticAdminMin + uint32((mix64(uint64(key)^g.adKey)+uint64(count))%10)
			break
		}
		if try == 1000 {
			return nil, errors.New("registry.Generate: cannot keep health numbers unique")
		}
		if try >= 100 {
			yi = t.years.pick(r)
			year = firstBirthYear + yi
		}
		doy = r.IntN(t.yearDays[yi])
	}
	month, day := monthDay(year, doy)
	namMonth := month
	if female {
		namMonth += 50
	}

	// The text of every generated field, in one allocation.
	var b [64]byte
	k := copy(b[:], "p_")
	k = putHex(b[:], k, uint64(g.idTag), 4)
	k = putHex(b[:], k, mix64(i+g.idKey)^g.idKey2, 16)
	idEnd := k
	k = putDec(b[:], k, year, 4)
	b[k] = '-'
	k = putDec(b[:], k+1, month, 2)
	b[k] = '-'
	k = putDec(b[:], k+1, day, 2)
	bdEnd := k
	k += copy(b[k:], family.letters[fi][:])
	b[k] = given.initial[gi]
	k = putDec(b[:], k+1, year%100, 2)
	k = putDec(b[:], k, namMonth, 2)
	k = putDec(b[:], k, day, 2)
	k = putDec(b[:], k, int(admin), 2)
	namEnd := k
	fsa := m.fsas[r.IntN(len(m.fsas))]
	k += copy(b[k:], fsa)
	b[k] = ' '
	b[k+1] = byte('0' + r.IntN(10))
	b[k+2] = postalLetters[r.IntN(len(postalLetters))]
	b[k+3] = byte('0' + r.IntN(10))
	k += 4
	pcEnd := k
	var civic int
	switch x := r.Uint32N(100); {
	case x < 45:
		civic = 1 + r.IntN(999)
	case x < 85:
		civic = 1000 + r.IntN(4000)
	default:
		civic = 5000 + r.IntN(8000)
	}
	k = putDec(b[:], k, civic, decLen(civic))
	civicEnd := k
	unitPct := uint32(12)
	if m.weight >= 400 {
		unitPct = 30
	}
	if r.Uint32N(100) < unitPct {
		var unit int
		if r.Uint32N(100) < 60 {
			unit = 1 + r.IntN(8)
		} else {
			unit = 100*(1+r.IntN(12)) + 1 + r.IntN(20)
		}
		k = putDec(b[:], k, unit, decLen(unit))
	}
	s := string(b[:k])

	language := "fr"
	if lang == langEN {
		language = "en"
	}
	return &sqin.Person{
		ID:         s[:idEnd],
		FamilyName: family.names[fi],
		GivenName:  given.names[gi],
		BirthDate:  s[idEnd:bdEnd],
		Sex:        sex,
		HealthNo:   s[bdEnd:namEnd],
		Address: sqin.Address{
			CivicNumber:  s[pcEnd:civicEnd],
			Street:       t.streets.names[t.streets.pick(r)],
			Unit:         s[civicEnd:],
			Municipality: m.name,
			Province:     "QC",
			PostalCode:   s[namEnd:pcEnd],
			Country:      "CA",
		},
		Language: language,
	}, nil
}

// Letters Canada Post uses in postal codes (never D, F, I, O, Q, U).
const postalLetters = "ABCEGHJKLMNPRSTVWXYZ"

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mix64 is a bijective 64-bit mixing function (the SplitMix64 finalizer).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func putHex(b []byte, k int, v uint64, digits int) int {
	const hex = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		b[k+i] = hex[v&0xf]
		v >>= 4
	}
	return k + digits
}

func putDec(b []byte, k int, v, digits int) int {
	for i := digits - 1; i >= 0; i-- {
		b[k+i] = byte('0' + v%10)
		v /= 10
	}
	return k + digits
}

func decLen(v int) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

func monthDay(year, doy int) (month, day int) {
	for month = 1; ; month++ {
		d := daysIn(month, year)
		if doy < d {
			return month, doy + 1
		}
		doy -= d
	}
}

// namTable counts, for each first-10-characters key of a health number
// (28 bits), how many numbers were issued, in an open-addressing table of
// key<<4 | count.
type namTable struct {
	slots []uint32
	mask  uint32
	shift uint32
}

func newNAMTable(n int) namTable {
	bits := uint32(4)
	for 1<<bits < n+n/3+1 {
		bits++
	}
	return namTable{slots: make([]uint32, 1<<bits), mask: 1<<bits - 1, shift: 32 - bits}
}

// add records one more number for key and returns how many there were
// before; ok is false when the key already has 10.
func (t *namTable) add(key uint32) (count uint32, ok bool) {
	h := (key * 0x9e3779b1) >> t.shift
	for {
		e := t.slots[h]
		switch {
		case e == 0:
			t.slots[h] = key<<4 | 1
			return 0, true
		case e>>4 == key:
			c := e & 0xf
			if c >= 10 {
				return c, false
			}
			t.slots[h] = e + 1
			return c, true
		}
		h = (h + 1) & t.mask
	}
}

// sampler draws an index with probability proportional to its weight.
type sampler struct {
	cum   []uint32 // cumulative weights
	total uint32
}

func newSampler(weights []uint32) sampler {
	s := sampler{cum: make([]uint32, len(weights))}
	for i, w := range weights {
		s.total += w
		s.cum[i] = s.total
	}
	return s
}

func (s *sampler) pick(r *rand.Rand) int { return s.pickValue(r.Uint32N(s.total)) }

// pickValue draws with x, a uniform random value: the index whose share of
// the cumulative weights holds x modulo the total.
func (s *sampler) pickValue(x uint32) int {
	x %= s.total
	lo, hi := 0, len(s.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// nameTable is a weighted list of names with what their health number
// needs precomputed.
type nameTable struct {
	sampler
	names   []string
	letters [][3]byte // family names: first 3 letters
	code    []uint8   // family names: index of the 3 letters among all
	initial []byte    // given names: first letter
}

type tables struct {
	frFamily, enFamily nameTable
	frGiven, enGiven   [2][3]nameTable
	unisex             nameTable
	streets            nameTable
	munis              sampler
	years              sampler
	yearDays           []int
	yearStart          []int // day index of January 1st, from 1930-01-01
}

var synthTables = sync.OnceValue(buildTables)

func buildTables() *tables {
	t := new(tables)
	codes := map[[3]byte]uint8{}
	family := func(list []weightedName) nameTable {
		nt := names(list)
		for _, n := range nt.names {
			l := familyLetters(n)
			c, ok := codes[l]
			if !ok {
				if len(codes) == 128 { // 7 bits of the uniqueness key
					panic("registry: too many distinct family-name letters")
				}
				c = uint8(len(codes))
				codes[l] = c
			}
			nt.letters = append(nt.letters, l)
			nt.code = append(nt.code, c)
		}
		return nt
	}
	given := func(list []weightedName) nameTable {
		nt := names(list)
		for _, n := range nt.names {
			nt.initial = append(nt.initial, givenLetter(n))
		}
		return nt
	}
	t.frFamily = family(frFamilyNames)
	t.enFamily = family(enFamilyNames)
	for s := range 2 {
		for c := range 3 {
			t.frGiven[s][c] = given(frGiven[s][c])
			t.enGiven[s][c] = given(enGiven[s][c])
		}
	}
	t.unisex = given(unisexGiven)
	t.streets = names(streets)

	w := make([]uint32, len(municipalities))
	for i, m := range municipalities {
		w[i] = m.weight
	}
	t.munis = newSampler(w)

	w = w[:0]
	day := 0
	for y := firstBirthYear; y <= lastBirthYear; y++ {
		w = append(w, uint32(yearWeight(y)))
		d := time.Date(y+1, 1, 1, 0, 0, 0, 0, time.UTC).Sub(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC))
		t.yearStart = append(t.yearStart, day)
		t.yearDays = append(t.yearDays, int(d.Hours()/24))
		day += t.yearDays[len(t.yearDays)-1]
	}
	if day >= 1<<15 { // 15 bits of the uniqueness key
		panic("registry: birth date range too wide")
	}
	t.years = newSampler(w)
	return t
}

func names(list []weightedName) nameTable {
	nt := nameTable{names: make([]string, len(list))}
	w := make([]uint32, len(list))
	for i, n := range list {
		nt.names[i] = n.name
		w[i] = n.weight
	}
	nt.sampler = newSampler(w)
	return nt
}

// yearWeight interpolates birthYearAnchors, in hundredths.
func yearWeight(y int) int {
	a := birthYearAnchors
	for i := 1; i < len(a); i++ {
		if y <= a[i].year {
			lo, hi := a[i-1], a[i]
			return (lo.weight*100*(hi.year-y) + hi.weight*100*(y-lo.year)) / (hi.year - lo.year)
		}
	}
	return a[len(a)-1].weight * 100
}
