package signup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/web"
)

// ExportOptions configures ExportLetters.
type ExportOptions struct {
	Dir     string        // each batch is written to Dir/<batch>/
	Key     []byte        // the mail-code key (the server's MailCodeKey)
	TTL     time.Duration // life of the codes; default 30 days
	Issuer  string        // the service's address, printed in the letter
	Catalog *web.Catalog  // letter texts (letter.pdf.*)
	Max     int           // letters per batch; default 1000
	// Stale is the time after which letters claimed by an export that did
	// not finish are claimed again; default 1 h.
	Stale time.Duration
	// Actor and Pseudonyms make the letter.printed audit events; a nil
	// Pseudonyms records none.
	Actor      audit.Actor
	Pseudonyms *audit.Pseudonymizer
	Log        *slog.Logger
	Now        func() time.Time
}

// ExportResult says what an export wrote.
type ExportResult struct {
	Batch     string `json:"batch"`
	Dir       string `json:"dir,omitempty"` // "" when nothing was printed
	Printed   int    `json:"printed"`
	Voided    int    `json:"voided"` // claimed but not printable (no address any more)
	Recovered int    `json:"recovered"`
}

// Manifest is the print shop's list of a batch (manifest.json).
type Manifest struct {
	Batch      string          `json:"batch"`
	CreatedAt  time.Time       `json:"created_at"`
	ValidUntil string          `json:"codes_valid_until"` // Québec date, inclusive
	Paper      string          `json:"paper"`
	Count      int             `json:"count"`
	Letters    []ManifestEntry `json:"letters"`
}

// ManifestEntry is one letter of the batch: a one-page PDF.
type ManifestEntry struct {
	File       string `json:"file"`
	Letter     string `json:"letter"`
	Language   string `json:"language"`
	Pages      int    `json:"pages"`
	Bytes      int    `json:"bytes"`
	SHA256     string `json:"sha256"`
	PostalCode string `json:"postal_code"` // for presorting
}

const partialSuffix = ".partial"

// ExportLockFile is the file in the output directory that an export
// holds locked from start to end (see ExportLetters).
const ExportLockFile = ".sqin-letters-export.lock"

// ErrExportRunning is ExportLetters' error when another export holds the
// output directory.
var ErrExportRunning = errors.New("letters: another export is running into this directory; try again when it ends")

