package registry

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/sqin/sqin"
)

// Administrative digits (the last two of a health number) that SQIN keeps
// for fictitious people. The generator only uses this range, so a number
// ending in 90–99 that comes from Generate can be recognised as synthetic;
// imports of real data can refuse it with [SyntheticHealthNumber]. The
// choice is SQIN's own, not a rule published by RAMQ.
const (
	SyntheticAdminMin = 90
	SyntheticAdminMax = 99
)

// Kinds of health-number errors, for errors.Is. ValidHealthNumber returns a
// *sqin.Error (code sqin.EInvalid) that wraps one of them; its message names
// the characters at fault and the rule they break, never the values, so it
// may be logged.
var (
	// ErrHealthNumberFormat: not 4 letters and 8 digits, or digits that
	// cannot be a month or a day.
	ErrHealthNumberFormat = errors.New("not a health number")
	// ErrHealthNumberMismatch: a well-formed number that does not match the
	// person's name, birth date or sex.
	ErrHealthNumberMismatch = errors.New("does not match the person")
	// ErrPersonData: the name, birth date or sex given to check the number
	// against is itself invalid.
	ErrPersonData = errors.New("invalid person data")
)

const opValid = "registry.ValidHealthNumber"

// HealthNumber computes a health-insurance number (NAM, RAMQ) in its compact
// form, 4 letters and 8 digits without spaces:
//
//   - the first 3 letters of the family name at birth (family), upper case, accents removed,
//     letters only (St-Pierre gives STP, D'Amours DAM), padded with X when the
//     name has fewer than 3 letters (Li gives LIX);
//   - the first letter of the first given name (Élodie gives E; X if none);
//   - the last 2 digits of the birth year;
//   - the birth month, plus 50 for sex F (X, like M, adds nothing);
//   - the birth day;
//   - admin, the 2 administrative digits.
//
// birthDate is YYYY-MM-DD. It returns "" when birthDate is not a valid date,
// sex is not F, M or X, admin is outside 0–99 or a name is not valid UTF-8.
func HealthNumber(family, given, birthDate, sex string, admin int) string {
	y, m, d, ok := parseDate(birthDate)
	if !ok || !validSex(sex) || admin < 0 || admin > 99 ||
		!utf8.ValidString(family) || !utf8.ValidString(given) {
		return ""
	}
	if sex == "F" {
		m += 50
	}
	var b [12]byte
	fam := familyLetters(family)
	copy(b[:3], fam[:])
	b[3] = givenLetter(given)
	put2(b[4:], y%100)
	put2(b[6:], m)
	put2(b[8:], d)
	put2(b[10:], admin)
	return string(b[:])
}

// ValidHealthNumber checks that nam is a well-formed health number (4
// letters and 8 digits; spaces, as in the printed form "TREM 5001 0190",
// and lower case are accepted) and that it is consistent with the person:
// family name at birth (family: a later name, married or changed, does
// not change the number) and given names, birth date (YYYY-MM-DD) and sex (F, M or X). The
// administrative digits are not checked. For sex X both the plain month
// and the month plus 50 are accepted, since the number was assigned under
// the sex first registered.
//
// Every problem found is reported in one error; see ErrHealthNumberFormat,
// ErrHealthNumberMismatch and ErrPersonData.
func ValidHealthNumber(nam, family, given, birthDate, sex string) error {
	n, problem := compactHealthNumber(nam)
	if problem != "" {
		return hnError(ErrHealthNumberFormat, problem)
	}
	nm := int(n[6]-'0')*10 + int(n[7]-'0')
	nd := int(n[8]-'0')*10 + int(n[9]-'0')
	month := nm
	if month > 50 {
		month -= 50
	}
	var bad []string
	if month < 1 || month > 12 {
		bad = append(bad, "characters 7–8 are not a month (01–12, or 51–62 for a woman)")
	} else if nd < 1 || nd > daysIn(month, 2000) { // 2000: leap year, century unknown
		bad = append(bad, "characters 9–10 are not a day of the month")
	}
	if len(bad) > 0 {
		return hnError(ErrHealthNumberFormat, bad...)
	}

	y, m, d, ok := parseDate(birthDate)
	if !ok {
		bad = append(bad, "the birth date must be a valid date written YYYY-MM-DD")
	}
	if !validSex(sex) {
		bad = append(bad, "the sex must be F, M or X")
	}
	if !utf8.ValidString(family) {
		bad = append(bad, "the family name is not valid UTF-8 text")
	}
	if !utf8.ValidString(given) {
		bad = append(bad, "the given name is not valid UTF-8 text")
	}
	if len(bad) > 0 {
		return hnError(ErrPersonData, bad...)
	}

	if fam := familyLetters(family); string(fam[:]) != string(n[:3]) {
		bad = append(bad, "characters 1–3 must be the first 3 letters of the family name at birth (accents removed, padded with X)")
	}
	if givenLetter(given) != n[3] {
		bad = append(bad, "character 4 must be the first letter of the first given name")
	}
	if int(n[4]-'0')*10+int(n[5]-'0') != y%100 {
		bad = append(bad, "characters 5–6 must be the last 2 digits of the birth year")
	}
	switch {
	case month != m:
		bad = append(bad, "characters 7–8 must be the birth month (plus 50 for sex F)")
	case sex == "F" && nm < 50:
		bad = append(bad, "characters 7–8 give the birth month without the 50 added for sex F")
	case sex == "M" && nm > 50:
		bad = append(bad, "characters 7–8 have 50 added, which marks sex F, but the sex is M")
	}
	if nd != d {
		bad = append(bad, "characters 9–10 must be the birth day")
	}
	if len(bad) > 0 {
		return hnError(ErrHealthNumberMismatch, bad...)
	}
	return nil
}

