package registry

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/sqin/sqin"
)

// Operations of a record. A snapshot holds only OpCreate records.
const (
	OpCreate = "create"
	OpChange = "change"
	OpDeath  = "death"
	OpRemove = "remove"
)

// MaxLineBytes is the longest line a data file may hold, newline included.
const MaxLineBytes = 4096

// Record is one line of a data file: its line number and its fields,
// indexed by the F… constants. Its strings may share one allocation.
type Record struct {
	Line   int64
	Fields [NumFields]string
	// PID is the person's internal identifier (PersonID), set by Import
	// for the records it stages.
	PID string
}

// Op, Ref: shortcuts.
func (r *Record) Op() string  { return r.Fields[FOp] }
func (r *Record) Ref() string { return r.Fields[FRef] }

// RecordError is why a line was rejected. It names the line, the field and
// the rule, never the value, so it can be logged and written to a reject
// report.
type RecordError struct {
	Line   int64
	Field  string // a CSVHeader name, or "" for the line as a whole
	Reason string
}

func (e *RecordError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Reason)
}

// ErrHeader: a CSV data file that does not start with CSVHeader. The whole
// delivery is refused.
var ErrHeader = errors.New("the data file does not start with the registry CSV header")

// Reader reads the records of a data file one at a time with bounded
// memory (one line).
type Reader struct {
	br     *bufio.Reader
	format string
	line   int64
	header bool
	fields int // fields per CSV line, as the header says
}

// NewReader reads records in format (FormatCSV or FormatJSONL) from r.
func NewReader(r io.Reader, format string) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 256<<10), format: format}
}

var (
	csvHeaderLine    = strings.Join(CSVHeader[:], ",")
	legacyHeaderLine = strings.Join(CSVHeader[:LegacyFields], ",")
)

// Next reads the next record into rec (overwriting it). At the end it
// returns io.EOF. A line that cannot be parsed returns a *RecordError (the
// caller rejects it and goes on); a missing CSV header returns ErrHeader;
// any other error is the reader's.
func (r *Reader) Next(rec *Record) error {
	for {
		line, err := r.readLine()
		if err != nil {
			return err
		}
		if r.format == FormatCSV && !r.header {
			r.header = true
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
			switch string(line) {
			case csvHeaderLine:
				r.fields = NumFields
			case legacyHeaderLine:
				r.fields = LegacyFields
			default:
				return ErrHeader
			}
			continue
		}
		rec.Line = r.line
		if line == nil {
			return &RecordError{Line: r.line, Reason: fmt.Sprintf("the line is longer than %d bytes", MaxLineBytes)}
		}
		if r.format == FormatJSONL {
			return parseJSONLine(line, rec)
		}
		return parseCSVLine(line, rec, r.fields)
	}
}

// readLine returns the next line without its end of line, or nil (and no
// error) for a line too long, which is skipped.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || (err == nil && len(line) > MaxLineBytes):
		r.line++
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = r.br.ReadSlice('\n')
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, nil
	case err == io.EOF && len(line) == 0:
		return nil, io.EOF
	case err != nil && err != io.EOF:
		return nil, err
	}
	r.line++
	if len(line) > MaxLineBytes {
		return nil, nil
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// ParseCSVLine splits one CSV line (RFC 4180 quoting, no line breaks inside
// fields) of NumFields fields into rec's fields. rec.Line is left as it is.
func ParseCSVLine(line []byte, rec *Record) error { return parseCSVLine(line, rec, NumFields) }

// parseCSVLine is ParseCSVLine for lines of want fields (NumFields or
// LegacyFields); the fields after them are empty.
func parseCSVLine(line []byte, rec *Record, want int) error {
	fail := func(reason string) error { return &RecordError{Line: rec.Line, Reason: reason} }
	for i := want; i < NumFields; i++ {
		rec.Fields[i] = ""
	}
	s := string(line)
	n, i := 0, 0
	for {
		if n == want {
			return fail(fmt.Sprintf("the line has more than %d fields", want))
		}
		if i < len(s) && s[i] == '"' {
			j, start, escaped := i+1, i+1, false
			for {
				k := strings.IndexByte(s[j:], '"')
				if k < 0 {
					return fail("a quoted field is not closed")
				}
				j += k
				if j+1 < len(s) && s[j+1] == '"' {
					escaped = true
					j += 2
					continue
				}
				break
			}
			v := s[start:j]
			if escaped {
				v = strings.ReplaceAll(v, `""`, `"`)
			}
			rec.Fields[n] = v
			n++
			i = j + 1
			if i == len(s) {
				break
			}
			if s[i] != ',' {
				return fail("a quoted field is followed by something other than a comma")
			}
			i++
			continue
		}
		k := strings.IndexByte(s[i:], ',')
		v := s[i:]
		if k >= 0 {
			v = s[i : i+k]
		}
		if strings.IndexByte(v, '"') >= 0 {
			return fail("a field that is not quoted holds a quotation mark")
		}
		rec.Fields[n] = v
		n++
		if k < 0 {
			break
		}
		i += k + 1
	}
	if n != want {
		return fail(fmt.Sprintf("the line has %d fields instead of %d", n, want))
	}
	return nil
}

type jsonRecord struct {
	Op            *string `json:"op"`
	Ref           *string `json:"ref"`
	FamilyName    *string `json:"family_name"`
	GivenNames    *string `json:"given_names"`
	BirthDate     *string `json:"birth_date"`
	Sex           *string `json:"sex"`
	NAM           *string `json:"nam"`
	CardExpiry    *string `json:"card_expiry"`
	CardSeq       *string `json:"card_seq"`
	CivicNumber   *string `json:"civic_number"`
	Street        *string `json:"street"`
	Unit          *string `json:"unit"`
	Municipality  *string `json:"municipality"`
	PostalCode    *string `json:"postal_code"`
	Language      *string `json:"language"`
	DeathDate     *string `json:"death_date"`
	EffectiveDate *string `json:"effective_date"`
	BirthFamily   *string `json:"birth_family_name"`
}

func (j *jsonRecord) fields() [NumFields]**string {
	return [NumFields]**string{&j.Op, &j.Ref, &j.FamilyName, &j.GivenNames, &j.BirthDate, &j.Sex, &j.NAM,
		&j.CardExpiry, &j.CardSeq, &j.CivicNumber, &j.Street, &j.Unit, &j.Municipality, &j.PostalCode,
		&j.Language, &j.DeathDate, &j.EffectiveDate, &j.BirthFamily}
}

// parseJSONLine reads one JSON Lines record: an object whose members are
// CSVHeader names with string values; absent members are empty.
func parseJSONLine(line []byte, rec *Record) error {
	var j jsonRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return &RecordError{Line: rec.Line, Reason: "not a JSON object of registry fields with string values"}
	}
	if dec.More() {
		return &RecordError{Line: rec.Line, Reason: "more than one JSON value on the line"}
	}
	for i, p := range j.fields() {
		rec.Fields[i] = ""
		if *p != nil {
			rec.Fields[i] = **p
		}
	}
	return nil
}

