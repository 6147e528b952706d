package proofing

import (
	"bufio"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A holder body (the SAAQ for driving licences) delivers the values of a
// local secret type through the same kind of pipeline as the registry: a
// manifest and a data file (docs/formats/proofing-secrets.md). SQIN keeps
// only SecretHash of each value, never the value.

// Delivery kinds, formats and operations of secret deliveries.
const (
	DeliverySnapshot = "snapshot" // every secret of the type the holder has: the others are dropped
	DeliveryDelta    = "delta"    // changes since the previous delivery
	FormatCSV        = "csv"
	FormatJSONL      = "jsonl"
	OpSet            = "set"    // the person's secret is (now) these values
	OpRemove         = "remove" // the person no longer has the secret
	// MatchNAM is the data file's column that designates the registry
	// person: the health-insurance number (compact form).
	MatchNAM = "nam"
)

// SecretManifestVersion is the only manifest version this code reads.
const SecretManifestVersion = 1

// maxLine bounds a data line (as the registry's format does).
const maxLine = 4096

// SecretManifest describes one delivery of a holder's secrets.
type SecretManifest struct {
	Version     int       `json:"version"`
	Source      string    `json:"source"`
	SecretType  string    `json:"secret_type"`
	ExtractedAt time.Time `json:"extracted_at"`
	Sequence    int64     `json:"sequence"`
	Kind        string    `json:"kind"`
	Format      string    `json:"format"`
	DataFile    string    `json:"data_file"`
	RecordCount int64     `json:"record_count"`
	SHA256      string    `json:"sha256"`
}

// ErrManifest marks a manifest that cannot be used.
var ErrManifest = errors.New("invalid secret delivery manifest")

// ReadSecretManifest reads and validates the manifest at path. It returns
// the manifest and the path of its data file (in the manifest's
// directory).
func ReadSecretManifest(path string) (*SecretManifest, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read manifest: %w", err)
	}
	var m SecretManifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if err := m.Validate(); err != nil {
		return nil, "", err
	}
	return &m, filepath.Join(filepath.Dir(path), m.DataFile), nil
}

