package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sqin/sqin"
)

func TestHealthNumber(t *testing.T) {
	tests := []struct {
		family, given, birth, sex string
		admin                     int
		want                      string
	}{
		{"Tremblay", "Jean", "1950-01-01", "M", 90, "TREJ50010190"},
		{"Côté", "Élodie", "1985-03-07", "F", 91, "COTE85530791"},
		{"St-Pierre", "Marie-Ève", "2001-12-31", "F", 99, "STPM01623199"},
		{"D'Amours", "Zoé", "2010-02-28", "F", 90, "DAMZ10522890"},
		{"Des Rosiers", "Jérôme", "1930-11-09", "M", 5, "DESJ30110905"},
		{"Li", "Wei", "1975-06-15", "M", 92, "LIXW75061592"},
		{"Ng", "", "1999-09-09", "M", 0, "NGXX99090900"},
		{"", "Ève", "2000-02-29", "F", 93, "XXXE00522993"},
		{"Öztürk", "Çağla", "1988-04-30", "F", 94, "OZTC88543094"},
		{"Œsterlé", "Ægidius", "1940-05-05", "M", 95, "OESA40050595"},
		{"Co\u0302te\u0301", "E\u0301lodie", "1985-03-07", "F", 91, "COTE85530791"}, // NFD input
		{"Ｔｒｅｍｂｌａｙ", "ﬁona", "1960-10-10", "F", 96, "TREF60601096"},                 // compatibility forms
		{"  tremblay ", " marie", "1960-10-10", "F", 96, "TREM60601096"},
		{"Сидоров", "Анна", "1970-01-01", "F", 97, "XXXX70510197"}, // no Latin letters
		{"Gagnon", "Sacha", "1991-07-04", "X", 98, "GAGS91070498"}, // X: no 50 added
	}
	for _, tt := range tests {
		got := HealthNumber(tt.family, tt.given, tt.birth, tt.sex, tt.admin)
		if got != tt.want {
			t.Errorf("HealthNumber(%q, %q, %q, %q, %d) = %q, want %q", tt.family, tt.given, tt.birth, tt.sex, tt.admin, got, tt.want)
		}
	}
}

func TestHealthNumberInvalidInput(t *testing.T) {
	tests := []struct {
		name, family, given, birth, sex string
		admin                           int
	}{
		{"no date", "Roy", "Luc", "", "M", 90},
		{"bad date", "Roy", "Luc", "1950-02-30", "M", 90},
		{"not ISO", "Roy", "Luc", "01/02/1950", "M", 90},
		{"short date", "Roy", "Luc", "1950-1-2", "M", 90},
		{"sex", "Roy", "Luc", "1950-01-02", "H", 90},
		{"sex lower case", "Roy", "Luc", "1950-01-02", "m", 90},
		{"admin high", "Roy", "Luc", "1950-01-02", "M", 100},
		{"admin negative", "Roy", "Luc", "1950-01-02", "M", -1},
		{"bad UTF-8", "R\xffoy", "Luc", "1950-01-02", "M", 90},
	}
	for _, tt := range tests {
		if got := HealthNumber(tt.family, tt.given, tt.birth, tt.sex, tt.admin); got != "" {
			t.Errorf("%s: HealthNumber = %q, want empty", tt.name, got)
		}
	}
}

