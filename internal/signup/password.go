package signup

import (
	_ "embed"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

//go:generate go run ./internal/gencommon

//go:embed common-passwords.txt
var commonList string

// common holds the embedded list of common passwords, lower-cased.
var common = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, l := range strings.Split(commonList, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			m[l] = struct{}{}
		}
	}
	return m
}()

// Password rules: length over complexity (no required character classes).
const (
	MinPassword = 12
	MaxPassword = 128
)

// Reasons a password is refused; each is a catalogue key explained in
// French and English on the page.
const (
	PwTooShort  = "signup.password.too_short"
	PwTooLong   = "signup.password.too_long"
	PwCommon    = "signup.password.common"
	PwEmail     = "signup.password.email"
	PwService   = "signup.password.service"
	PwRepeated  = "signup.password.repeated"
	PwSequences = "signup.password.sequence"
)

// CheckPassword returns "" when password is acceptable for the account
// email, otherwise the catalogue key of the reason.
func CheckPassword(password, email string) string {
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPassword:
		return PwTooShort
	case n > MaxPassword:
		return PwTooLong
	}
	p := fold(password)
	if _, ok := common[p]; ok {
		return PwCommon
	}
	// The common words with a few digits or symbols around or between
	// them (Soleil-Soleil-2026).
	core := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) {
			return r
		}
		return -1
	}, p)
	if _, ok := common[core]; ok && utf8.RuneCountInString(p)-utf8.RuneCountInString(core) <= 6 {
		return PwCommon
	}
	if local, _, _ := strings.Cut(fold(email), "@"); len(local) >= 4 && strings.Contains(p, local) {
		return PwEmail
	}
	// The service's own names with digits or symbols: sqin2026!, quebec12345.
	for _, w := range []string{"sqin", "quebec", "gouvernement", "clicsequr", "clicsecur", "motdepasse", "password"} {
		if rest, ok := strings.CutPrefix(letters(p), w); ok && !hasLetter(rest) || letters(p) == w+w {
			return PwService
		}
	}
	if distinct(p) <= 3 {
		return PwRepeated
	}
	if sequential(p) {
		return PwSequences
	}
	return ""
}

// fold lower-cases and removes accents (québec = quebec).
func fold(s string) string {
	d := norm.NFD.String(strings.ToLower(strings.TrimSpace(s)))
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, d)
}

// letters keeps letters and digits (drops separators and symbols).
func letters(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, s)
}

func hasLetter(s string) bool { return strings.IndexFunc(s, unicode.IsLetter) >= 0 }

func distinct(s string) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}

// sequential reports a password that is one run up or down (abcdefghijkl,
// 3456789012…): each character one above or below the previous.
func sequential(s string) bool {
	rs := []rune(s)
	up, down := 0, 0
	for i := 1; i < len(rs); i++ {
		d := rs[i] - rs[i-1]
		if d == 1 || d == -9 {
			up++
		}
		if d == -1 || d == 9 {
			down++
		}
	}
	return up >= len(rs)-2 || down >= len(rs)-2
}
