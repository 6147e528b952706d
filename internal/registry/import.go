package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sqin/sqin/internal/audit"
)

// Reasons an import is refused, for errors.Is. A refused delivery changes
// nothing visible.
var (
	// ErrAlreadyImported: this delivery (same source, sequence and
	// checksum) was imported before. Import treats it as success.
	ErrAlreadyImported = errors.New("delivery already imported")
	// ErrOutOfSequence: a delta whose sequence does not follow the last
	// delivery imported from its source, a delta with no snapshot before
	// it, or a snapshot older than the last delivery.
	ErrOutOfSequence = errors.New("delivery out of sequence")
	// ErrSequenceReused: another delivery with the same source and
	// sequence but a different checksum was imported.
	ErrSequenceReused = errors.New("sequence number already used by another delivery")
	// ErrInProgress: another delivery of the same source was interrupted
	// and must be run again (or finish) first.
	ErrInProgress = errors.New("another delivery of this source is in progress")
	// ErrChecksum: the data file's SHA-256 is not the manifest's.
	ErrChecksum = errors.New("data file checksum does not match the manifest")
	// ErrRecordCount: the data file does not hold the manifest's number
	// of records.
	ErrRecordCount = errors.New("data file record count does not match the manifest")
	// ErrTooManyRejects: more records were rejected than the threshold
	// allows.
	ErrTooManyRejects = errors.New("too many rejected records")
)

// Store is what Import needs from storage; internal/sqlstore implements
// it on SQLite and PostgreSQL. The methods are documented with their
// implementation there; in short: BeginImport records a delivery or finds
// the interrupted run of it, StageRecords adds valid records to its
// staging area together with the line reached (one transaction),
// MergeImport makes the whole delivery visible in one transaction,
// RefuseImport discards a refused delivery's staging area, and
// EndDeceasedSessions ends the sessions of accounts of deceased people.
type Store interface {
	BeginImport(ctx context.Context, m *Manifest, now time.Time) (*ImportState, error)
	StageRecords(ctx context.Context, st *ImportState, recs []Record, throughLine int64) error
	MergeImport(ctx context.Context, st *ImportState, p MergeParams) (*Summary, error)
	RefuseImport(ctx context.Context, st *ImportState, reason string, now time.Time) error
	EndDeceasedSessions(ctx context.Context, now time.Time) (int, error)
}

// ImportState is a delivery being imported.
type ImportState struct {
	ID       int64
	Source   string
	Sequence int64
	Kind     string
	AsOf     string // default effective date
	// StagedLine: every valid record up to this line is staged (0 when
	// nothing is); a run resumed after a crash stages only later lines.
	StagedLine int64
	// Mode is how the store stages this delivery (its own names: on
	// internal/sqlstore "merge" or "load"), kept across a resumed run.
	Mode string
	// Started is when the delivery was first begun.
	Started time.Time
}

// MergeParams are what MergeImport needs besides the staged records.
type MergeParams struct {
	Records    int64 // lines read, rejected ones included
	Rejected   int64 // records rejected while reading
	MaxRejects int64 // refuse with ErrTooManyRejects above this, duplicates included
	Now        time.Time
	// Duplicate is called, in line order, for each line whose source
	// reference an earlier line of the delivery already holds; that line
	// is rejected.
	Duplicate func(line int64) error
	// Candidates, when FindDuplicates is false, are the only lines that
	// may repeat an earlier line's reference (Import's in-memory filter
	// saw their identifier's first 64 bits before): the store checks them
	// exactly. When FindDuplicates is true (the filter was full), the
	// store looks for duplicates among all staged lines.
	Candidates     []int64
	FindDuplicates bool
	// Audit, when set, is called inside the merge transaction with the
	// final counts, to add the import's audit event (audit.Add) to the
	// transaction's context.
	Audit func(*Summary)
}

// Summary is what an import did.
type Summary struct {
	ImportID        int64
	Source          string
	Sequence        int64
	Kind            string
	Records         int64 // lines read, rejected ones included
	Created         int64
	Changed         int64
	Unchanged       int64
	Deceased        int64 // people whose death this delivery recorded
	Removed         int64
	Unknown         int64 // death or remove records for people not in the registry
	Rejected        int64
	SessionsEnded   int
	AlreadyImported bool
	Resumed         bool
	Elapsed         time.Duration
}

