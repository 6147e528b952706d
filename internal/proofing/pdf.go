package proofing

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// A minimal PDF 1.4 writer for the letters of codes by mail: pages of
// text in the standard Type 1 fonts Helvetica and Helvetica-Bold (which
// every PDF reader and printer has, so nothing is embedded), WinAnsi
// encoding for French accents, and stroked rectangles. Content streams are
// not compressed: a print shop's preflight and our tests read them as they
// are. PDF 1.4 is ISO 32000's ancestor (Adobe, 2001); the parts used here
// are sections 3.4 (file structure), 5.2-5.3 (text) and 4.4 (paths).

// PDFText is a line of text at X, Y (points from the page's bottom left).
type PDFText struct {
	X, Y float64
	Size float64
	Bold bool
	Text string
}

// PDFRect is a stroked rectangle.
type PDFRect struct{ X, Y, W, H float64 }

// PDFPage is one page.
type PDFPage struct {
	Texts []PDFText
	Rects []PDFRect
}

// US Letter, the paper size of Canadian mail.
const (
	PageWidth  = 612.0
	PageHeight = 792.0
)

// WritePDF writes a document of pages. title goes in the document
// information; created is its creation date.
func WritePDF(w io.Writer, title string, created time.Time, pages []PDFPage) error {
	var buf bytes.Buffer
	var offsets []int
	obj := func(body string) int {
		offsets = append(offsets, buf.Len())
		n := len(offsets)
		fmt.Fprintf(&buf, "%d 0 obj\n%s\nendobj\n", n, body)
		return n
	}
	// The header's second line marks the file as binary for transfer tools.
	buf.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	// Objects 1-5 are fixed; pages follow, two objects each (page, content).
	first := 6
	var kids []string
	for i := range pages {
		kids = append(kids, strconv.Itoa(first+2*i)+" 0 R")
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj("<< /Type /Pages /Kids [" + strings.Join(kids, " ") + "] /Count " + strconv.Itoa(len(pages)) + " >>")
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
	obj("<< /Title " + pdfString(title) + " /Producer (SQIN) /CreationDate (D:" + created.UTC().Format("20060102150405") + "Z) >>")
	for i, pg := range pages {
		content := pageContent(pg)
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>",
			num(PageWidth), num(PageHeight), first+2*i+1))
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", len(content), content))
	}
	xref := buf.Len()
	fmt.Fprintf(&buf, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&buf, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&buf, "trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	bw := bufio.NewWriter(w)
	if _, err := bw.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("proofing: write PDF: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("proofing: write PDF: %w", err)
	}
	return nil
}

func pageContent(pg PDFPage) string {
	var b strings.Builder
	if len(pg.Rects) > 0 {
		b.WriteString("1 w\n")
		for _, r := range pg.Rects {
			fmt.Fprintf(&b, "%s %s %s %s re S\n", num(r.X), num(r.Y), num(r.W), num(r.H))
		}
	}
	for _, t := range pg.Texts {
		font := "/F1"
		if t.Bold {
			font = "/F2"
		}
		fmt.Fprintf(&b, "BT %s %s Tf %s %s Td %s Tj ET\n", font, num(t.Size), num(t.X), num(t.Y), pdfString(t.Text))
	}
	return b.String()
}

// num writes a coordinate with at most two decimals.
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// pdfString is s as a PDF literal string in WinAnsi encoding: the
// delimiters escaped and every byte outside printable ASCII as an octal
// escape, so the file stays 7-bit text apart from its header.
func pdfString(s string) string {
	var b strings.Builder
	b.WriteByte('(')
	for _, c := range WinAnsi(s) {
		switch {
		case c == '(' || c == ')' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(')')
	return b.String()
}

// winAnsiHigh maps the characters of Windows-1252's 0x80-0x9F range.
var winAnsiHigh = map[rune]byte{
	'€': 0x80, '‚': 0x82, 'ƒ': 0x83, '„': 0x84, '…': 0x85, '†': 0x86, '‡': 0x87, 'ˆ': 0x88, '‰': 0x89,
	'Š': 0x8a, '‹': 0x8b, 'Œ': 0x8c, 'Ž': 0x8e, '‘': 0x91, '’': 0x92, '“': 0x93, '”': 0x94, '•': 0x95,
	'–': 0x96, '—': 0x97, '˜': 0x98, '™': 0x99, 'š': 0x9a, '›': 0x9b, 'œ': 0x9c, 'ž': 0x9e, 'Ÿ': 0x9f,
}

// WinAnsi encodes s (composed first, so a decomposed é is one character)
// in PDF's WinAnsiEncoding: ASCII, Latin-1 and Windows-1252's extras; the
// narrow no-break space of French typography becomes a no-break space and
// anything else a question mark.
func WinAnsi(s string) []byte {
	s = norm.NFC.String(s)
	out := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r == '\u202f' || r == '\u2009':
			out = append(out, 0xa0)
		case r >= 0x20 && r < 0x7f, r >= 0xa0 && r <= 0xff:
			out = append(out, byte(r))
		case winAnsiHigh[r] != 0:
			out = append(out, winAnsiHigh[r])
		case r == '\n' || r == '\t':
			out = append(out, ' ')
		default:
			out = append(out, '?')
		}
	}
	return out
}

// helvetica holds the advance widths (thousandths of the font size) of
// Helvetica's printable ASCII characters, from its Adobe font metrics.
var helvetica = [95]int{
	278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // space to /
	556, 556, 556, 556, 556, 556, 556, 556, 556, 556, // 0-9
	278, 278, 584, 584, 584, 556, 1015, // : to @
	667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, // A-Z
	278, 278, 278, 469, 556, 333, // [ to `
	556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, // a-z
	334, 260, 334, 584, // { to ~
}

// TextWidth estimates the width of s in points: Helvetica's metrics, the
// base letter's width for an accented one, and 10 % more for bold (an
// upper bound of Helvetica-Bold's extra width for text), so that wrapped
// lines never overflow.
func TextWidth(s string, size float64, bold bool) float64 {
	total := 0
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue // the accent of the previous letter
		case r >= 0x20 && r < 0x7f:
			total += helvetica[r-0x20]
		default:
			total += 1000 // wide enough for any other glyph (œ, «, —)
		}
	}
	w := float64(total) * size / 1000
	if bold {
		w *= 1.1
	}
	return w
}

// Wrap breaks s into lines no wider than width at size, at spaces; a word
// wider than the line stands alone on its line.
func Wrap(s string, size, width float64, bold bool) []string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			try := word
			if line != "" {
				try = line + " " + word
			}
			if line != "" && TextWidth(try, size, bold) > width {
				lines = append(lines, line)
				try = word
			}
			line = try
		}
		lines = append(lines, line)
	}
	return lines
}