// SyntheticHealthNumber reports whether nam, a well-formed health number,
// ends with administrative digits in the range reserved for fictitious
// people (SyntheticAdminMin–SyntheticAdminMax).
func SyntheticHealthNumber(nam string) bool {
	n, problem := compactHealthNumber(nam)
	if problem != "" {
		return false
	}
	a := int(n[10]-'0')*10 + int(n[11]-'0')
	return a >= SyntheticAdminMin && a <= SyntheticAdminMax
}

// FormatHealthNumber returns the printed form "ABCD 1234 5678" of a
// well-formed number, or nam unchanged.
func FormatHealthNumber(nam string) string {
	n, problem := compactHealthNumber(nam)
	if problem != "" {
		return nam
	}
	return string(n[:4]) + " " + string(n[4:8]) + " " + string(n[8:])
}

// compactHealthNumber removes spaces, upper-cases and checks the shape.
func compactHealthNumber(nam string) (n [12]byte, problem string) {
	k := 0
	for i := 0; i < len(nam); i++ {
		c := nam[i]
		if c == ' ' {
			continue
		}
		if k == len(n) {
			return n, "a health number has 12 characters, 4 letters and 8 digits; this one is longer"
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		n[k] = c
		k++
	}
	if k < len(n) {
		return n, "a health number has 12 characters, 4 letters and 8 digits; this one is shorter"
	}
	for i, c := range n {
		if i < 4 && (c < 'A' || c > 'Z') {
			return n, "characters 1–4 of a health number must be letters A–Z"
		}
		if i >= 4 && (c < '0' || c > '9') {
			return n, "characters 5–12 of a health number must be digits"
		}
	}
	return n, ""
}

func hnError(kind error, problems ...string) error {
	return &sqin.Error{Code: sqin.EInvalid, Op: opValid, Message: strings.Join(problems, "; "), Err: kind}
}

func validSex(s string) bool { return s == "F" || s == "M" || s == "X" }

// parseDate reads a strict YYYY-MM-DD date.
func parseDate(s string) (y, m, d int, ok bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, 0, 0, false
	}
	return t.Year(), int(t.Month()), t.Day(), true
}

