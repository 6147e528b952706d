package proofing

import (
	"strings"
	"unicode"
)

// Checksums a field may declare.
const (
	ChecksumNone = ""
	ChecksumLuhn = "luhn" // SIN
	ChecksumNAM  = "nam"  // health-insurance number: 4 letters and 8 digits, month consistent
)

// Normalisations a field may declare.
const (
	NormUpperAlnum = "upper-alnum" // keep letters and digits, upper-case (spaces, dashes dropped)
	NormDigits     = "digits"      // keep digits only
	NormTrim       = "trim"        // trim spaces
)

// normalize applies the field's normalisation to what the citizen typed.
func normalize(kind, s string) string {
	switch kind {
	case NormUpperAlnum:
		return strings.Map(func(r rune) rune {
			if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
				return unicode.ToUpper(r)
			}
			if r == ' ' || r == '-' || r == '.' {
				return -1
			}
			return r // kept, so that the pattern refuses it
		}, s)
	case NormDigits:
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			if r == ' ' || r == '-' || r == '.' {
				return -1
			}
			return r
		}, s)
	default:
		return strings.TrimSpace(s)
	}
}

// luhn reports whether the digits of s pass the Luhn check (SIN).
func luhn(s string) bool {
	if s == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// namShape reports whether s has the shape of a health-insurance number:
// 4 letters, 8 digits, a month (01–12, or 51–62 with +50) and a day 01–31.
func namShape(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := range 4 {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	for i := 4; i < 12; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	month := int(s[6]-'0')*10 + int(s[7]-'0')
	if month > 50 {
		month -= 50
	}
	day := int(s[8]-'0')*10 + int(s[9]-'0')
	return month >= 1 && month <= 12 && day >= 1 && day <= 31
}
