package proofing

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

// Delivery states kept by the store.
const (
	DeliveryRunning = "running"
	DeliveryDone    = "done"
	DeliveryRefused = "refused"
)

// SecretDelivery is one delivery as the store records it.
type SecretDelivery struct {
	Source     string
	SecretType string
	Sequence   int64
	Kind       string
	SHA256     string
	Records    int64
	Status     string
}

// DeliveryCounts are an import's outcome.
type DeliveryCounts struct {
	Stored   int64 // secrets stored (new or replaced)
	Removed  int64 // secrets removed by a remove line
	Dropped  int64 // a snapshot's: secrets of earlier deliveries it did not restate
	Unknown  int64 // lines whose health number designates nobody in the registry
	Rejected int64
}

// DeliveryStore is what ImportSecrets needs from storage
// (internal/sqlstore implements it on SQLite and PostgreSQL).
type DeliveryStore interface {
	// BeginSecretDelivery records d as running, in one transaction that
	// applies NextDelivery to the source's earlier deliveries of that
	// secret type. It reports done when the same delivery (sequence and
	// SHA-256) was imported already.
	BeginSecretDelivery(ctx context.Context, d *SecretDelivery, now time.Time) (done bool, err error)
	// PersonsByHealthNumber returns the person (not removed) of each
	// health number the registry knows.
	PersonsByHealthNumber(ctx context.Context, nams []string) (map[string]string, error)
	// ApplySecrets stores put (tagged with d's source and sequence) and
	// deletes the secrets of type d.SecretType of the persons in remove, in
	// one transaction.
	ApplySecrets(ctx context.Context, d *SecretDelivery, put []store.LocalSecret, remove []string, now time.Time) error
	// FinishSecretDelivery marks d done with its counts; for a snapshot it
	// first deletes the source's secrets of that type delivered before d,
	// and returns how many. The audit events of ctx commit with it.
	FinishSecretDelivery(ctx context.Context, d *SecretDelivery, c DeliveryCounts, now time.Time) (dropped int64, err error)
	// RefuseSecretDelivery marks d refused (with the events of ctx).
	RefuseSecretDelivery(ctx context.Context, d *SecretDelivery, reason string, now time.Time) error
}

// ErrSequence marks a delivery out of sequence (see NextDelivery).
var ErrSequence = errors.New("secret delivery out of sequence")

// NextDelivery decides whether d may start, given the source's earlier
// deliveries of the same secret type (any order): the same sequence with
// the same SHA-256 is done (imported) or resumed (running, refused); a
// sequence is never reused with other content unless it was refused; a
// delta follows the last imported delivery by exactly one, after a
// snapshot; a snapshot comes after the last imported; nothing starts
// while another delivery is running.
func NextDelivery(earlier []SecretDelivery, d *SecretDelivery) (done bool, err error) {
	var last int64
	snapshot := false
	for _, e := range earlier {
		if e.Sequence == d.Sequence {
			switch {
			case e.SHA256 == d.SHA256 && e.Status == DeliveryDone:
				return true, nil
			case e.SHA256 == d.SHA256 || e.Status == DeliveryRefused:
				continue // run again
			default:
				return false, fmt.Errorf("%w: sequence %d of %s was used by another file (a sequence number is never reused)", ErrSequence, d.Sequence, d.Source)
			}
		}
		if e.Status == DeliveryRunning {
			return false, fmt.Errorf("%w: delivery %d of %s is unfinished: run it again first", ErrSequence, e.Sequence, d.Source)
		}
		if e.Status == DeliveryDone {
			last = max(last, e.Sequence)
			snapshot = snapshot || e.Kind == DeliverySnapshot
		}
	}
	switch {
	case d.Kind == DeliveryDelta && !snapshot:
		return false, fmt.Errorf("%w: a delta needs a snapshot of %s first", ErrSequence, d.Source)
	case d.Kind == DeliveryDelta && d.Sequence != last+1:
		return false, fmt.Errorf("%w: the next delta of %s is %d, not %d", ErrSequence, d.Source, last+1, d.Sequence)
	case d.Sequence <= last:
		return false, fmt.Errorf("%w: %s is already at sequence %d", ErrSequence, d.Source, last)
	}
	return false, nil
}

