package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sqin/sqin"
)

// SyntheticSource is the source name of generated deliveries.
const SyntheticSource = "RAMQ-SYNTHETIC"

// DeliveryOptions say what GenerateDelivery writes.
type DeliveryOptions struct {
	Seed   uint64
	Count  int    // people of the base population (the snapshot)
	Kind   string // KindSnapshot or KindDelta
	Format string // FormatCSV (default) or FormatJSONL
	Source string // default SyntheticSource
	// Sequence of the delivery; default 1 for a snapshot, BaseSeq+1 for a
	// delta.
	Sequence int64
	// BaseSeq is the sequence of the snapshot a delta follows (default 1).
	// Delta number Sequence-BaseSeq (1–100) holds the events of about 1 %
	// of the population and 0.05 % births.
	BaseSeq int64
}

// syntheticEpoch: the extraction time of sequence 0; sequence n is n days
// later, so a seed always gives the same files.
var syntheticEpoch = time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)

// maxDeltas is how many deltas a base population has events for.
const maxDeltas = 100

// GenerateDelivery writes a delivery of synthetic people into dir (created
// if missing): a data file and its manifest. It returns the manifest and
// the manifest's path. The same options always give the same bytes.
//
// A snapshot holds the Count people Generate makes for Seed, each with a
// health card (expiry, sequence) and a source reference "SYN" + 20
// hexadecimal digits. A delta number d holds, for the people whose event
// falls in delta d (one person in a hundred, each once in deltas 1–100): a
// move (change), a card renewal (change), a death or a removal; and
// Count/2000 births (create), people Generate makes after the first Count.
func GenerateDelivery(dir string, o DeliveryOptions) (*Manifest, string, error) {
	if o.Format == "" {
		o.Format = FormatCSV
	}
	if o.Source == "" {
		o.Source = SyntheticSource
	}
	if o.Count < 0 || o.Count > MaxGenerate {
		return nil, "", fmt.Errorf("registry: count must be between 0 and %d", MaxGenerate)
	}
	births, delta := 0, int64(0)
	switch o.Kind {
	case KindSnapshot:
		if o.Sequence == 0 {
			o.Sequence = 1
		}
	case KindDelta:
		if o.BaseSeq == 0 {
			o.BaseSeq = 1
		}
		if o.Sequence == 0 {
			o.Sequence = o.BaseSeq + 1
		}
		delta = o.Sequence - o.BaseSeq
		if delta < 1 || delta > maxDeltas {
			return nil, "", fmt.Errorf("registry: a delta's sequence must be 1 to %d after its base", maxDeltas)
		}
		births = max(1, o.Count/2000)
	default:
		return nil, "", errors.New("registry: kind must be snapshot or delta")
	}
	if o.Sequence < 1 {
		return nil, "", errors.New("registry: sequence must be positive")
	}
	total := o.Count + int(delta)*births
	if total > MaxGenerate {
		return nil, "", fmt.Errorf("registry: count must be at most %d", MaxGenerate)
	}
	m := &Manifest{
		Version:     ManifestVersion,
		Source:      o.Source,
		ExtractedAt: syntheticEpoch.AddDate(0, 0, int(o.Sequence)),
		Sequence:    o.Sequence,
		Kind:        o.Kind,
		Format:      o.Format,
		DataFile:    fmt.Sprintf("%s-%06d-%s.%s", o.Source, o.Sequence, o.Kind, o.Format),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	f, err := os.Create(filepath.Join(dir, m.DataFile))
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	w, err := NewWriter(f, o.Format)
	if err != nil {
		return nil, "", err
	}
	asOf := m.AsOf()
	var (
		rec  Record
		prev *sqin.Person
		i    int
	)
	firstBirth := o.Count + int(delta-1)*births
	err = Generate(o.Seed, total, func(p *sqin.Person) error {
		defer func() { prev, i = p, i+1 }()
		switch {
		case o.Kind == KindSnapshot:
			personRecord(&rec, p, o.Seed, uint64(i))
			return w.Write(&rec)
		case i >= firstBirth:
			personRecord(&rec, p, o.Seed, uint64(i))
			return w.Write(&rec)
		case i >= o.Count:
			return nil // born in an earlier delta
		}
		h := mix64(uint64(i) ^ mix64(o.Seed^0x64656c7461)) // "delta"
		if int64(h%maxDeltas)+1 != delta {
			return nil
		}
		personRecord(&rec, p, o.Seed, uint64(i))
		rec.Fields[FOp] = OpChange
		switch k := (h >> 8) % 100; {
		case k < 8: // death, up to 24 days before the extraction
			d := m.ExtractedAt.AddDate(0, 0, -int((h>>20)%25)).Format(time.DateOnly)
			if d < p.BirthDate {
				d = p.BirthDate
			}
			rec = Record{}
			rec.Fields[FOp], rec.Fields[FRef], rec.Fields[FDeathDate] = OpDeath, syntheticRef(p), d
		case k < 12:
			rec = Record{}
			rec.Fields[FOp], rec.Fields[FRef] = OpRemove, syntheticRef(p)
		case k < 60 && prev != nil: // moves to where the previous person lives
			a := prev.Address
			rec.Fields[FCivicNumber], rec.Fields[FStreet], rec.Fields[FUnit] = a.CivicNumber, a.Street, a.Unit
			rec.Fields[FMunicipality], rec.Fields[FPostalCode] = a.Municipality, a.PostalCode
			rec.Fields[FEffectiveDate] = m.ExtractedAt.AddDate(0, 0, -int((h>>20)%30)).Format(time.DateOnly)
		default: // card renewed for eight years
			e := rec.Fields[FCardExpiry]
			y := int(e[0]-'0')*1000 + int(e[1]-'0')*100 + int(e[2]-'0')*10 + int(e[3]-'0')
			rec.Fields[FCardExpiry] = fmt.Sprintf("%04d%s", y+8, e[4:])
			s := int(rec.Fields[FCardSeq][0]-'0')*10 + int(rec.Fields[FCardSeq][1]-'0')
			rec.Fields[FCardSeq] = fmt.Sprintf("%02d", s%99+1)
		}
		if rec.Fields[FEffectiveDate] > asOf {
			rec.Fields[FEffectiveDate] = asOf
		}
		return w.Write(&rec)
	})
	if err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	if err := f.Close(); err != nil {
		return nil, "", err
	}
	m.RecordCount, m.SHA256 = w.Count(), w.SHA256()
	path := filepath.Join(dir, fmt.Sprintf("%s-%06d-%s.manifest.json", o.Source, o.Sequence, o.Kind))
	if err := WriteManifest(path, m); err != nil {
		return nil, "", err
	}
	return m, path, nil
}

// WriteManifest writes m as indented JSON.
func WriteManifest(path string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func syntheticRef(p *sqin.Person) string { return "SYN" + p.ID[2:] }

// personRecord fills rec with a create record of p, with health-card data
// and, for part of the population, a family name other than the name at
// birth (marriedName), derived from the seed and index. p.FamilyName, from
// which p.HealthNo was made, is the name at birth.
func personRecord(rec *Record, p *sqin.Person, seed, i uint64) {
	h := mix64(i ^ mix64(seed^0x63617264)) // "card"
	a := &p.Address
	*rec = Record{Fields: [NumFields]string{
		FOp: OpCreate, FRef: syntheticRef(p), FFamilyName: marriedName(p, seed, i), FBirthFamilyName: p.FamilyName,
		FGivenNames: p.GivenName,
		FBirthDate:  p.BirthDate, FSex: p.Sex, FNAM: p.HealthNo,
		FCardExpiry: cardExpiries[h%uint64(len(cardExpiries))], FCardSeq: cardSeqs[(h>>16)%4],
		FCivicNumber: a.CivicNumber, FStreet: a.Street, FUnit: a.Unit, FMunicipality: a.Municipality,
		FPostalCode: a.PostalCode, FLanguage: p.Language,
	}}
}

// marriedName is the family name p goes by: for part of the adults a
// spouse's name (drawn from the Québec family names by frequency) instead
// of the name at birth — many women born before 1960, when taking the
// husband's name was the custom (since 1981 the Civil Code keeps the
// birth name), fewer of those born later, and a few men (a name changed
// later) — so that the family name of about one person in eleven no
// longer gives the health number's letters. Others keep p.FamilyName.
func marriedName(p *sqin.Person, seed, i uint64) string {
	h := mix64(i ^ mix64(seed^0x6e616d65)) // "name"
	year := 0
	for _, c := range p.BirthDate[:min(4, len(p.BirthDate))] {
		year = year*10 + int(c-'0')
	}
	pct := uint64(0)
	switch {
	case year > 2007: // under 18 on the synthetic extraction dates
	case p.Sex != "F":
		pct = 1
	case year < 1960:
		pct = 45
	case year < 1981:
		pct = 15
	default:
		pct = 4
	}
	if h%100 >= pct {
		return p.FamilyName
	}
	t := &synthTables().frFamily
	k := t.pickValue(uint32(h >> 32))
	if t.names[k] == p.FamilyName {
		k = (k + 1) % len(t.names)
	}
	return t.names[k]
}

var cardSeqs = []string{"01", "02", "03", "04"}

// cardExpiries: every month from 2027-01 to 2034-12.
var cardExpiries = func() []string {
	var s []string
	for y := 2027; y <= 2034; y++ {
		for m := 1; m <= 12; m++ {
			s = append(s, fmt.Sprintf("%04d-%02d", y, m))
		}
	}
	return s
}()
