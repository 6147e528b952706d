package registry

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// good is a valid create record.
func good() Record {
	return Record{Line: 2, Fields: [NumFields]string{
		FOp: OpCreate, FRef: "SYN0001", FFamilyName: "Côté", FGivenNames: "Marie-Ève", FBirthDate: "1984-02-29",
		FSex: "F", FNAM: "COTM84522991", FCardExpiry: "2030-06", FCardSeq: "02", FCivicNumber: "1234A",
		FStreet: "rue Saint-Étienne", FUnit: "5", FMunicipality: "Trois-Rivières", FPostalCode: "G9A 1A1",
		FLanguage: "fr",
	}}
}

func TestValidate(t *testing.T) {
	const asOf = "2026-11-20"
	tests := []struct {
		name   string
		kind   string
		edit   func(f *[NumFields]string)
		field  string // "" when valid
		reason string
	}{
		{"valid", KindSnapshot, func(*[NumFields]string) {}, "", ""},
		{"valid change in a delta", KindDelta, func(f *[NumFields]string) { f[FOp] = OpChange; f[FEffectiveDate] = "2026-11-01" }, "", ""},
		{"valid death", KindDelta, func(f *[NumFields]string) { *f = [NumFields]string{FOp: OpDeath, FRef: "R1", FDeathDate: "2026-11-19"} }, "", ""},
		{"valid removal", KindDelta, func(f *[NumFields]string) { *f = [NumFields]string{FOp: OpRemove, FRef: "R1"} }, "", ""},
		{"apostrophes and periods", KindSnapshot, func(f *[NumFields]string) {
			f[FFamilyName], f[FNAM] = "D’Amours", "DAMM84522991"
		}, "", ""},
		{"change in a snapshot", KindSnapshot, func(f *[NumFields]string) { f[FOp] = OpChange }, "op", "a snapshot holds only create records"},
		{"unknown op", KindDelta, func(f *[NumFields]string) { f[FOp] = "update" }, "op", "must be create, change, death or remove"},
		{"empty ref", KindSnapshot, func(f *[NumFields]string) { f[FRef] = "" }, "ref", "must be 1–40 characters A–Z, a–z, 0–9, '_' or '-'"},
		{"ref with a space", KindSnapshot, func(f *[NumFields]string) { f[FRef] = "A B" }, "ref", "must be 1–40 characters A–Z, a–z, 0–9, '_' or '-'"},
		{"future effective date", KindDelta, func(f *[NumFields]string) { f[FEffectiveDate] = "2026-11-21" }, "effective_date", "is after the extraction date"},
		{"empty family name", KindSnapshot, func(f *[NumFields]string) { f[FFamilyName] = "" }, "family_name", "is empty"},
		{"digit in a name", KindSnapshot, func(f *[NumFields]string) { f[FGivenNames] = "Marie2" }, "given_names", "holds a character other than letters, spaces, hyphens, apostrophes and periods"},
		{"decomposed accent", KindSnapshot, func(f *[NumFields]string) { f[FFamilyName] = "Co\u0302te\u0301" }, "family_name", "is not in Unicode NFC"},
		{"trailing space", KindSnapshot, func(f *[NumFields]string) { f[FStreet] = "rue X " }, "street", "has leading, trailing or repeated spaces"},
		{"invalid UTF-8", KindSnapshot, func(f *[NumFields]string) { f[FMunicipality] = "Qu\xe9bec" }, "municipality", "is not valid UTF-8"},
		{"control character", KindSnapshot, func(f *[NumFields]string) { f[FStreet] = "rue\tX" }, "street", "holds a control or non-printing character"},
		{"29 February of a common year", KindSnapshot, func(f *[NumFields]string) { f[FBirthDate] = "1983-02-29" }, "birth_date", "must be a valid date written YYYY-MM-DD"},
		{"born in the future", KindSnapshot, func(f *[NumFields]string) { f[FBirthDate] = "2027-01-01" }, "birth_date", "is after the extraction date"},
		{"born before 1870", KindSnapshot, func(f *[NumFields]string) { f[FBirthDate] = "1869-12-31" }, "birth_date", "is before 1870"},
		{"sex", KindSnapshot, func(f *[NumFields]string) { f[FSex] = "f" }, "sex", "must be F, M or X"},
		{"NAM with spaces", KindSnapshot, func(f *[NumFields]string) { f[FNAM] = "COTM 8452 2991" }, "nam", "must be 4 upper-case letters and 8 digits, without spaces"},
		{"NAM of a man", KindSnapshot, func(f *[NumFields]string) { f[FNAM] = "COTM84022991" }, "nam",
			"does not match the person: characters 7–8 give the birth month without the 50 added for sex F"},
		{"NAM of another name", KindSnapshot, func(f *[NumFields]string) { f[FNAM] = "TREM84522991" }, "nam",
			"does not match the person: characters 1–3 must be the first 3 letters of the family name at birth (accents removed, padded with X) (birth_family_name is empty, so family_name was used)"},
		{"NAM of another birth date", KindSnapshot, func(f *[NumFields]string) { f[FNAM] = "COTM85522891" }, "nam",
			"does not match the person: characters 5–6 must be the last 2 digits of the birth year; characters 9–10 must be the birth day"},
		{"NAM with month 13", KindSnapshot, func(f *[NumFields]string) { f[FNAM] = "COTM84632991" }, "nam",
			"is not a health number: characters 7–8 are not a month (01–12, or 51–62 for a woman)"},
		{"married name, NAM of the birth name", KindSnapshot, func(f *[NumFields]string) {
			f[FFamilyName], f[FBirthFamilyName] = "Tremblay", "Côté"
		}, "", ""},
		{"birth name given, the same as the family name", KindSnapshot, func(f *[NumFields]string) { f[FBirthFamilyName] = "Côté" }, "", ""},
		{"NAM of the married name, not of the birth name", KindSnapshot, func(f *[NumFields]string) {
			f[FFamilyName], f[FBirthFamilyName], f[FNAM] = "Tremblay", "Côté", "TREM84522991"
		}, "nam", "does not match the person: characters 1–3 must be the first 3 letters of the family name at birth (accents removed, padded with X)"},
		{"married name without birth name", KindSnapshot, func(f *[NumFields]string) { f[FFamilyName] = "Tremblay" }, "nam",
			"does not match the person: characters 1–3 must be the first 3 letters of the family name at birth (accents removed, padded with X) (birth_family_name is empty, so family_name was used)"},
		{"digit in the birth name", KindSnapshot, func(f *[NumFields]string) { f[FBirthFamilyName] = "C0té" }, "birth_family_name",
			"holds a character other than letters, spaces, hyphens, apostrophes and periods"},
		{"birth name with a leading space", KindSnapshot, func(f *[NumFields]string) { f[FBirthFamilyName] = " Côté" }, "birth_family_name",
			"has leading, trailing or repeated spaces"},
		{"death with a birth name", KindDelta, func(f *[NumFields]string) {
			*f = [NumFields]string{FOp: OpDeath, FRef: "R1", FDeathDate: "2026-11-19", FBirthFamilyName: "Côté"}
		}, "birth_family_name", "must be empty in a death record"},
		{"card month 13", KindSnapshot, func(f *[NumFields]string) { f[FCardExpiry] = "2030-13" }, "card_expiry", "must be a year and month written YYYY-MM"},
		{"card sequence 00", KindSnapshot, func(f *[NumFields]string) { f[FCardSeq] = "00" }, "card_seq", "must be two digits, 01–99"},
		{"civic number 0", KindSnapshot, func(f *[NumFields]string) { f[FCivicNumber] = "012" }, "civic_number", "must be 1–6 digits, not starting with 0, optionally followed by one upper-case letter"},
		{"unit too long", KindSnapshot, func(f *[NumFields]string) { f[FUnit] = "123456789" }, "unit", "must be at most 8 characters A–Z, a–z, 0–9 or '-'"},
		{"Ontario postal code", KindSnapshot, func(f *[NumFields]string) { f[FPostalCode] = "K1A 0B1" }, "postal_code", "must be a Québec postal code written A1A 1A1 (first letter G, H or J)"},
		{"postal code letter O", KindSnapshot, func(f *[NumFields]string) { f[FPostalCode] = "H2O 1A1" }, "postal_code", "must be a Québec postal code written A1A 1A1 (first letter G, H or J)"},
		{"postal code without space", KindSnapshot, func(f *[NumFields]string) { f[FPostalCode] = "G9A1A1" }, "postal_code", "must be a Québec postal code written A1A 1A1 (first letter G, H or J)"},
		{"language", KindSnapshot, func(f *[NumFields]string) { f[FLanguage] = "FR" }, "language", "must be fr or en"},
		{"died before birth", KindSnapshot, func(f *[NumFields]string) { f[FDeathDate] = "1980-01-01" }, "death_date", "is before the birth date"},
		{"death without date", KindDelta, func(f *[NumFields]string) { *f = [NumFields]string{FOp: OpDeath, FRef: "R1"} }, "death_date", "must be a valid date written YYYY-MM-DD"},
		{"death with a name", KindDelta, func(f *[NumFields]string) { f[FOp], f[FDeathDate] = OpDeath, "2026-01-01" }, "family_name", "must be empty in a death record"},
		{"removal with a death date", KindDelta, func(f *[NumFields]string) {
			*f = [NumFields]string{FOp: OpRemove, FRef: "R1", FDeathDate: "2026-01-01"}
		}, "death_date", "must be empty in a remove record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.edit(&r.Fields)
			err := r.Validate(tc.kind, asOf)
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.field == "":
			case err == nil:
				t.Fatal("accepted")
			case err.Field != tc.field || err.Reason != tc.reason || err.Line != 2:
				t.Fatalf("got %q, want line 2: %s: %s", err, tc.field, tc.reason)
			}
		})
	}
}