func TestValidHealthNumber(t *testing.T) {
	type person struct{ family, given, birth, sex string }
	tremblay := person{"Tremblay", "Jean", "1950-01-01", "M"}
	cote := person{"Côté", "Élodie", "1985-03-07", "F"}
	sacha := person{"Gagnon", "Sacha", "1991-07-04", "X"}
	tests := []struct {
		name string
		nam  string
		p    person
		kind error    // nil: valid
		msgs []string // parts of the message
	}{
		{"valid", "TREJ50010190", tremblay, nil, nil},
		{"printed form", "TREJ 5001 0190", tremblay, nil, nil},
		{"lower case", "trej 5001 0190", tremblay, nil, nil},
		{"valid woman", "COTE85530791", cote, nil, nil},
		{"accents in NFD", "COTE85530791", person{"Co\u0302te\u0301", "E\u0301lodie", "1985-03-07", "F"}, nil, nil},
		{"admin digits not checked", "COTE85530700", cote, nil, nil},
		{"X without 50", "GAGS91070498", sacha, nil, nil},
		{"X with 50", "GAGS91570498", sacha, nil, nil},

		{"empty", "", tremblay, ErrHealthNumberFormat, []string{"shorter"}},
		{"short", "TREJ5001019", tremblay, ErrHealthNumberFormat, []string{"shorter"}},
		{"long", "TREJ500101900", tremblay, ErrHealthNumberFormat, []string{"longer"}},
		{"digit among letters", "TR3J50010190", tremblay, ErrHealthNumberFormat, []string{"characters 1–4"}},
		{"letter among digits", "TREJ50O10190", tremblay, ErrHealthNumberFormat, []string{"characters 5–12"}},
		{"dashes", "TREJ-5001-0190", tremblay, ErrHealthNumberFormat, []string{"longer"}},
		{"accented letter", "TRÉJ50010190", tremblay, ErrHealthNumberFormat, nil},
		{"month 00", "TREJ50000190", tremblay, ErrHealthNumberFormat, []string{"not a month"}},
		{"month 13", "TREJ50130190", tremblay, ErrHealthNumberFormat, []string{"not a month"}},
		{"month 50", "TREJ50500190", tremblay, ErrHealthNumberFormat, []string{"not a month"}},
		{"month 63", "TREJ50630190", tremblay, ErrHealthNumberFormat, []string{"not a month"}},
		{"day 00", "TREJ50010090", tremblay, ErrHealthNumberFormat, []string{"not a day"}},
		{"day 32", "TREJ50013290", tremblay, ErrHealthNumberFormat, []string{"not a day"}},
		{"April 31", "TREJ50043190", tremblay, ErrHealthNumberFormat, []string{"not a day"}},

		{"family", "ROYJ50010190", tremblay, ErrHealthNumberMismatch, []string{"characters 1–3", "family name"}},
		{"given", "TREP50010190", tremblay, ErrHealthNumberMismatch, []string{"character 4", "given name"}},
		{"year", "TREJ51010190", tremblay, ErrHealthNumberMismatch, []string{"characters 5–6", "year"}},
		{"month", "TREJ50020190", tremblay, ErrHealthNumberMismatch, []string{"characters 7–8", "birth month"}},
		{"woman without 50", "COTE85030791", cote, ErrHealthNumberMismatch, []string{"without the 50"}},
		{"man with 50", "TREJ50510190", tremblay, ErrHealthNumberMismatch, []string{"marks sex F"}},
		{"day", "TREJ50010290", tremblay, ErrHealthNumberMismatch, []string{"characters 9–10", "birth day"}},
		{"several", "ROYP51010290", tremblay, ErrHealthNumberMismatch, []string{"characters 1–3", "character 4", "characters 5–6", "characters 9–10"}},

		{"birth date", "TREJ50010190", person{"Tremblay", "Jean", "1950-13-01", "M"}, ErrPersonData, []string{"YYYY-MM-DD"}},
		{"sex", "TREJ50010190", person{"Tremblay", "Jean", "1950-01-01", "H"}, ErrPersonData, []string{"F, M or X"}},
		{"family UTF-8", "TREJ50010190", person{"Tre\xffmblay", "Jean", "1950-01-01", "M"}, ErrPersonData, []string{"family name"}},
		{"given UTF-8", "TREJ50010190", person{"Tremblay", "J\xffean", "1950-01-01", "M"}, ErrPersonData, []string{"given name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidHealthNumber(tt.nam, tt.p.family, tt.p.given, tt.p.birth, tt.p.sex)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("ValidHealthNumber(%q) = %v, want nil", tt.nam, err)
				}
				return
			}
			if !errors.Is(err, tt.kind) {
				t.Fatalf("ValidHealthNumber(%q) = %v, want %v", tt.nam, err, tt.kind)
			}
			if c := sqin.ErrorCode(err); c != sqin.EInvalid {
				t.Errorf("code %q, want %q", c, sqin.EInvalid)
			}
			msg := sqin.ErrorMessage(err)
			for _, part := range tt.msgs {
				if !strings.Contains(msg, part) {
					t.Errorf("message %q does not contain %q", msg, part)
				}
			}
			// Messages may be logged: they never repeat the number or the person.
			compact := strings.ToUpper(strings.ReplaceAll(tt.nam, " ", ""))
			for _, secret := range []string{compact, tt.p.family, tt.p.birth} {
				if len(secret) > 3 && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q repeats %q", err, secret)
				}
			}
		})
	}
}

func TestSyntheticAndFormat(t *testing.T) {
	if !SyntheticHealthNumber("TREJ 5001 0190") || !SyntheticHealthNumber("trej50010199") {
		t.Error("90 and 99 are synthetic")
	}
	if SyntheticHealthNumber("TREJ50010189") || SyntheticHealthNumber("TREJ500101") {
		t.Error("89 and malformed numbers are not synthetic")
	}
	if got := FormatHealthNumber("trej50010190"); got != "TREJ 5001 0190" {
		t.Errorf("FormatHealthNumber = %q", got)
	}
	if got := FormatHealthNumber("nope"); got != "nope" {
		t.Errorf("FormatHealthNumber(malformed) = %q", got)
	}
}

