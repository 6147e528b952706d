package proofing_test

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/proofing"
)

// extractText reads back the text-showing operators of every content
// stream, decoding literal-string escapes and WinAnsi bytes (the way a
// print shop's preflight or the browser test reads a letter).
func extractText(t *testing.T, pdf []byte) []string {
	t.Helper()
	var out []string
	for _, m := range regexp.MustCompile(`(?s)stream\n(.*?)endstream`).FindAllSubmatch(pdf, -1) {
		for _, s := range regexp.MustCompile(`\(((?:\\.|[^\\)])*)\) Tj`).FindAllSubmatch(m[1], -1) {
			out = append(out, decodeLiteral(s[1]))
		}
	}
	return out
}

var cp1252 = map[byte]rune{0x80: '€', 0x92: '’', 0x96: '–', 0x97: '—', 0x9c: 'œ', 0x8c: 'Œ', 0x85: '…'}

func decodeLiteral(b []byte) string {
	var raw []byte
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			raw = append(raw, b[i])
			continue
		}
		i++
		if b[i] >= '0' && b[i] <= '7' {
			n, _ := strconv.ParseUint(string(b[i:i+3]), 8, 8)
			raw = append(raw, byte(n))
			i += 2
			continue
		}
		raw = append(raw, b[i])
	}
	var s strings.Builder
	for _, c := range raw {
		if r, ok := cp1252[c]; ok {
			s.WriteRune(r)
		} else {
			s.WriteRune(rune(c)) // Latin-1
		}
	}
	return s.String()
}

// TestWritePDF: the file has a valid structure (every cross-reference
// offset points at its object, stream lengths are exact, the trailer
// points at the cross-reference table), and its text reads back with
// French accents, the euro sign, quotes and escaped parentheses.
func TestWritePDF(t *testing.T) {
	texts := []string{"Élise Côté-Lévesque (test)", "Votre code : ABCD-EFGH-JKMN", "Œuvre « citée » — 5 € ’ back\\slash",
		"de\u0301composé"}
	pages := []proofing.PDFPage{
		{Texts: []proofing.PDFText{{X: 72, Y: 700, Size: 12, Text: texts[0]}, {X: 72, Y: 680, Size: 14, Bold: true, Text: texts[1]}},
			Rects: []proofing.PDFRect{{X: 60, Y: 670, W: 300, H: 30}}},
		{Texts: []proofing.PDFText{{X: 72, Y: 700, Size: 11, Text: texts[2]}, {X: 72, Y: 690, Size: 11, Text: texts[3]}}},
	}
	var buf bytes.Buffer
	if err := proofing.WritePDF(&buf, "Lettre", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), pages); err != nil {
		t.Fatal(err)
	}
	pdf := buf.Bytes()
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.4\n")) || !bytes.HasSuffix(pdf, []byte("%%EOF\n")) {
		t.Fatal("header or trailer missing")
	}
	m := regexp.MustCompile(`startxref\n([0-9]+)\n%%EOF\n$`).FindSubmatch(pdf)
	if m == nil {
		t.Fatal("no startxref")
	}
	xref, _ := strconv.Atoi(string(m[1]))
	if !bytes.HasPrefix(pdf[xref:], []byte("xref\n0 ")) {
		t.Fatalf("startxref %d does not point at the table", xref)
	}
	entries := regexp.MustCompile(`(?m)^([0-9]{10}) 00000 n \n`).FindAllSubmatch(pdf[xref:], -1)
	if len(entries) != 5+2*len(pages) {
		t.Fatalf("%d objects in the table", len(entries))
	}
	for i, e := range entries {
		off, _ := strconv.Atoi(string(e[1]))
		if want := strconv.Itoa(i+1) + " 0 obj\n"; !bytes.HasPrefix(pdf[off:], []byte(want)) {
			t.Errorf("object %d: offset %d points at %q", i+1, off, pdf[off:off+10])
		}
	}
	if !bytes.Contains(pdf, []byte("/Size "+strconv.Itoa(len(entries)+1)+" ")) {
		t.Error("trailer /Size does not count the objects")
	}
	for _, s := range regexp.MustCompile(`/Length ([0-9]+) >>\nstream\n`).FindAllSubmatchIndex(pdf, -1) {
		n, _ := strconv.Atoi(string(pdf[s[2]:s[3]]))
		if !bytes.HasPrefix(pdf[s[1]+n:], []byte("endstream")) {
			t.Errorf("stream at %d: /Length %d is not its length", s[1], n)
		}
	}
	if bytes.Contains(pdf, []byte("/Filter")) {
		t.Error("a content stream is compressed")
	}
	got := extractText(t, pdf)
	want := append([]string(nil), texts...)
	want[3] = "décomposé"
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("text read back:\n%q\nwant\n%q", got, want)
	}
	if !bytes.Contains(pdf, []byte("/BaseFont /Helvetica /Encoding /WinAnsiEncoding")) {
		t.Error("not Helvetica in WinAnsi encoding")
	}
}

func TestWrap(t *testing.T) {
	s := "Vous avez demandé un code pour vérifier votre identité dans votre compte du service d'authentification gouvernementale."
	lines := proofing.Wrap(s, 11, 200, false)
	if len(lines) < 3 || strings.Join(lines, " ") != s {
		t.Fatalf("lines %q", lines)
	}
	for _, l := range lines {
		if w := proofing.TextWidth(l, 11, false); w > 200 {
			t.Errorf("%q is %.1f points wide", l, w)
		}
	}
	if w := proofing.TextWidth("é", 10, false); w != proofing.TextWidth("e", 10, false) {
		t.Errorf("an accented letter is %.2f wide, its base letter %.2f", w, proofing.TextWidth("e", 10, false))
	}
	if got := proofing.Wrap("a\n\nb", 11, 100, false); strings.Join(got, "|") != "a||b" {
		t.Errorf("paragraphs: %q", got)
	}
}

func TestMailCode(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c := proofing.NewMailCode()
		n, ok := proofing.NormalizeMailCode(strings.ToLower(proofing.FormatMailCode(c)))
		if !ok || n != c || len(c) != proofing.MailCodeLen {
			t.Fatalf("code %q reads back as %q %v", c, n, ok)
		}
		if strings.ContainsAny(c, "01ILO") {
			t.Fatalf("code %q has a character that reads alike", c)
		}
		seen[c] = true
	}
	if len(seen) != 200 {
		t.Fatal("codes repeat")
	}
	for _, bad := range []string{"", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMNP", "ABCD-EFGH-JKM0", "ABCD EFGH JKMI"} {
		if _, ok := proofing.NormalizeMailCode(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	h := proofing.MailCodeHash(key, "l1", "ABCDEFGHJKMN")
	if h == proofing.MailCodeHash(key, "l2", "ABCDEFGHJKMN") || h == proofing.MailCodeHash(key[:31], "l1", "ABCDEFGHJKMN") ||
		strings.Contains(h, "ABCD") {
		t.Fatal("the hash does not bind the letter and the key, or shows the code")
	}
}
