package proofing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/registry"
)

// SyntheticSecretSource is the source name of generated secret deliveries.
const SyntheticSecretSource = "SAAQ-SYNTHETIC"

// SyntheticSecretType is the secret type the generator makes deliveries
// of (the driver's licence reference number).
const SyntheticSecretType = "driving-licence"

// SecretDeliveryOptions are those of the registry's synthetic deliveries
// (registry.GenerateDelivery): Seed and Count name the registry's synthetic
// population, whose people the delivery holds licences of, matched by
// health number; Kind is DeliverySnapshot or DeliveryDelta; Source
// defaults to SyntheticSecretSource.
type SecretDeliveryOptions = registry.DeliveryOptions

// syntheticSecretEpoch: the extraction time of sequence 0.
var syntheticSecretEpoch = time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)

// GenerateSecretDelivery writes a delivery of synthetic driver's licence
// numbers into dir: a data file and its manifest, the same bytes for the
// same options. People are those registry.Generate makes for Seed and
// Count; about 80 % of those aged 16 or more at the extraction hold a
// licence (SyntheticLicence gives its number). A delta number d holds,
// for one holder in a hundred, a new number (nine in ten) or a removal.
func GenerateSecretDelivery(dir string, o SecretDeliveryOptions) (*SecretManifest, string, error) {
	if o.Format == "" {
		o.Format = FormatCSV
	}
	if o.Source == "" {
		o.Source = SyntheticSecretSource
	}
	if o.Count < 0 || o.Count > registry.MaxGenerate {
		return nil, "", fmt.Errorf("proofing: count must be between 0 and %d", registry.MaxGenerate)
	}
	if o.BaseSeq == 0 {
		o.BaseSeq = 1
	}
	delta := 0
	switch o.Kind {
	case DeliverySnapshot:
		if o.Sequence == 0 {
			o.Sequence = 1
		}
	case DeliveryDelta:
		if o.Sequence == 0 {
			o.Sequence = o.BaseSeq + 1
		}
		delta = int(o.Sequence - o.BaseSeq)
		if delta < 1 || delta > 100 {
			return nil, "", errors.New("proofing: a delta's sequence must be 1 to 100 after its base")
		}
	default:
		return nil, "", errors.New("proofing: kind must be snapshot or delta")
	}
	if o.Sequence < 1 {
		return nil, "", errors.New("proofing: sequence must be positive")
	}
	st, _ := DefaultCatalogue().Secret(SyntheticSecretType)
	m := &SecretManifest{SecretType: SyntheticSecretType, Manifest: registry.Manifest{Version: SecretManifestVersion,
		Source: o.Source, ExtractedAt: syntheticSecretEpoch.AddDate(0, 0, int(o.Sequence)), Sequence: o.Sequence, Kind: o.Kind,
		Format: o.Format, DataFile: fmt.Sprintf("%s-%s-%06d-%s.%s", o.Source, SyntheticSecretType, o.Sequence, o.Kind, o.Format)}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("proofing: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, m.DataFile))
	if err != nil {
		return nil, "", fmt.Errorf("proofing: %w", err)
	}
	defer f.Close()
	w, err := newDeliveryWriter(f, o.Format, DeliveryHeader(st))
	if err != nil {
		return nil, "", fmt.Errorf("proofing: %w", err)
	}
	adultBefore := m.ExtractedAt.AddDate(-16, 0, 0).Format(time.DateOnly)
	rec := make([]string, 3)
	i := -1
	err = registry.Generate(o.Seed, o.Count, func(p *sqin.Person) error {
		i++
		if p.BirthDate > adultBefore || licenceHash(o.Seed, i, 0)%100 >= 80 {
			return nil
		}
		rec[0], rec[1], rec[2] = OpSet, p.HealthNo, SyntheticLicence(o.Seed, i, p, 0)
		if delta > 0 {
			h := licenceHash(o.Seed, i, 1)
			if int(h%100)+1 != delta {
				return nil
			}
			if (h>>8)%10 == 0 {
				rec[0], rec[2] = OpRemove, ""
			} else {
				rec[2] = SyntheticLicence(o.Seed, i, p, delta)
			}
		}
		return w.write(rec)
	})
	if err != nil {
		return nil, "", fmt.Errorf("proofing: generate: %w", err)
	}
	if m.RecordCount, m.SHA256, err = w.close(); err != nil {
		return nil, "", fmt.Errorf("proofing: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, "", fmt.Errorf("proofing: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s-%06d-%s.manifest.json", o.Source, SyntheticSecretType, o.Sequence, o.Kind))
	if err := WriteSecretManifest(path, m); err != nil {
		return nil, "", fmt.Errorf("proofing: %w", err)
	}
	return m, path, nil
}

// SyntheticLicence is the synthetic licence number of person number i of
// registry.Generate(seed, …) as renewed in delta number renewal (0: the
// snapshot's): the first letter of the health number, four digits, the
// birth date as YYMMDD and two digits, as Québec's numbers are laid out.
func SyntheticLicence(seed uint64, i int, p *sqin.Person, renewal int) string {
	h := licenceHash(seed, i, 2+uint64(renewal))
	bd := p.BirthDate // YYYY-MM-DD
	return fmt.Sprintf("%c%04d%s%s%s%02d", p.HealthNo[0], h%10000, bd[2:4], bd[5:7], bd[8:10], (h>>20)%100)
}

func licenceHash(seed uint64, i int, salt uint64) uint64 {
	x := seed ^ 0x6c6963656e6365 ^ salt*0x9e3779b97f4a7c15 ^ uint64(i)*0xbf58476d1ce4e5b9
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