// Validate checks every member of m (not the data file).
func (m *SecretManifest) Validate() error {
	var bad []string
	if m.Version != SecretManifestVersion {
		bad = append(bad, fmt.Sprintf("version must be %d", SecretManifestVersion))
	}
	if !validName(m.Source) {
		bad = append(bad, "source must be 1–40 characters A–Z, a–z, 0–9, '.', '_' or '-'")
	}
	if !validName(m.SecretType) {
		bad = append(bad, "secret_type must name a secret type of the catalogue")
	}
	if m.ExtractedAt.IsZero() {
		bad = append(bad, "extracted_at is missing")
	}
	if m.Sequence < 1 {
		bad = append(bad, "sequence must be a positive integer")
	}
	if m.Kind != DeliverySnapshot && m.Kind != DeliveryDelta {
		bad = append(bad, "kind must be snapshot or delta")
	}
	if m.Format != FormatCSV && m.Format != FormatJSONL {
		bad = append(bad, "format must be csv or jsonl")
	}
	if m.DataFile == "" || m.DataFile != filepath.Base(m.DataFile) || strings.ContainsAny(m.DataFile, `/\`) ||
		m.DataFile == "." || m.DataFile == ".." {
		bad = append(bad, "data_file must be a file name in the manifest's directory")
	}
	if m.RecordCount < 0 {
		bad = append(bad, "record_count must not be negative")
	}
	if h, err := hex.DecodeString(m.SHA256); err != nil || len(h) != 32 || strings.ToLower(m.SHA256) != m.SHA256 {
		bad = append(bad, "sha256 must be 64 lower-case hexadecimal digits")
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrManifest, strings.Join(bad, "; "))
	}
	return nil
}

// WriteSecretManifest writes m as indented JSON.
func WriteSecretManifest(path string, m *SecretManifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func validName(s string) bool {
	if len(s) < 1 || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// DeliveryHeader is the data file's columns for secret type s: op, nam,
// then the type's field names in catalogue order.
func DeliveryHeader(s *SecretType) []string {
	h := []string{"op", MatchNAM}
	for _, f := range s.Fields {
		h = append(h, f.Name)
	}
	return h
}

// deliveryReader reads the lines of a data file, CSV or JSON Lines,
// hashing every byte it reads (the manifest's sha256).
type deliveryReader struct {
	header []string
	format string
	br     *bufio.Reader
	sum    hash.Hash
	line   int64 // of the last line read; the CSV header is line 1
	rec    []string
	buf    []byte
}

func newDeliveryReader(r io.Reader, format string, header []string) *deliveryReader {
	sum := sha256.New()
	return &deliveryReader{header: header, format: format, br: bufio.NewReaderSize(io.TeeReader(r, sum), 64<<10), sum: sum,
		rec: make([]string, len(header))}
}

// lineError is a line that cannot be read at all (the whole line is
// rejected).
type lineError struct{ reason string }

func (e *lineError) Error() string { return e.reason }

// readHeader checks the CSV header line (JSON Lines has none).
func (d *deliveryReader) readHeader() error {
	if d.format != FormatCSV {
		return nil
	}
	raw, err := d.readLine()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the data file is empty: it must start with the header line")
		}
		return err
	}
	if raw != strings.Join(d.header, ",") {
		return fmt.Errorf("the data file's first line must be exactly %q", strings.Join(d.header, ","))
	}
	return nil
}

// readLine returns the next line without its end of line; a line over
// maxLine bytes is consumed and reported as a lineError.
func (d *deliveryReader) readLine() (string, error) {
	d.line++
	d.buf = d.buf[:0]
	tooLong := false
	for {
		frag, err := d.br.ReadSlice('\n')
		if !tooLong {
			if len(d.buf)+len(frag) > maxLine+2 {
				tooLong = true
			} else {
				d.buf = append(d.buf, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(d.buf) == 0 && !tooLong {
			d.line--
			return "", io.EOF
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read data file: %w", err)
		}
		break
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(d.buf), "\n"), "\r")
	if tooLong || len(s) > maxLine {
		return "", &lineError{fmt.Sprintf("line longer than %d bytes", maxLine)}
	}
	return s, nil
}

// next reads one record into d.rec (by header column). A lineError
// reports a line that cannot be read; other errors end the reading.
func (d *deliveryReader) next() error {
	raw, err := d.readLine()
	if err != nil {
		return err
	}
	clear(d.rec)
	if d.format == FormatCSV {
		r := csv.NewReader(strings.NewReader(raw))
		r.FieldsPerRecord = len(d.header)
		f, err := r.Read()
		if err != nil {
			return &lineError{fmt.Sprintf("not a CSV line of %d fields", len(d.header))}
		}
		copy(d.rec, f)
		return nil
	}
	var obj map[string]string
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&obj); err != nil || dec.More() {
		return &lineError{"not a JSON object of string members"}
	}
	for k, v := range obj {
		i := slices.Index(d.header, k)
		if i < 0 {
			return &lineError{fmt.Sprintf("unknown member %q", k)}
		}
		d.rec[i] = v
	}
	return nil
}

// deliveryWriter writes a data file and counts its records and hash.
type deliveryWriter struct {
	w      *bufio.Writer
	sum    hash.Hash
	format string
	header []string
	n      int64
}

func newDeliveryWriter(w io.Writer, format string, header []string) (*deliveryWriter, error) {
	sum := sha256.New()
	dw := &deliveryWriter{w: bufio.NewWriterSize(io.MultiWriter(w, sum), 64<<10), sum: sum, format: format, header: header}
	if format == FormatCSV {
		if _, err := dw.w.WriteString(strings.Join(header, ",") + "\n"); err != nil {
			return nil, err
		}
	}
	return dw, nil
}

// write writes one record (values by header column). Values never hold
// a comma, quote or line break (they are checked formats).
func (d *deliveryWriter) write(rec []string) error {
	d.n++
	if d.format == FormatCSV {
		_, err := d.w.WriteString(strings.Join(rec, ",") + "\n")
		return err
	}
	obj := make(map[string]string, len(rec))
	for i, v := range rec {
		if v != "" {
			obj[d.header[i]] = v
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = d.w.Write(append(b, '\n'))
	return err
}

func (d *deliveryWriter) close() (int64, string, error) {
	if err := d.w.Flush(); err != nil {
		return 0, "", err
	}
	return d.n, hex.EncodeToString(d.sum.Sum(nil)), nil
}