// ImportOptions tune ImportSecrets.
type ImportOptions struct {
	// Key keys SecretHash (the prover's key).
	Key []byte
	// MaxRejectRatio is the share of the manifest's records that may be
	// rejected before the delivery is refused (default 0.01; negative:
	// none).
	MaxRejectRatio float64
	// RejectsPath is the reject report (default: data file + ".rejects.csv").
	RejectsPath string
	// BatchSize is lines per transaction (default 2,000).
	BatchSize int
	// Progress, when set, is called after each stored batch with the
	// records read and the manifest's record count.
	Progress func(done, total int64)
	Logger   *slog.Logger
	Now      func() time.Time
	Actor    audit.Actor // default: system "proofing-import"
}

// ImportSummary is what ImportSecrets did.
type ImportSummary struct {
	Manifest        *SecretManifest
	AlreadyImported bool
	Records         int64
	DeliveryCounts
	Elapsed time.Duration
}

// reject is one rejected line of the report.
type reject struct {
	line          int64
	field, reason string
}

// ImportSecrets imports one secret delivery: the manifest is checked, the
// data file read once to check its SHA-256 and every line (nothing is
// written before; a file over the reject threshold is refused whole),
// then read again to store each value's keyed hash (SecretHash, under the
// registry person its health number designates) in batches. Values are
// never written anywhere in clear, nor logged; the reject report names
// the line, the field and the rule. Running a delivery again is
// harmless: an imported one changes nothing, an interrupted one is
// applied again from its first line (storing the same hashes).
func ImportSecrets(ctx context.Context, st DeliveryStore, cat *Catalogue, manifestPath string, o ImportOptions) (*ImportSummary, error) {
	start := time.Now()
	if len(o.Key) < 32 {
		return nil, errors.New("proofing import: the secret-hash key must be at least 32 bytes")
	}
	if o.MaxRejectRatio == 0 {
		o.MaxRejectRatio = 0.01
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Actor.Kind == "" {
		o.Actor = audit.Actor{Kind: audit.ActorSystem, ID: "proofing-import"}
	}
	m, dataPath, err := ReadSecretManifest(manifestPath)
	if err != nil {
		return nil, err
	}
	s, ok := cat.Secret(m.SecretType)
	if !ok || s.Verify != VerifyLocal || s.registryHeld() {
		return nil, fmt.Errorf("%w: secret_type %q is not a local secret its holder delivers (catalogue)", ErrManifest, m.SecretType)
	}
	if o.RejectsPath == "" {
		o.RejectsPath = dataPath + ".rejects.csv"
	}
	sum := &ImportSummary{Manifest: m}
	d := &SecretDelivery{Source: m.Source, SecretType: m.SecretType, Sequence: m.Sequence, Kind: m.Kind, SHA256: m.SHA256,
		Records: m.RecordCount}
	event := func(action, outcome, detail string) audit.Event {
		text := fmt.Sprintf("%s %s %s %d: %s", m.Source, m.SecretType, m.Kind, m.Sequence, detail)
		for len(text) > audit.MaxDetail {
			text = text[:len(text)-1]
		}
		return audit.Event{Time: o.Now().UTC(), Actor: o.Actor, Action: action, Outcome: outcome, Detail: text}
	}
	refuse := func(reason string) error {
		ev := event("proofing.secrets.refused", audit.Failure, reason)
		if err := st.RefuseSecretDelivery(audit.With(context.WithoutCancel(ctx), ev), d, reason, o.Now().UTC()); err != nil {
			return fmt.Errorf("proofing import: record the refusal: %w", err)
		}
		return fmt.Errorf("proofing import: delivery refused: %s", reason)
	}

	done, err := st.BeginSecretDelivery(ctx, d, o.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("proofing import: %w", err)
	}
	if done {
		sum.AlreadyImported = true
		return sum, nil
	}

	// Pass 1: SHA-256, every line checked, duplicates found; nothing
	// written to the database.
	rejects, records, shaOK, err := checkDelivery(dataPath, m, s)
	var he *headerError
	switch {
	case !shaOK && (err == nil || errors.As(err, &he)):
		return nil, refuse("the data file's SHA-256 differs from the manifest's")
	case errors.As(err, &he):
		return nil, refuse(he.Error())
	case err != nil:
		return nil, fmt.Errorf("proofing import: %w", err)
	}
	if err := writeRejects(o.RejectsPath, rejects); err != nil {
		return nil, fmt.Errorf("proofing import: reject report: %w", err)
	}
	sum.Rejected = int64(len(rejects))
	if records != m.RecordCount {
		return nil, refuse(fmt.Sprintf("the data file holds %d records, the manifest says %d", records, m.RecordCount))
	}
	limit := int64(0)
	if o.MaxRejectRatio > 0 {
		limit = int64(math.Floor(o.MaxRejectRatio * float64(m.RecordCount)))
	}
	if sum.Rejected > limit {
		return nil, refuse(fmt.Sprintf("%d records rejected, more than %d (see the reject report)", sum.Rejected, limit))
	}
	o.Logger.Info("secret delivery checked", "source", m.Source, "secret_type", m.SecretType, "sequence", m.Sequence,
		"records", records, "rejected", sum.Rejected)

	// Pass 2: store the hashes.
	skip := make(map[int64]bool, len(rejects))
	for _, r := range rejects {
		skip[r.line] = true
	}
	unknown, err := applyDelivery(ctx, st, dataPath, m, s, d, skip, o, &sum.DeliveryCounts)
	if err != nil {
		return nil, fmt.Errorf("proofing import: %w", err)
	}
	if len(unknown) > 0 {
		// Lines the registry cannot match go to the report too (they are
		// not rejections: the holder's file may hold people RAMQ does not).
		all := append(rejects, unknown...)
		slices.SortFunc(all, func(a, b reject) int { return int(a.line - b.line) })
		if err := writeRejects(o.RejectsPath, all); err != nil {
			return nil, fmt.Errorf("proofing import: reject report: %w", err)
		}
	}
	sum.Records = records
	detail := fmt.Sprintf("%d records: %d stored, %d removed, %d unknown, %d rejected", records, sum.Stored, sum.Removed, sum.Unknown, sum.Rejected)
	ev := event("proofing.secrets.imported", audit.Success, detail)
	if sum.Dropped, err = st.FinishSecretDelivery(audit.With(ctx, ev), d, sum.DeliveryCounts, o.Now().UTC()); err != nil {
		return nil, fmt.Errorf("proofing import: finish: %w", err)
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// headerError is a data file refused whole: its header is wrong.
type headerError struct{ reason string }

func (e *headerError) Error() string { return e.reason }

// checkDelivery reads the data file once: its SHA-256, every line's
// format, and lines whose health number an earlier line already used.
func checkDelivery(path string, m *SecretManifest, s *SecretType) (rejects []reject, records int64, shaOK bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, false, fmt.Errorf("open data file: %w", err)
	}
	defer f.Close()
	r := newDeliveryReader(f, m.Format, DeliveryHeader(s))
	if err := r.readHeader(); err != nil {
		if _, e := io.Copy(io.Discard, r.br); e != nil {
			return nil, 0, false, fmt.Errorf("read data file: %w", e)
		}
		return nil, 0, shaMatches(r, m), &headerError{err.Error()}
	}
	seed := maphash.MakeSeed()
	var keys []uint64 // of the valid lines' health numbers: 8 bytes a record
	for {
		err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		records++
		var le *lineError
		if errors.As(err, &le) {
			rejects = append(rejects, reject{r.line, "", le.reason})
			continue
		}
		if err != nil {
			return nil, 0, false, err
		}
		if field, reason := checkLine(r.rec, m.Kind, s); reason != "" {
			rejects = append(rejects, reject{r.line, field, reason})
			continue
		}
		keys = append(keys, maphash.String(seed, r.rec[1]))
	}
	if !shaMatches(r, m) {
		return nil, records, false, nil
	}
	// Candidates: hashes two valid lines share; read again to compare the
	// numbers themselves.
	slices.Sort(keys)
	cand := map[uint64]bool{}
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			cand[keys[i]] = true
		}
	}
	keys = nil
	if len(cand) > 0 {
		dups, err := exactDuplicates(path, m, s, seed, cand)
		if err != nil {
			return nil, 0, false, err
		}
		rejects = append(rejects, dups...)
		slices.SortFunc(rejects, func(a, b reject) int { return int(a.line - b.line) })
	}
	return rejects, records, true, nil
}

