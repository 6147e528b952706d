package legal

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/sqin/sqin/internal/audit"
)

// ReportRow counts, for one recipient service and one attribute, how many
// distinct persons' values were communicated and how many times.
type ReportRow struct {
	ClientID       string `json:"client_id"`
	PublicBody     string `json:"public_body,omitempty"`
	Attribute      string `json:"attribute"`
	Persons        int    `json:"persons"`
	Communications int    `json:"communications"`
}

// Report is the account of the communications made under one
// authorisation over a period, as the law asks at the end of an
// experiment. It is computed from the audit log alone.
type Report struct {
	Ref    string      `json:"ref"`
	From   time.Time   `json:"from"`
	To     time.Time   `json:"to"`
	Events int         `json:"events"` // disclosure events counted
	Rows   []ReportRow `json:"rows"`
}

type rowKey struct{ client, body, attr string }

// Reporter accumulates disclosure events into a Report. Feed it every event
// of the log (in any order); it keeps those made under Ref in [From, To).
type Reporter struct {
	r       Report
	persons map[rowKey]map[string]struct{}
	counts  map[rowKey]int
	attrs   map[string]bool
}

// NewReporter prepares the report of the authorisation a over [from, to).
func NewReporter(a *Authorisation, from, to time.Time) *Reporter {
	attrs := map[string]bool{}
	for _, n := range a.Attributes {
		attrs[n] = true
	}
	return &Reporter{r: Report{Ref: a.Ref, From: from.UTC(), To: to.UTC()}, attrs: attrs,
		persons: map[rowKey]map[string]struct{}{}, counts: map[rowKey]int{}}
}

// Add counts e when it is a successful communication under the
// authorisation within the period: its legal basis is the reference, and
// only the attributes the authorisation covers are counted. The person is
// the event's subject (a pseudonym), so counting persons needs no
// identifier in clear.
func (rp *Reporter) Add(e *audit.Event) {
	if e.LegalBasis != rp.r.Ref || e.Outcome != audit.Success || e.ClientID == "" ||
		e.Time.Before(rp.r.From) || !e.Time.Before(rp.r.To) {
		return
	}
	counted := false
	for _, attr := range e.Attributes {
		if !rp.attrs[attr] {
			continue
		}
		k := rowKey{e.ClientID, e.PublicBody, attr}
		rp.counts[k]++
		if e.Subject != "" {
			set := rp.persons[k]
			if set == nil {
				set = map[string]struct{}{}
				rp.persons[k] = set
			}
			set[e.Subject] = struct{}{}
		}
		counted = true
	}
	if counted {
		rp.r.Events++
	}
}

// Report returns the rows, by client, public body and attribute.
func (rp *Reporter) Report() *Report {
	r := rp.r
	r.Rows = make([]ReportRow, 0, len(rp.counts))
	for k, n := range rp.counts {
		r.Rows = append(r.Rows, ReportRow{ClientID: k.client, PublicBody: k.body, Attribute: k.attr,
			Persons: len(rp.persons[k]), Communications: n})
	}
	slices.SortFunc(r.Rows, func(a, b ReportRow) int {
		return cmp.Or(cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.PublicBody, b.PublicBody), cmp.Compare(a.Attribute, b.Attribute))
	})
	return &r
}

// WriteJSON writes r as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes r as CSV with a header line; the period and reference
// are columns so that the file stands on its own.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"ref", "from", "to", "client_id", "public_body", "attribute", "persons", "communications"})
	from, to := r.From.Format(time.RFC3339), r.To.Format(time.RFC3339)
	for _, row := range r.Rows {
		_ = cw.Write([]string{r.Ref, from, to, row.ClientID, row.PublicBody, row.Attribute,
			strconv.Itoa(row.Persons), strconv.Itoa(row.Communications)})
	}
	cw.Flush()
	return cw.Error()
}
