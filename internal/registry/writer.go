package registry

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"strings"
	"unicode/utf8"
)

// Writer writes the records of a data file and computes the SHA-256 of
// what it wrote, for the manifest.
type Writer struct {
	bw     *bufio.Writer
	h      hash.Hash
	format string
	n      int64
	buf    []byte
}

// NewWriter writes records in format to w; for CSV the header first.
func NewWriter(w io.Writer, format string) (*Writer, error) {
	if format != FormatCSV && format != FormatJSONL {
		return nil, errors.New("registry: format must be csv or jsonl")
	}
	h := sha256.New()
	wr := &Writer{bw: bufio.NewWriterSize(io.MultiWriter(w, h), 256<<10), h: h, format: format}
	if format == FormatCSV {
		if _, err := wr.bw.WriteString(csvHeaderLine + "\n"); err != nil {
			return nil, err
		}
	}
	return wr, nil
}

var errLineBreak = errors.New("registry: a field holds a line break")

// Write writes one record (rec.Line is ignored).
func (w *Writer) Write(rec *Record) error {
	b := w.buf[:0]
	for i, f := range rec.Fields {
		if strings.ContainsAny(f, "\r\n") {
			return errLineBreak
		}
		if w.format == FormatJSONL {
			if i == 0 {
				b = append(b, '{')
			} else {
				b = append(b, ',')
			}
			b = appendJSONString(b, CSVHeader[i])
			b = append(b, ':')
			b = appendJSONString(b, f)
			continue
		}
		if i > 0 {
			b = append(b, ',')
		}
		if strings.ContainsAny(f, `,"`) {
			b = append(b, '"')
			b = append(b, strings.ReplaceAll(f, `"`, `""`)...)
			b = append(b, '"')
		} else {
			b = append(b, f...)
		}
	}
	if w.format == FormatJSONL {
		b = append(b, '}')
	}
	b = append(b, '\n')
	w.buf = b
	w.n++
	_, err := w.bw.Write(b)
	return err
}

// Close flushes what is buffered (it does not close the underlying writer).
func (w *Writer) Close() error { return w.bw.Flush() }

// Count is the number of records written.
func (w *Writer) Count() int64 { return w.n }

// SHA256 is the hexadecimal digest of everything written, once closed.
func (w *Writer) SHA256() string { return hex.EncodeToString(w.h.Sum(nil)) }

func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