func TestNames(t *testing.T) {
	if got := NormalizeName("  Marie-E\u0300ve \t  Côté’s "); got != "Marie-Ève Côté's" {
		t.Errorf("NormalizeName = %q", got)
	}
	tests := []struct {
		a, b string
		same bool
	}{
		{"Côté", "CÔTÉ", true},
		{"Co\u0302te\u0301", "côté", true},
		{"St-Pierre", " st-pierre ", true},
		{"D’Amours", "D'Amours", true},
		{"Cote", "Côté", false},
		{"Marie-Ève", "Marie Ève", false},
		// Case-fold variants match, and have one key (NameKey).
		{"Sébastien", "ſébaſtien", true},
		{"Strauß", "STRAUSS", true},
		{"ΟΔΥΣΣΕΥΣ", "οδυσσευς", true},
		{"ﬁlion", "Filion", true},
		{"Gauthier\u00a0Roy", "gauthier roy", true},
		{"Sébastien", "Sebastien", false},
	}
	for _, tt := range tests {
		if got := SameName(tt.a, tt.b); got != tt.same {
			t.Errorf("SameName(%q, %q) = %v", tt.a, tt.b, got)
		}
		if got := NameKey(tt.a) == NameKey(tt.b); got != tt.same {
			t.Errorf("NameKey(%q) = %q, NameKey(%q) = %q", tt.a, NameKey(tt.a), tt.b, NameKey(tt.b))
		}
	}
}

// TestRegistryNameKey: the cached key is NameKey's, before and after the
// cache starts over.
func TestRegistryNameKey(t *testing.T) {
	names := []string{"Côté", "CÔTÉ", "Strauß", "ﬁlion", "Gauthier\u00a0Roy", "St-Pierre"}
	for i := range nameKeysMax + 100 {
		n := names[i%len(names)]
		if i >= len(names) {
			n = fmt.Sprintf("%s-%d", n, i)
		}
		if got, want := RegistryNameKey(n), NameKey(n); got != want {
			t.Fatalf("RegistryNameKey(%q) = %q, want %q", n, got, want)
		}
		if got, want := RegistryNameKey(n), NameKey(n); got != want { // from the cache
			t.Fatalf("cached RegistryNameKey(%q) = %q, want %q", n, got, want)
		}
	}
	if n := nameKeysLen.Load(); n > nameKeysMax || n < 90 {
		t.Fatalf("the cache holds %d names after starting over (bound %d)", n, nameKeysMax)
	}
}

func FuzzValidHealthNumber(f *testing.F) {
	f.Add("TREJ 5001 0190", "Tremblay", "Jean", "1950-01-01", "M", 90)
	f.Add("COTE85530791", "Côté", "Élodie", "1985-03-07", "F", 91)
	f.Add("STPM01623199", "St-Pierre", "Marie-Ève", "2001-12-31", "F", 99)
	f.Add("GAGS91570498", "Gagnon", "Sacha", "1991-07-04", "X", 98)
	f.Add("", "", "", "", "", 0)
	f.Add("ŒŒŒŒ12345678", "Œ\xff", "ﬁ", "2000-02-29", "F", -1)
	f.Fuzz(func(t *testing.T, nam, family, given, birth, sex string, admin int) {
		err := ValidHealthNumber(nam, family, given, birth, sex)
		if err != nil && sqin.ErrorCode(err) != sqin.EInvalid {
			t.Fatalf("error without code invalid: %v", err)
		}
		_ = SyntheticHealthNumber(nam)
		if f := FormatHealthNumber(nam); err == nil && len(f) != 14 {
			t.Fatalf("accepted %q but formatted it as %q", nam, f)
		}
		h := HealthNumber(family, given, birth, sex, admin)
		if h == "" {
			return
		}
		if err := ValidHealthNumber(h, family, given, birth, sex); err != nil {
			t.Fatalf("HealthNumber(%q, %q, %q, %q, %d) = %q, which ValidHealthNumber refuses: %v", family, given, birth, sex, admin, h, err)
		}
		if err := ValidHealthNumber(FormatHealthNumber(h), family, given, birth, sex); err != nil {
			t.Fatalf("printed form of %q refused: %v", h, err)
		}
		if SyntheticHealthNumber(h) != (admin >= SyntheticAdminMin && admin <= SyntheticAdminMax) {
			t.Fatalf("SyntheticHealthNumber(%q) wrong for admin %d", h, admin)
		}
	})
}