func TestParseCSVLine(t *testing.T) {
	base := strings.Repeat(",", NumFields-1)
	tests := []struct {
		name, line string
		want       []string // the first fields, or nil for an error
		reason     string
	}{
		{"empty fields", base, []string{"", ""}, ""},
		{"plain", "create,R1" + strings.Repeat(",", NumFields-2), []string{"create", "R1"}, ""},
		{"quoted with comma and quote", `create,"a,""b"""` + strings.Repeat(",", NumFields-2), []string{"create", `a,"b"`}, ""},
		{"quoted last field", base + `"x"`, []string{""}, ""},
		{"too few", "a,b", nil, "the line has 2 fields instead of 18"},
		{"too many", base + ",", nil, "the line has more than 18 fields"},
		{"unclosed quote", `"abc` + base, nil, "a quoted field is not closed"},
		{"text after a quote", `"a"b` + base, nil, "a quoted field is followed by something other than a comma"},
		{"bare quote", `a"b` + base, nil, "a field that is not quoted holds a quotation mark"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Record{Line: 7}
			err := ParseCSVLine([]byte(tc.line), &r)
			if tc.want == nil {
				var re *RecordError
				if !errors.As(err, &re) || re.Reason != tc.reason || re.Line != 7 {
					t.Fatalf("error %v, want %q", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.want {
				if r.Fields[i] != w {
					t.Fatalf("field %d = %q, want %q", i, r.Fields[i], w)
				}
			}
		})
	}
}

// TestReaderLegacyLayout: a CSV file with the first layout of the header
// (no birth_family_name) is read, its records' birth_family_name empty;
// its lines must have that layout's number of fields.
func TestReaderLegacyLayout(t *testing.T) {
	g := good()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	g.Fields[FBirthFamilyName] = "Côté"
	if err := w.Write(&g); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	header, line, _ := strings.Cut(buf.String(), "\n")
	if header != strings.Join(CSVHeader[:], ",") || !strings.HasSuffix(header, ",birth_family_name") {
		t.Fatalf("header %q", header)
	}
	legacyHeader := strings.TrimSuffix(header, ",birth_family_name")
	legacyLine := strings.TrimSuffix(line, ",Côté\n")
	in := legacyHeader + "\n" + legacyLine + "\n" + line + legacyLine + ",,\n"
	rd := NewReader(strings.NewReader(in), FormatCSV)
	r := Record{Fields: [NumFields]string{FBirthFamilyName: "left over"}}
	if err := rd.Next(&r); err != nil {
		t.Fatal(err)
	}
	want := good()
	if r.Fields != want.Fields || r.Line != 2 {
		t.Fatalf("legacy record %+v", r)
	}
	if v := r.Validate(KindSnapshot, "2026-11-20"); v != nil {
		t.Fatalf("legacy record rejected: %v", v)
	}
	var re *RecordError
	for _, line := range []int64{3, 4} { // a line of the new layout, then one too long
		if err := rd.Next(&r); !errors.As(err, &re) || re.Line != line || !strings.Contains(re.Reason, "17") {
			t.Fatalf("line %d in a legacy file: %v", line, err)
		}
	}
	if err := NewReader(strings.NewReader(legacyHeader+",x\n"), FormatCSV).Next(&r); !errors.Is(err, ErrHeader) {
		t.Fatalf("another header: %v", err)
	}
}

// TestReader reads every shape of line a data file may hold, in both
// formats, and checks line numbers.
func TestReader(t *testing.T) {
	g := good()
	for _, format := range []string{FormatCSV, FormatJSONL} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, format)
			if err != nil {
				t.Fatal(err)
			}
			tricky := g
			tricky.Fields[FStreet] = `rue "du Roi", ouest`
			for _, r := range []Record{g, tricky} {
				if err := w.Write(&r); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			buf.WriteString(strings.Repeat("x", MaxLineBytes+10) + "\r\n")
			buf.WriteString("{}\n")
			rd := NewReader(&buf, format)
			first := int64(1)
			if format == FormatCSV {
				first = 2
			}
			var r Record
			for i, want := range []Record{g, tricky} {
				if err := rd.Next(&r); err != nil {
					t.Fatal(err)
				}
				if r.Fields != want.Fields || r.Line != first+int64(i) {
					t.Fatalf("record %d: %+v", i, r)
				}
			}
			var re *RecordError
			if err := rd.Next(&r); !errors.As(err, &re) || re.Line != first+2 || !strings.Contains(re.Reason, "longer than") {
				t.Fatalf("long line: %v", err)
			}
			err = rd.Next(&r) // "{}": an empty JSON record, or a CSV line of 1 field
			if format == FormatJSONL {
				if err != nil || r.Fields != [NumFields]string{} {
					t.Fatalf("{}: %v %+v", err, r)
				}
			} else if !errors.As(err, &re) || re.Line != first+3 {
				t.Fatalf("{}: %v", err)
			}
			if err := rd.Next(&r); err != io.EOF {
				t.Fatalf("end: %v", err)
			}
		})
	}
	if err := NewReader(strings.NewReader("op,ref\n"), FormatCSV).Next(new(Record)); !errors.Is(err, ErrHeader) {
		t.Fatalf("bad header: %v", err)
	}
	if err := NewReader(strings.NewReader(`{"op":"create","x":"1"}`+"\n"), FormatJSONL).Next(new(Record)); err == nil {
		t.Fatal("unknown JSON member accepted")
	}
}