// Validate checks rec for a delivery of kind extracted on asOf
// (YYYY-MM-DD) and returns the first problem found, or nil.
func (r *Record) Validate(kind, asOf string) *RecordError {
	f := &r.Fields
	bad := func(field int, reason string) *RecordError {
		return &RecordError{Line: r.Line, Field: CSVHeader[field], Reason: reason}
	}
	op := f[FOp]
	switch {
	case kind == KindSnapshot && op != OpCreate:
		return bad(FOp, "a snapshot holds only create records")
	case op != OpCreate && op != OpChange && op != OpDeath && op != OpRemove:
		return bad(FOp, "must be create, change, death or remove")
	}
	if !validRef(f[FRef]) {
		return bad(FRef, "must be 1–40 characters A–Z, a–z, 0–9, '_' or '-'")
	}
	if e := f[FEffectiveDate]; e != "" {
		if !validDate(e) {
			return bad(FEffectiveDate, "must be a valid date written YYYY-MM-DD")
		}
		if e > asOf {
			return bad(FEffectiveDate, "is after the extraction date")
		}
	}
	if op == OpDeath || op == OpRemove {
		for i := FFamilyName; i < NumFields; i++ {
			if i == FDeathDate || i == FEffectiveDate {
				continue
			}
			if f[i] != "" {
				return bad(i, "must be empty in a "+op+" record")
			}
		}
		if op == OpRemove {
			if f[FDeathDate] != "" {
				return bad(FDeathDate, "must be empty in a remove record")
			}
			return nil
		}
		switch d := f[FDeathDate]; {
		case !validDate(d):
			return bad(FDeathDate, "must be a valid date written YYYY-MM-DD")
		case d > asOf:
			return bad(FDeathDate, "is after the extraction date")
		}
		return nil
	}

	if reason := checkName(f[FFamilyName]); reason != "" {
		return bad(FFamilyName, reason)
	}
	if reason := checkName(f[FGivenNames]); reason != "" {
		return bad(FGivenNames, reason)
	}
	if b := f[FBirthFamilyName]; b != "" {
		if reason := checkName(b); reason != "" {
			return bad(FBirthFamilyName, reason)
		}
	}
	switch b := f[FBirthDate]; {
	case !validDate(b):
		return bad(FBirthDate, "must be a valid date written YYYY-MM-DD")
	case b < "1870-01-01":
		return bad(FBirthDate, "is before 1870")
	case b > asOf:
		return bad(FBirthDate, "is after the extraction date")
	}
	if !validSex(f[FSex]) {
		return bad(FSex, "must be F, M or X")
	}
	if !compactNAM(f[FNAM]) {
		return bad(FNAM, "must be 4 upper-case letters and 8 digits, without spaces")
	}
	if reason := r.healthNumberProblem(); reason != "" {
		return bad(FNAM, reason)
	}
	if !validCardExpiry(f[FCardExpiry]) {
		return bad(FCardExpiry, "must be a year and month written YYYY-MM")
	}
	if !validCardSeq(f[FCardSeq]) {
		return bad(FCardSeq, "must be two digits, 01–99")
	}
	if !validCivic(f[FCivicNumber]) {
		return bad(FCivicNumber, "must be 1–6 digits, not starting with 0, optionally followed by one upper-case letter")
	}
	if reason := checkText(f[FStreet], true); reason != "" {
		return bad(FStreet, reason)
	}
	if !validUnit(f[FUnit]) {
		return bad(FUnit, "must be at most 8 characters A–Z, a–z, 0–9 or '-'")
	}
	if reason := checkText(f[FMunicipality], true); reason != "" {
		return bad(FMunicipality, reason)
	}
	if !validPostalCode(f[FPostalCode]) {
		return bad(FPostalCode, "must be a Québec postal code written A1A 1A1 (first letter G, H or J)")
	}
	if l := f[FLanguage]; l != "fr" && l != "en" {
		return bad(FLanguage, "must be fr or en")
	}
	if d := f[FDeathDate]; d != "" {
		switch {
		case !validDate(d):
			return bad(FDeathDate, "must be empty or a valid date written YYYY-MM-DD")
		case d < f[FBirthDate]:
			return bad(FDeathDate, "is before the birth date")
		case d > asOf:
			return bad(FDeathDate, "is after the extraction date")
		}
	}
	return nil
}

