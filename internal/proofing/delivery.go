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

	"github.com/sqin/sqin/internal/registry"
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

// SecretManifest describes one delivery of a holder's secrets: the
// registry's manifest (registry.Manifest, the same members and rules) and
// the secret type it carries.
type SecretManifest struct {
	registry.Manifest
	SecretType string `json:"secret_type"`
}

// ErrManifest marks a manifest that cannot be used.
var ErrManifest = errors.New("invalid secret delivery manifest")

// ReadSecretManifest reads and validates the manifest at path. It returns
// the manifest and the path of its data file (in the manifest's
// directory).
func ReadSecretManifest(path string) (*SecretManifest, string, error) {
	var m SecretManifest
	if err := registry.DecodeManifest(path, &m, ErrManifest); err != nil {
		return nil, "", err
	}
	if err := m.Validate(); err != nil {
		return nil, "", err
	}
	return &m, filepath.Join(filepath.Dir(path), m.DataFile), nil
}

// Validate checks every member of m (not the data file).
func (m *SecretManifest) Validate() error {
	bad := m.Problems(SecretManifestVersion)
	if !registry.ValidName(m.SecretType) {
		bad = append(bad, "secret_type must name a secret type of the catalogue")
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
