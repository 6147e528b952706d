package registry

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Delivery kinds and data formats (docs/formats/registry-import.md).
const (
	KindSnapshot = "snapshot"
	KindDelta    = "delta"
	FormatCSV    = "csv"
	FormatJSONL  = "jsonl"
)

// ManifestVersion is the only manifest version this code reads.
const ManifestVersion = 1

// Manifest describes one delivery of the official source.
type Manifest struct {
	Version     int       `json:"version"`
	Source      string    `json:"source"`
	ExtractedAt time.Time `json:"extracted_at"`
	Sequence    int64     `json:"sequence"`
	Kind        string    `json:"kind"`
	Format      string    `json:"format"`
	DataFile    string    `json:"data_file"`
	RecordCount int64     `json:"record_count"`
	SHA256      string    `json:"sha256"`
}

// ErrManifest marks a manifest that cannot be used.
var ErrManifest = errors.New("invalid manifest")

// ReadManifest reads and validates the manifest at path. It returns the
// manifest and the path of its data file (in the manifest's directory).
func ReadManifest(path string) (*Manifest, string, error) {
	var m Manifest
	if err := DecodeManifest(path, &m, ErrManifest); err != nil {
		return nil, "", err
	}
	if err := m.Validate(); err != nil {
		return nil, "", err
	}
	return &m, filepath.Join(filepath.Dir(path), m.DataFile), nil
}

// DecodeManifest decodes the JSON manifest at path into m, refusing
// unknown members; a manifest that does not decode is errManifest. Other
// deliveries made like the registry's (a holder's secrets) read theirs
// with it.
func DecodeManifest(path string, m any, errManifest error) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return fmt.Errorf("%w: %v", errManifest, err)
	}
	return nil
}

// Validate checks every field of m.
func (m *Manifest) Validate() error {
	if bad := m.Problems(ManifestVersion); len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrManifest, strings.Join(bad, "; "))
	}
	return nil
}

// Problems lists what is wrong in the members of m, for a manifest whose
// only readable version is version.
func (m *Manifest) Problems(version int) []string {
	var bad []string
	if m.Version != version {
		bad = append(bad, fmt.Sprintf("version must be %d", version))
	}
	if !ValidName(m.Source) {
		bad = append(bad, "source must be 1–40 characters A–Z, a–z, 0–9, '.', '_' or '-'")
	}
	if m.ExtractedAt.IsZero() {
		bad = append(bad, "extracted_at is missing")
	}
	if m.Sequence < 1 {
		bad = append(bad, "sequence must be a positive integer")
	}
	if m.Kind != KindSnapshot && m.Kind != KindDelta {
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
	return bad
}

// AsOf is the extraction date, YYYY-MM-DD in UTC: the default effective
// date of the delivery's records and the latest date they may carry.
func (m *Manifest) AsOf() string { return m.ExtractedAt.UTC().Format(time.DateOnly) }

// ValidName reports whether s may name a source or a type in a manifest:
// 1–40 characters A–Z, a–z, 0–9, '.', '_' or '-'.
func ValidName(s string) bool {
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