// healthNumberProblem checks the record's health number against the
// person (family name at birth, first given name, birth date, sex) and
// returns what is wrong, naming characters and rules but no value, or "".
// The letters come from birth_family_name; a record without it (files of
// the first layout, or a source that does not know it) is checked
// against family_name, and the reason says so.
func (r *Record) healthNumberProblem() string {
	f := &r.Fields
	birth := f[FBirthFamilyName]
	if birth == "" {
		birth = f[FFamilyName]
	}
	err := ValidHealthNumber(f[FNAM], birth, f[FGivenNames], f[FBirthDate], f[FSex])
	if err == nil {
		return ""
	}
	reason := "does not match the person: " + sqin.ErrorMessage(err)
	if errors.Is(err, ErrHealthNumberFormat) {
		reason = "is not a health number: " + sqin.ErrorMessage(err)
	}
	if f[FBirthFamilyName] == "" && strings.Contains(reason, "characters 1–3") {
		reason += " (birth_family_name is empty, so family_name was used)"
	}
	return reason
}

// PersonID is the internal identifier of the person that source knows by
// ref: stable, so that an interrupted import run again finds the same
// rows, and never shown outside SQIN.
func PersonID(source, ref string) string {
	id, _ := personKey(source, ref)
	return id
}

// personKey is PersonID and its first 64 bits, for the duplicate filter.
func personKey(source, ref string) (string, uint64) {
	h := sha256.Sum256([]byte(source + "\x00" + ref))
	return "r_" + hex.EncodeToString(h[:10]), binary.BigEndian.Uint64(h[:8])
}

func validRef(s string) bool {
	if len(s) < 1 || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validDate(s string) bool {
	_, _, _, ok := parseDate(s)
	return ok
}

func compactNAM(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < 12; i++ {
		c := s[i]
		if i < 4 && (c < 'A' || c > 'Z') || i >= 4 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func validCardExpiry(s string) bool {
	if len(s) != 7 || s[4] != '-' || s[:2] != "20" {
		return false
	}
	for _, i := range []int{2, 3, 5, 6} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	m := int(s[5]-'0')*10 + int(s[6]-'0')
	return m >= 1 && m <= 12
}

func validCardSeq(s string) bool {
	return len(s) == 2 && s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s != "00"
}

func validCivic(s string) bool {
	n := len(s)
	if n > 0 && 'A' <= s[n-1] && s[n-1] <= 'Z' {
		n--
	}
	if n < 1 || n > 6 || s[0] == '0' {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validUnit(s string) bool {
	if len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validPostalCode(s string) bool {
	if len(s) != 7 || s[3] != ' ' || (s[0] != 'G' && s[0] != 'H' && s[0] != 'J') {
		return false
	}
	for _, i := range []int{1, 4, 6} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	for _, i := range []int{2, 5} {
		if strings.IndexByte(postalLetters, s[i]) < 0 {
			return false
		}
	}
	return true
}

// checkName returns why s is not a name, or "".
func checkName(s string) string {
	if reason := checkText(s, true); reason != "" {
		return reason
	}
	for _, c := range s {
		if !unicode.IsLetter(c) && !unicode.Is(unicode.Mn, c) && c != ' ' && c != '-' && c != '\'' && c != '’' && c != '.' {
			return "holds a character other than letters, spaces, hyphens, apostrophes and periods"
		}
	}
	return ""
}

// checkText returns why s is not a clean line of text, or "".
func checkText(s string, required bool) string {
	switch {
	case s == "" && required:
		return "is empty"
	case len(s) > 200:
		return "is longer than 200 bytes"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") || strings.Contains(s, "  "):
		return "has leading, trailing or repeated spaces"
	}
	ascii := true
	for _, c := range s {
		if c >= utf8.RuneSelf {
			ascii = false
		}
		if !unicode.IsPrint(c) {
			return "holds a control or non-printing character"
		}
	}
	if !ascii && !norm.NFC.IsNormalString(s) {
		return "is not in Unicode NFC"
	}
	return ""
}