// ImportOptions tune Import.
type ImportOptions struct {
	// MaxRejectRatio is the share of the manifest's records that may be
	// rejected before the whole delivery is refused (default 0.01; a
	// negative value allows none).
	MaxRejectRatio float64
	// RejectsPath is where the reject report goes (default: the data
	// file's path + ".rejects.csv").
	RejectsPath string
	// BatchSize is the number of records staged per transaction (default
	// 50,000).
	BatchSize int
	// Progress, when set, is called after each staged batch and at the end
	// with the lines read and the manifest's record count.
	Progress func(done, total int64)
	Logger   *slog.Logger
	Now      func() time.Time
	// StoreFindsDuplicates skips the in-memory duplicate filter (up to
	// 256 MiB for 25 million records) and lets the store look for
	// repeated references among all staged records, as it does when the
	// filter is full.
	StoreFindsDuplicates bool
}

// Import imports the delivery whose manifest is at manifestPath into st:
// it checks the manifest and the data file's checksum, refuses a delivery
// out of sequence, treats one already imported as done, reads and checks
// every record with bounded memory, writes the rejected ones to the reject
// report, stages the valid ones and makes them visible in one transaction
// (see docs/formats/registry-import.md). Interrupted at any point and run
// again, it resumes: nothing is lost or counted twice.
func Import(ctx context.Context, st Store, manifestPath string, o ImportOptions) (*Summary, error) {
	start := time.Now()
	if o.MaxRejectRatio == 0 {
		o.MaxRejectRatio = 0.01
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 50_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m, dataPath, err := ReadManifest(manifestPath)
	if err != nil {
		return nil, err
	}
	sum, err := fileSHA256(dataPath)
	if err != nil {
		return nil, err
	}
	if sum != m.SHA256 {
		return nil, ErrChecksum
	}
	state, err := st.BeginImport(ctx, m, o.Now().UTC())
	if errors.Is(err, ErrAlreadyImported) {
		n, err := st.EndDeceasedSessions(ctx, o.Now().UTC())
		if err != nil {
			return nil, err
		}
		return &Summary{Source: m.Source, Sequence: m.Sequence, Kind: m.Kind, AlreadyImported: true,
			SessionsEnded: n, Elapsed: time.Since(start)}, nil
	}
	if err != nil {
		return nil, err
	}
	CrashPoint("begin")
	resumed := state.StagedLine > 0
	o.Logger.Info("registry import started", "source", m.Source, "sequence", m.Sequence, "kind", m.Kind,
		"records", m.RecordCount, "import", state.ID, "resumed_after_line", state.StagedLine)

	maxRejects := int64(0)
	if o.MaxRejectRatio > 0 {
		maxRejects = int64(o.MaxRejectRatio * float64(m.RecordCount))
	}
	rejectsPath := o.RejectsPath
	if rejectsPath == "" {
		rejectsPath = dataPath + ".rejects.csv"
	}
	rj, err := newRejectWriter(rejectsPath)
	if err != nil {
		return nil, err
	}
	defer rj.close()

	refuse := func(cause error) (*Summary, error) {
		reason := cause.Error()
		ev := importEvent(m, "registry.refused", audit.Failure, o.Now().UTC(), reason)
		if err := st.RefuseImport(audit.With(context.WithoutCancel(ctx), ev), state, reason, o.Now().UTC()); err != nil {
			return nil, errors.Join(cause, err)
		}
		o.Logger.Warn("registry import refused", "source", m.Source, "sequence", m.Sequence, "import", state.ID,
			"reason", reason)
		return nil, cause
	}

	records, rejected, dups, err := readAndStage(ctx, st, state, m, dataPath, rj, maxRejects, o)
	if err != nil {
		if errors.Is(err, ErrTooManyRejects) || errors.Is(err, ErrRecordCount) || errors.Is(err, ErrHeader) {
			return refuse(err)
		}
		return nil, err
	}
	// The filter's table (up to 256 MiB) is not needed any more: give it
	// back before the merge, when the database's cache fills.
	dups.slots = nil
	debug.FreeOSMemory()
	o.Logger.Info("registry import staged, merging in one transaction", "source", m.Source, "sequence", m.Sequence,
		"import", state.ID, "records", records, "rejected", rejected, "elapsed", time.Since(start).Round(time.Millisecond))
	mctx := audit.Recorder(ctx)
	now := o.Now().UTC()
	s, err := st.MergeImport(mctx, state, MergeParams{Records: records, Rejected: rejected, MaxRejects: maxRejects, Now: now,
		Candidates: dups.candidates, FindDuplicates: dups.full,
		Audit: func(s *Summary) {
			audit.Add(mctx, importEvent(m, "registry.imported", audit.Success, now, fmt.Sprintf(
				"%d records: created %d, changed %d, unchanged %d, deceased %d, removed %d, unknown %d, rejected %d",
				records, s.Created, s.Changed, s.Unchanged, s.Deceased, s.Removed, s.Unknown, s.Rejected)))
		},
		Duplicate: func(line int64) error {
			return rj.write(&RecordError{Line: line, Field: CSVHeader[FRef],
				Reason: "the same source reference is on an earlier line"})
		}})
	if errors.Is(err, ErrTooManyRejects) {
		return refuse(fmt.Errorf("%w: duplicates included, more than %d", ErrTooManyRejects, maxRejects))
	}
	if err != nil {
		return nil, err
	}
	CrashPoint("merged")
	if err := rj.close(); err != nil {
		return nil, err
	}
	s.Source, s.Sequence, s.Kind, s.Records, s.Resumed = m.Source, m.Sequence, m.Kind, records, resumed
	if s.SessionsEnded, err = st.EndDeceasedSessions(ctx, o.Now().UTC()); err != nil {
		return nil, err
	}
	s.Elapsed = time.Since(start)
	o.Logger.Info("registry import done", "source", m.Source, "sequence", m.Sequence, "import", s.ImportID,
		"records", s.Records, "created", s.Created, "changed", s.Changed, "unchanged", s.Unchanged,
		"deceased", s.Deceased, "removed", s.Removed, "unknown", s.Unknown, "rejected", s.Rejected,
		"sessions_ended", s.SessionsEnded, "elapsed", s.Elapsed.Round(time.Millisecond))
	return s, nil
}

// readAndStage reads the data file, writes rejects and stages valid
// records after state.StagedLine, in batches handed to a second goroutine
// so that parsing and writing overlap. It returns the records read and
// rejected.
func readAndStage(ctx context.Context, st Store, state *ImportState, m *Manifest, dataPath string,
	rj *rejectWriter, maxRejects int64, o ImportOptions) (records, rejected int64, dups *dupFilter, err error) {
	f, err := os.Open(dataPath)
	if err != nil {
		return 0, 0, nil, err
	}
	dups = newDupFilter(m.RecordCount)
	if o.StoreFindsDuplicates {
		dups.full, dups.slots = true, nil
	}
	defer f.Close()

	type batch struct {
		recs    []Record
		through int64
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	full, free := make(chan batch, 1), make(chan []Record, 2)
	free <- make([]Record, 0, o.BatchSize)
	free <- make([]Record, 0, o.BatchSize)
	var (
		wg       sync.WaitGroup
		stageErr error
	)
	wg.Go(func() {
		for b := range full {
			if stageErr == nil {
				if err := st.StageRecords(ctx, state, b.recs, b.through); err != nil {
					stageErr = err
					cancel(err)
				}
			}
			free <- b.recs[:0]
		}
	})
	send := func(recs []Record, through int64) {
		full <- batch{recs, through}
		if o.Progress != nil {
			o.Progress(records, m.RecordCount)
		}
	}

	rd := NewReader(f, m.Format)
	asOf := m.AsOf()
	cur := <-free
	var rec Record
	for {
		if err = ctx.Err(); err != nil {
			break
		}
		err = rd.Next(&rec)
		if err == io.EOF {
			err = nil
			break
		}
		var re *RecordError
		if errors.As(err, &re) {
			records++
			rejected++
			if err = rj.write(re); err != nil {
				break
			}
			if rejected > maxRejects {
				err = fmt.Errorf("%w: more than %d", ErrTooManyRejects, maxRejects)
				break
			}
			continue
		}
		if err != nil {
			break
		}
		records++
		if re := rec.Validate(m.Kind, asOf); re != nil {
			rejected++
			if err = rj.write(re); err != nil {
				break
			}
			if rejected > maxRejects {
				err = fmt.Errorf("%w: more than %d", ErrTooManyRejects, maxRejects)
				break
			}
			continue
		}
		var key uint64
		rec.PID, key = personKey(m.Source, rec.Ref())
		dups.add(key, rec.Line)
		if int64(len(dups.candidates)) > maxRejects+maxFalseCandidates {
			err = fmt.Errorf("%w: more than %d repeated source references", ErrTooManyRejects, maxRejects)
			break
		}
		if rec.Line <= state.StagedLine {
			continue
		}
		cur = append(cur, rec)
		if len(cur) == o.BatchSize {
			send(cur, rec.Line)
			cur = <-free
		}
	}
	if err == nil && records != m.RecordCount {
		err = fmt.Errorf("%w: %d records, the manifest says %d", ErrRecordCount, records, m.RecordCount)
	}
	if err == nil && (len(cur) > 0 || rd.line > state.StagedLine) {
		send(cur, rd.line)
	}
	close(full)
	wg.Wait()
	if stageErr != nil {
		return records, rejected, dups, stageErr
	}
	if err == nil && o.Progress != nil {
		o.Progress(records, m.RecordCount)
	}
	return records, rejected, dups, err
}

// maxFalseCandidates bounds the lines the duplicate filter may flag
// without being duplicates (two references whose identifiers share 64
// bits: about one chance in 200,000 for 9 million people).
const maxFalseCandidates = 64

// dupFilter finds the lines whose person identifier's first 64 bits an
// earlier line had: an open-addressing set of 64-bit keys, 8 bytes a slot,
// at most 2^25 slots (256 MiB, enough for 25 million records). When it
// would be fuller than that, it stops and the store looks for duplicates
// itself (full).
type dupFilter struct {
	slots      []uint64
	n, limit   int
	shift      uint
	candidates []int64
	full       bool
}

func newDupFilter(records int64) *dupFilter {
	bits := uint(10)
	for bits < 25 && int64(1)<<bits < records+records/2 {
		bits++
	}
	return &dupFilter{slots: make([]uint64, 1<<bits), limit: (1 << bits) * 3 / 4, shift: 64 - bits}
}

func (f *dupFilter) add(key uint64, line int64) {
	if f.full {
		return
	}
	if f.n == f.limit {
		f.full, f.slots, f.candidates = true, nil, nil
		return
	}
	if key == 0 {
		key = 1
	}
	mask := uint64(len(f.slots) - 1)
	for h := (key * 0x9e3779b97f4a7c15) >> f.shift; ; h = (h + 1) & mask {
		switch f.slots[h] {
		case 0:
			f.slots[h] = key
			f.n++
			return
		case key:
			f.candidates = append(f.candidates, line)
			return
		}
	}
}

// importEvent is the audit event of a delivery imported or refused: the
// delivery and counts, no personal data.
func importEvent(m *Manifest, action, outcome string, now time.Time, detail string) audit.Event {
	d := []rune(fmt.Sprintf("%s %s %d: %s", m.Source, m.Kind, m.Sequence, detail))
	for len(string(d)) > audit.MaxDetail {
		d = d[:len(d)-1]
	}
	return audit.Event{Time: now, Actor: audit.Actor{Kind: audit.ActorSystem, ID: "registry-import"}, Action: action,
		Outcome: outcome, Detail: string(d)}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read data file: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// rejectWriter writes the reject report: a CSV file "line,field,reason".
type rejectWriter struct {
	f      *os.File
	buf    []byte
	closed bool
}

func newRejectWriter(path string) (*rejectWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("reject report: %w", err)
	}
	return &rejectWriter{f: f, buf: []byte("line,field,reason\n")}, nil
}

func (w *rejectWriter) write(e *RecordError) error {
	w.buf = strconv.AppendInt(w.buf, e.Line, 10)
	w.buf = append(w.buf, ',')
	w.buf = append(w.buf, e.Field...)
	w.buf = append(w.buf, ',', '"')
	w.buf = append(w.buf, strings.ReplaceAll(e.Reason, `"`, `""`)...)
	w.buf = append(w.buf, '"', '\n')
	if len(w.buf) > 64<<10 {
		return w.flush()
	}
	return nil
}

func (w *rejectWriter) flush() error {
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *rejectWriter) close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return errors.Join(w.flush(), w.f.Close())
}

// CrashEnv names the environment variable that makes the import process
// kill itself (SIGKILL, as kill -9 would) at a point, for crash tests:
// "begin", "stage:N" (after the Nth staged batch is committed),
// "stage-tx:N" (inside the Nth staging transaction, before its commit),
// "merge-tx" (inside the merge transaction, before its commit) or
// "merged" (after the merge is committed).
const CrashEnv = "SQIN_REGISTRY_CRASH"

var crashCounts sync.Map // point name -> *atomic counter (int64 behind a mutex)

// CrashPoint kills the process when CrashEnv names this point (and, for
// points counted with ":N", this is its Nth passage).
func CrashPoint(name string) {
	want := os.Getenv(CrashEnv)
	if want == "" {
		return
	}
	point, nth, counted := strings.Cut(want, ":")
	if point != name {
		return
	}
	if counted {
		v, _ := crashCounts.LoadOrStore(name, new(crashCounter))
		c := v.(*crashCounter)
		c.mu.Lock()
		c.n++
		n := c.n
		c.mu.Unlock()
		if strconv.Itoa(n) != nth {
			return
		}
	}
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		_ = p.Kill()
	}
	select {} // wait for the signal
}

type crashCounter struct {
	mu sync.Mutex
	n  int
}