func TestManifest(t *testing.T) {
	ok := Manifest{Version: 1, Source: "RAMQ", ExtractedAt: time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC), Sequence: 1,
		Kind: KindSnapshot, Format: FormatCSV, DataFile: "data.csv", RecordCount: 3, SHA256: strings.Repeat("ab", 32)}
	tests := []struct {
		name string
		edit func(m *Manifest)
		want string // "" when valid
	}{
		{"valid", func(*Manifest) {}, ""},
		{"version", func(m *Manifest) { m.Version = 2 }, "version must be 1"},
		{"source", func(m *Manifest) { m.Source = "RAMQ/1" }, "source must be"},
		{"no extraction time", func(m *Manifest) { m.ExtractedAt = time.Time{} }, "extracted_at is missing"},
		{"sequence", func(m *Manifest) { m.Sequence = 0 }, "sequence must be a positive integer"},
		{"kind", func(m *Manifest) { m.Kind = "full" }, "kind must be snapshot or delta"},
		{"format", func(m *Manifest) { m.Format = "xml" }, "format must be csv or jsonl"},
		{"path in data file", func(m *Manifest) { m.DataFile = "../etc/passwd" }, "data_file must be a file name"},
		{"negative count", func(m *Manifest) { m.RecordCount = -1 }, "record_count must not be negative"},
		{"upper-case checksum", func(m *Manifest) { m.SHA256 = strings.ToUpper(m.SHA256) }, "sha256 must be 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			tc.edit(&m)
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(path, []byte(`{"version":1,"extra":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadManifest(path); !errors.Is(err, ErrManifest) {
		t.Fatalf("unknown member: %v", err)
	}
}

// TestGenerateDelivery: every generated record is valid, the files are
// the same for a seed, and deltas hold each kind of operation.
func TestGenerateDelivery(t *testing.T) {
	dir := t.TempDir()
	ops := map[string]int{}
	var people, married, lettersDiffer int // in the snapshots
	for _, o := range []DeliveryOptions{
		{Seed: 1, Count: 5000, Kind: KindSnapshot},
		{Seed: 1, Count: 5000, Kind: KindSnapshot, Format: FormatJSONL},
		{Seed: 1, Count: 5000, Kind: KindDelta},
		{Seed: 1, Count: 5000, Kind: KindDelta, Sequence: 3},
	} {
		m, path, err := GenerateDelivery(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		m2, _, err := GenerateDelivery(filepath.Join(dir, "again"), o)
		if err != nil {
			t.Fatal(err)
		}
		if m.SHA256 != m2.SHA256 {
			t.Fatal("not deterministic")
		}
		got, data, err := ReadManifest(path)
		if err != nil || *got != *m {
			t.Fatalf("manifest read back: %v", err)
		}
		f, err := os.Open(data)
		if err != nil {
			t.Fatal(err)
		}
		rd := NewReader(f, m.Format)
		var r Record
		n := int64(0)
		refs := map[string]bool{}
		for {
			err := rd.Next(&r)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if e := r.Validate(m.Kind, m.AsOf()); e != nil {
				t.Fatalf("%s: %v", m.DataFile, e)
			}
			if refs[r.Ref()] {
				t.Fatalf("%s: duplicate reference on line %d", m.DataFile, r.Line)
			}
			refs[r.Ref()] = true
			if m.Kind == KindDelta {
				ops[r.Op()]++
			}
			if birth := r.Fields[FBirthFamilyName]; m.Kind == KindSnapshot {
				people++
				if birth == "" {
					t.Fatalf("%s: line %d has no birth family name", m.DataFile, r.Line)
				}
				if r.Fields[FFamilyName] != birth {
					married++
					if r.Fields[FBirthDate] > "2008" {
						t.Errorf("%s: line %d: a minor with a married name", m.DataFile, r.Line)
					}
				}
				// Without the birth name, the number would not match.
				r.Fields[FBirthFamilyName] = ""
				if e := r.Validate(m.Kind, m.AsOf()); e != nil {
					lettersDiffer++
					if e.Field != "nam" || !strings.Contains(e.Reason, "characters 1–3") {
						t.Fatalf("%s: without the birth name: %v", m.DataFile, e)
					}
				}
			}
			n++
		}
		f.Close()
		if n != m.RecordCount || (m.Kind == KindSnapshot && n != 5000) {
			t.Fatalf("%s: %d records, manifest %d", m.DataFile, n, m.RecordCount)
		}
	}
	// About one person in eleven goes by another name than at birth; most
	// of those names do not begin with the same 3 letters.
	if married < people/14 || married > people/5 || lettersDiffer < married*3/4 {
		t.Errorf("%d people, %d go by another name than at birth, %d of whose names do not give the number's letters",
			people, married, lettersDiffer)
	}
	t.Logf("%d people, %d go by another name than at birth, %d of whose names do not give the number's letters",
		people, married, lettersDiffer)
	for _, op := range []string{OpCreate, OpChange, OpDeath, OpRemove} {
		if ops[op] == 0 {
			t.Errorf("no %s in the deltas: %v", op, ops)
		}
	}
	if _, _, err := GenerateDelivery(dir, DeliveryOptions{Count: 10, Kind: KindDelta, BaseSeq: 1, Sequence: 200}); err == nil {
		t.Error("delta 199 generated")
	}
}

func BenchmarkGenerateDelivery(b *testing.B) {
	dir := b.TempDir()
	const n = 200_000
	for b.Loop() {
		if _, _, err := GenerateDelivery(dir, DeliveryOptions{Seed: 1, Count: n, Kind: KindSnapshot}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkParseValidate(b *testing.B) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, FormatCSV)
	g := good()
	_ = w.Write(&g)
	_ = w.Close()
	line := bytes.TrimSuffix(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[1], []byte("\n"))
	var r Record
	for b.Loop() {
		if err := ParseCSVLine(line, &r); err != nil {
			b.Fatal(err)
		}
		if e := r.Validate(KindSnapshot, "2026-11-20"); e != nil {
			b.Fatal(e)
		}
	}
}

// FuzzRecord: any line parses to a record or a RecordError without
// panicking; a record that validates survives writing and reading back.
func FuzzRecord(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, FormatCSV)
	g := good()
	_ = w.Write(&g)
	_ = w.Close()
	f.Add(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[1], false)
	f.Add([]byte(`create,"a,""b""",,,,,,,,,,,,,,,`), false)
	f.Add([]byte(`{"op":"death","ref":"R1","death_date":"2026-01-01"}`), true)
	f.Fuzz(func(t *testing.T, line []byte, jsonl bool) {
		format := FormatCSV
		if jsonl {
			format = FormatJSONL
		}
		in := line
		if format == FormatCSV {
			in = append([]byte(csvHeaderLine+"\n"), line...)
		}
		rd := NewReader(bytes.NewReader(in), format)
		var r Record
		err := rd.Next(&r)
		var re *RecordError
		switch {
		case err == io.EOF || errors.As(err, &re):
			return
		case err != nil:
			t.Fatalf("unexpected error %v", err)
		}
		for _, kind := range []string{KindSnapshot, KindDelta} {
			if e := r.Validate(kind, "2026-11-20"); e != nil {
				if strings.Contains(e.Error(), string(line)) && len(line) > 40 {
					t.Fatalf("the reject echoes the line: %v", e)
				}
				continue
			}
			var out bytes.Buffer
			w, _ := NewWriter(&out, format)
			if err := w.Write(&r); err != nil {
				t.Fatalf("write back: %v", err)
			}
			_ = w.Close()
			var back Record
			if err := NewReader(&out, format).Next(&back); err != nil || back.Fields != r.Fields {
				t.Fatalf("round trip: %v\n%q\n%q", err, r.Fields, back.Fields)
			}
		}
	})
}