// ExportLetters prints the queued letters: it claims them, writes one PDF
// per letter with a fresh code and a manifest into Dir/<batch>.partial,
// commits the codes' hashes (the letters are then printed, audited without
// the codes), and renames the directory to Dir/<batch>. A crash before the
// commit leaves codes that match nothing (the partial directory is removed
// and the letters claimed again by a later run); a crash after it leaves a
// partial directory that the next run renames. A letter whose person has
// no address any more is voided.
//
// One export at a time writes into a directory: it holds an exclusive
// lock on Dir/ExportLockFile for its whole run, and a second one gets
// ErrExportRunning (otherwise its recovery could remove the partial batch
// the first is still writing, whose codes the first then records). Exports
// into different directories may run at once: they never claim the same
// letter.
func ExportLetters(ctx context.Context, st Store, o ExportOptions) (res *ExportResult, err error) {
	if len(o.Key) < 32 || o.Catalog == nil || o.Dir == "" {
		return nil, errors.New("letters: a key, the catalogue and an output directory are required")
	}
	if o.TTL <= 0 {
		o.TTL = 30 * 24 * time.Hour
	}
	if o.Max <= 0 {
		o.Max = 1000
	}
	if o.Stale <= 0 {
		o.Stale = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("letters: %w", err)
	}
	unlock, err := lockExport(o.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res = &ExportResult{}
	n, err := recoverPartial(ctx, st, o.Dir)
	if err != nil {
		return nil, err
	}
	res.Recovered = n
	now := o.Now().UTC()
	res.Batch = now.Format("20060102T150405Z") + "-" + keys.Random(6)
	claimed, err := st.ClaimLetters(ctx, res.Batch, now, now.Add(-o.Stale), o.Max)
	if err != nil {
		return nil, fmt.Errorf("letters: claim: %w", err)
	}
	if len(claimed) == 0 {
		return res, nil
	}
	loc := quebec()
	last := now.Add(o.TTL).In(loc)
	lastDay := time.Date(last.Year(), last.Month(), last.Day(), 0, 0, 0, 0, loc)
	expires := lastDay.AddDate(0, 0, 1).UTC() // valid through the printed date, Québec time
	tmp := filepath.Join(o.Dir, res.Batch+partialSuffix)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("letters: %w", err)
	}
	man := Manifest{Batch: res.Batch, CreatedAt: now, ValidUntil: lastDay.Format(time.DateOnly), Paper: "US Letter, one side"}
	hashes := map[string]string{}
	var events []audit.Event
	for _, l := range claimed {
		e, err := st.GetRegistryEntry(ctx, l.PersonID)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("letters: registry entry of letter %s: %w", l.ID, err)
		}
		a := map[string]string{}
		for _, v := range e.Attributes {
			a[v.Name] = v.Value
		}
		if e.RemovedBy != 0 || a["death_date"] != "" || a["address_street"] == "" || a["address_municipality"] == "" ||
			a["address_postal_code"] == "" {
			res.Voided++
			events = append(events, o.event(l.PersonID, audit.Failure, "letter "+l.ID+" not printed: no postal address in the registry"))
			continue
		}
		code := proofing.NewMailCode()
		lang := cmpLang(l.Locale, "fr")
		var pdf bytes.Buffer
		page := composeLetter(o.Catalog, lang, o.Issuer, a, proofing.FormatMailCode(code), l.ID, now, lastDay)
		if err := proofing.WritePDF(&pdf, o.Catalog.T(lang, "letter.pdf.title"), now, []proofing.PDFPage{page}); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		hashes[l.ID] = proofing.MailCodeHash(o.Key, l.ID, code)
		code = ""
		file := l.ID + ".pdf"
		if err := writeSync(filepath.Join(tmp, file), pdf.Bytes()); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		sum := sha256.Sum256(pdf.Bytes())
		man.Letters = append(man.Letters, ManifestEntry{File: file, Letter: l.ID, Language: lang, Pages: 1, Bytes: pdf.Len(),
			SHA256: hex.EncodeToString(sum[:]), PostalCode: a["address_postal_code"]})
		events = append(events, o.event(l.PersonID, audit.Success, "letter "+l.ID+" printed in batch "+res.Batch))
	}
	man.Count = len(man.Letters)
	mj, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := writeSync(filepath.Join(tmp, "manifest.json"), append(mj, '\n')); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	wctx := ctx
	if o.Pseudonyms != nil && len(events) > 0 {
		wctx = audit.With(ctx, events...)
	}
	if err := st.LettersExported(wctx, res.Batch, hashes, now, expires); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("letters: record the batch: %w", err)
	}
	final := filepath.Join(o.Dir, res.Batch)
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("letters: the batch is recorded; rename %s to %s by hand: %w", tmp, final, err)
	}
	if err := syncDir(o.Dir); err != nil {
		return nil, err
	}
	res.Dir, res.Printed = final, len(man.Letters)
	o.Log.Info("letters exported", "batch", res.Batch, "printed", res.Printed, "voided", res.Voided)
	return res, nil
}

// event is an event about the letter's person (not the requesting
// account: that a letter was printed tells that the registry knows the
// identity asked for, which the requester's own events never say).
func (o *ExportOptions) event(personID, outcome, detail string) audit.Event {
	e := audit.Event{Actor: o.Actor, Action: ActionLetterPrinted, Outcome: outcome, Detail: detail}
	if o.Pseudonyms != nil {
		e.Subject = o.Pseudonyms.Person(personID)
	}
	return e
}