func shaMatches(r *deliveryReader, m *SecretManifest) bool {
	return fmt.Sprintf("%x", r.sum.Sum(nil)) == m.SHA256
}

// exactDuplicates reads the file again and rejects every valid line whose
// health number (among the candidate hashes) an earlier valid line has.
func exactDuplicates(path string, m *SecretManifest, s *SecretType, seed maphash.Seed, cand map[uint64]bool) ([]reject, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open data file: %w", err)
	}
	defer f.Close()
	r := newDeliveryReader(f, m.Format, DeliveryHeader(s))
	if err := r.readHeader(); err != nil {
		return nil, err
	}
	first := map[string]int64{}
	var out []reject
	for {
		err := r.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			continue // reported in the first pass
		}
		if _, reason := checkLine(r.rec, m.Kind, s); reason != "" || !cand[maphash.String(seed, r.rec[1])] {
			continue
		}
		if l, ok := first[r.rec[1]]; ok {
			out = append(out, reject{r.line, MatchNAM, "health number already on line " + strconv.FormatInt(l, 10)})
			continue
		}
		first[r.rec[1]] = r.line
	}
}

// checkLine checks one record and returns the field at fault and the
// rule broken ("" when the record is valid).
func checkLine(rec []string, kind string, s *SecretType) (field, reason string) {
	switch rec[0] {
	case OpSet:
	case OpRemove:
		if kind == DeliverySnapshot {
			return "op", "a snapshot holds only set lines"
		}
	default:
		return "op", "op must be set or remove"
	}
	if !namShape(rec[1]) {
		return MatchNAM, "health number must be 4 upper-case letters and 8 digits (compact)"
	}
	if rec[0] == OpRemove {
		for i, f := range s.Fields {
			if rec[2+i] != "" {
				return f.Name, "must be empty on a remove line"
			}
		}
		return "", ""
	}
	values := make(map[string]string, len(s.Fields))
	for i, f := range s.Fields {
		values[f.Name] = rec[2+i]
	}
	if _, err := s.Normalize(values); err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return fe.Field, "does not have the secret's format (catalogue pattern or checksum)"
		}
		return "", err.Error()
	}
	return "", ""
}