func daysIn(month, year int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func put2(b []byte, v int) {
	b[0] = byte('0' + v/10)
	b[1] = byte('0' + v%10)
}

// familyLetters returns the first 3 letters of a family name for a health
// number, padded with X.
func familyLetters(family string) [3]byte {
	b := [3]byte{'X', 'X', 'X'}
	letters(family, b[:])
	return b
}

// givenLetter returns the first letter of a given name, X if it has none.
func givenLetter(given string) byte {
	b := [1]byte{'X'}
	letters(given, b[:])
	return b[0]
}

// letters fills dst with the first upper-case letters A–Z of name once
// decomposed and stripped of its accents (combining marks); letters with
// no decomposition are spelled out (Œ gives OE), everything else (spaces,
// hyphens, apostrophes, digits, other scripts) is skipped. It returns how
// many bytes it wrote.
func letters(name string, dst []byte) int {
	k := 0
	var buf [32]byte
	for _, r := range name {
		if k == len(dst) {
			break
		}
		if r < utf8.RuneSelf {
			k = letter(r, dst, k)
			continue
		}
		// NFKD also unfolds compatibility forms (ligatures, full-width
		// letters). Decomposing one character at a time gives the letters
		// the whole name's decomposition gives (only the order of
		// combining marks, which are dropped, can differ) without
		// transforming the whole name.
		var rb [utf8.UTFMax]byte
		n := utf8.EncodeRune(rb[:], r)
		for _, d := range string(norm.NFKD.Append(buf[:0], rb[:n]...)) {
			if k == len(dst) {
				break
			}
			if !unicode.Is(unicode.Mn, d) {
				k = letter(d, dst, k)
			}
		}
	}
	return k
}

// letter appends to dst at k what r gives (an upper-case letter A–Z, a
// spelled-out letter, or nothing) and returns the new length.
func letter(r rune, dst []byte, k int) int {
	var sp string
	switch {
	case 'A' <= r && r <= 'Z':
		dst[k] = byte(r)
		return k + 1
	case 'a' <= r && r <= 'z':
		dst[k] = byte(r - 'a' + 'A')
		return k + 1
	case r == 'Œ' || r == 'œ':
		sp = "OE"
	case r == 'Æ' || r == 'æ':
		sp = "AE"
	case r == 'ß' || r == 'ẞ':
		sp = "SS"
	case r == 'Þ' || r == 'þ':
		sp = "TH"
	case r == 'Ø' || r == 'ø':
		sp = "O"
	case r == 'Ł' || r == 'ł':
		sp = "L"
	case r == 'Đ' || r == 'đ':
		sp = "D"
	case r == 'ı':
		sp = "I"
	}
	return k + copy(dst[k:], sp)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// NormalizeName returns a name in Unicode NFC with surrounding spaces
// removed, inner runs of white space reduced to one space and typographic
// apostrophes (’) made straight: the form names are stored and compared in.
func NormalizeName(s string) string {
	s = norm.NFC.String(strings.ReplaceAll(s, "’", "'"))
	return strings.Join(strings.Fields(s), " ")
}

// SameName reports whether two names are equal once normalised and
// case-folded, i.e. have the same NameKey. Accents count: Cote is not Côté.
func SameName(a, b string) bool {
	return NameKey(a) == NameKey(b)
}

// RegistryNameKey is NameKey for names read from the registry, remembered:
// the claimed-identity lookup compares a citizen's name with every person
// born that day (about 330 at 9 million people), and NameKey costs about
// 0.7 µs and seven allocations a name, while registry names repeat (family
// names above all). The cache holds up to nameKeysMax names and starts
// over when full.
func RegistryNameKey(s string) string {
	m := nameKeys.Load()
	if k, ok := m.Load(s); ok {
		return k.(string)
	}
	k := NameKey(s)
	if nameKeysLen.Add(1) > nameKeysMax {
		// Start over; concurrent callers may still add to the old map,
		// which is dropped with them.
		nameKeys.Store(new(sync.Map))
		nameKeysLen.Store(0)
		m = nameKeys.Load()
	}
	m.Store(s, k)
	return k
}

// nameKeysMax bounds RegistryNameKey's cache (a few MB).
const nameKeysMax = 1 << 16

var (
	nameKeys    = func() *atomic.Pointer[sync.Map] { p := new(atomic.Pointer[sync.Map]); p.Store(new(sync.Map)); return p }()
	nameKeysLen atomic.Int64
)

// NameKey is the one canonical form in which names are compared and
// counted: NormalizeName, then NFKC, full Unicode case folding and NFKC
// again (Unicode's toNFKC_Casefold, without its removal of ignorables), so
// that every spelling that matches a registry name has the same key: "ſ"
// and "S" fold to "s", "ß" to "ss", "ﬁ" to "fi", final sigma to sigma.
// The registry lookup and the per-person limits use it, so that a variant
// that matches a person is counted under the same key as the plain name.
func NameKey(s string) string {
	s = norm.NFKC.String(NormalizeName(s))
	s = norm.NFKC.String(cases.Fold().String(s))
	return strings.Join(strings.Fields(s), " ")
}