// recoverPartial finishes what an interrupted export left: a partial
// batch whose codes were recorded is renamed, one whose codes were not is
// removed (its letters are claimed again).
func recoverPartial(ctx context.Context, st Store, dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("letters: %w", err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), partialSuffix) {
			continue
		}
		batch := strings.TrimSuffix(e.Name(), partialSuffix)
		done, err := st.BatchExported(ctx, batch)
		if err != nil {
			return n, fmt.Errorf("letters: batch %s: %w", batch, err)
		}
		path := filepath.Join(dir, e.Name())
		if done {
			if err := os.Rename(path, filepath.Join(dir, batch)); err != nil {
				return n, fmt.Errorf("letters: %w", err)
			}
			n++
		} else if err := os.RemoveAll(path); err != nil {
			return n, fmt.Errorf("letters: %w", err)
		}
	}
	return n, nil
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("letters: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("letters: write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("letters: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("letters: sync %s: %w", dir, err)
	}
	return nil
}

func quebec() *time.Location {
	loc, err := time.LoadLocation("America/Toronto")
	if err != nil {
		return time.UTC
	}
	return loc
}

// Letter layout, in points on US Letter: 1-inch margins, the recipient
// where a #10 window envelope shows it.
const (
	margin   = 72.0
	bodySize = 11.0
	leading  = 15.0
	codeSize = 16.0
)

// composeLetter lays one letter out: sender, recipient (Canada Post style:
// upper case, unit-civic number and street, municipality, province and
// postal code), date, title, text, the code in a box, and the reference.
func composeLetter(cat *web.Catalog, lang, issuer string, a map[string]string, code, ref string, now, validUntil time.Time) proofing.PDFPage {
	var pg proofing.PDFPage
	y := proofing.PageHeight - margin
	text := func(s string, size float64, bold bool) {
		pg.Texts = append(pg.Texts, proofing.PDFText{X: margin, Y: y, Size: size, Bold: bold, Text: s})
		y -= size + 4
	}
	text(cat.T(lang, "letter.pdf.sender"), 10, true)
	text(issuer, 9, false)
	y = 612 // the envelope's window
	street := strings.TrimSpace(a["address_civic_number"] + " " + a["address_street"])
	if u := strings.TrimSpace(a["address_unit"]); u != "" {
		street = u + "-" + street
	}
	for _, line := range []string{a["given_names"] + " " + a["family_name"], street,
		a["address_municipality"] + " QC  " + a["address_postal_code"]} {
		text(strings.ToUpper(strings.Join(strings.Fields(line), " ")), 11, false)
	}
	y = 500
	text(cat.T(lang, "letter.pdf.date", dateIn(lang, now.In(quebec()))), bodySize, false)
	y -= 10
	text(cat.T(lang, "letter.pdf.title"), 13, true)
	y -= 6
	para := func(s string) {
		for _, l := range proofing.Wrap(s, bodySize, proofing.PageWidth-2*margin, false) {
			pg.Texts = append(pg.Texts, proofing.PDFText{X: margin, Y: y, Size: bodySize, Text: l})
			y -= leading
		}
		y -= 6
	}
	para(cat.T(lang, "letter.pdf.greeting"))
	para(cat.T(lang, "letter.pdf.intro"))
	y -= 8
	pg.Rects = append(pg.Rects, proofing.PDFRect{X: margin - 8, Y: y - 10, W: 330, H: codeSize + 20})
	pg.Texts = append(pg.Texts, proofing.PDFText{X: margin, Y: y, Size: codeSize, Bold: true, Text: cat.T(lang, "letter.pdf.code", code)})
	y -= codeSize + 26
	para(cat.T(lang, "letter.pdf.validity", dateIn(lang, validUntil)))
	para(cat.T(lang, "letter.pdf.howto", strings.TrimSuffix(issuer, "/")+"/verification/courrier"))
	para(cat.T(lang, "letter.pdf.notyou"))
	pg.Texts = append(pg.Texts, proofing.PDFText{X: margin, Y: 40, Size: 8, Text: cat.T(lang, "letter.pdf.reference", ref)})
	return pg
}

// dateIn writes a date in lang.
func dateIn(lang string, t time.Time) string {
	if lang == "en" {
		return t.Format("January 2, 2006")
	}
	day := fmt.Sprint(t.Day())
	if t.Day() == 1 {
		day = "1er"
	}
	return day + " " + frMonths[t.Month()-1] + " " + fmt.Sprint(t.Year())
}