// applyDelivery reads the data file again and stores the valid lines in
// batches; it returns the lines whose health number matched nobody.
func applyDelivery(ctx context.Context, st DeliveryStore, path string, m *SecretManifest, s *SecretType, d *SecretDelivery,
	skip map[int64]bool, o ImportOptions, c *DeliveryCounts) ([]reject, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open data file: %w", err)
	}
	defer f.Close()
	r := newDeliveryReader(f, m.Format, DeliveryHeader(s))
	if err := r.readHeader(); err != nil {
		return nil, err
	}
	type line struct {
		n      int64
		op     string
		nam    string
		values []string
	}
	var (
		batch   []line
		unknown []reject
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		nams := make([]string, len(batch))
		for i, l := range batch {
			nams[i] = l.nam
		}
		persons, err := st.PersonsByHealthNumber(ctx, nams)
		if err != nil {
			return fmt.Errorf("match health numbers: %w", err)
		}
		var put []store.LocalSecret
		var remove []string
		for _, l := range batch {
			pid, ok := persons[l.nam]
			switch {
			case !ok:
				unknown = append(unknown, reject{l.n, MatchNAM, "no person with this health number in the registry (line not imported)"})
				c.Unknown++
			case l.op == OpRemove:
				remove = append(remove, pid)
			default:
				put = append(put, store.LocalSecret{SecretType: s.ID, PersonID: pid, Hash: SecretHash(o.Key, s.ID, pid, l.values)})
			}
		}
		if err := st.ApplySecrets(ctx, d, put, remove, o.Now().UTC()); err != nil {
			return fmt.Errorf("store batch ending at line %d: %w", batch[len(batch)-1].n, err)
		}
		c.Stored += int64(len(put))
		c.Removed += int64(len(remove))
		if o.Progress != nil {
			done := r.line // the CSV header is line 1
			if m.Format == FormatCSV {
				done--
			}
			o.Progress(done, m.RecordCount)
		}
		batch = batch[:0]
		return nil
	}
	vals := make(map[string]string, len(s.Fields))
	for {
		err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *lineError
		if skip[r.line] || errors.As(err, &le) {
			continue
		}
		if err != nil {
			return nil, err
		}
		l := line{n: r.line, op: r.rec[0], nam: r.rec[1]}
		if l.op == OpSet {
			for i, fd := range s.Fields {
				vals[fd.Name] = r.rec[2+i]
			}
			if l.values, err = s.Normalize(vals); err != nil {
				return nil, fmt.Errorf("line %d changed since it was checked: %w", r.line, err)
			}
		}
		batch = append(batch, l)
		if len(batch) >= o.BatchSize {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return unknown, nil
}

// writeRejects writes the report "line,field,reason" (never a value).
func writeRejects(path string, rejects []reject) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"line", "field", "reason"})
	for _, r := range rejects {
		_ = w.Write([]string{strconv.FormatInt(r.line, 10), r.field, r.reason})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
