package oidc

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/web"
)

// The audit log's public endpoints (docs/audit.md, "Public endpoints"):
// anyone may fetch the latest signed tree head and the proofs that tie an
// event to a head and a head to a later one. They serve hashes only, never
// an event: an event's fields are shown to the citizen it is about
// (/api/v1/me/events) and to auditors (sqin audit export).
const (
	auditTreeHeadPath    = "/audit/v1/tree-head"
	auditProofPath       = "/audit/v1/proof"
	auditConsistencyPath = "/audit/v1/consistency"
	meEventsPath         = "/api/v1/me/events"
)

// Bounds of the citizen's events API.
const (
	meEventsDefault = 50
	meEventsMax     = 100
)

// auditRoutes mounts the audit endpoints: the public ones through the API
// middleware (no cookies), the citizen's own events through the browser
// middleware (the SSO session cookie authenticates it).
func (p *Provider) auditRoutes(mux *http.ServeMux) {
	api := func(h http.HandlerFunc) http.Handler { return web.API(h, p.cfg.MaxBody) }
	mux.Handle("GET "+auditTreeHeadPath, api(p.handleAuditTreeHead))
	mux.Handle("GET "+auditProofPath, api(p.handleAuditProof))
	mux.Handle("GET "+auditConsistencyPath, api(p.handleAuditConsistency))
	mux.Handle("GET "+meEventsPath, web.Browser(http.HandlerFunc(p.handleMeEvents), p.cookies.Secure))
}

// problem writes an RFC 9457 problem details object.
func problem(w http.ResponseWriter, status int, detail string) { web.Problem(w, status, detail) }

func writeAuditJSON(w http.ResponseWriter, cacheControl string, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cacheControl)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// proofSlot takes one of the slots that bound the proofs computed at once,
// waiting a little for one; it answers 503 and returns false when none
// frees up.
func (p *Provider) proofSlot(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case p.auditSlots <- struct{}{}:
		return func() { <-p.auditSlots }, true
	case <-t.C:
	case <-r.Context().Done():
	}
	w.Header().Set("Retry-After", "1")
	problem(w, http.StatusServiceUnavailable, "too many proofs asked for at once; retry in a second")
	return nil, false
}

// latestHead returns the latest signed tree head, or answers 404 (none yet)
// or 500 and returns nil.
func (p *Provider) latestHead(w http.ResponseWriter, ctx context.Context) *audit.TreeHead {
	th, err := p.st.LatestTreeHead(ctx)
	switch {
	case errors.Is(err, sqin.ErrNotFound):
		problem(w, http.StatusNotFound, "no signed tree head yet")
		return nil
	case err != nil:
		p.logErr(ctx, "oidc: latest tree head", err)
		problem(w, http.StatusInternalServerError, "the audit log is unavailable")
		return nil
	}
	return th
}

// uintParam reads a query parameter as a decimal uint64; def when absent.
func uintParam(r *http.Request, name string, def uint64) (uint64, bool) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, true
	}
	if len(s) > 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// handleAuditTreeHead is GET /audit/v1/tree-head: the latest signed tree
// head, as sqin audit head prints it.
func (p *Provider) handleAuditTreeHead(w http.ResponseWriter, r *http.Request) {
	if th := p.latestHead(w, r.Context()); th != nil {
		// A new head is signed every --audit-head-interval.
		writeAuditJSON(w, "public, max-age=10", th)
	}
}

// inclusionJSON is the answer of /audit/v1/proof.
type inclusionJSON struct {
	ID             uint64       `json:"id"`
	TreeSize       uint64       `json:"tree_size"`
	LeafHash       audit.Hash   `json:"leaf_hash"`
	InclusionProof []audit.Hash `json:"inclusion_proof"`
}

// handleAuditProof is GET /audit/v1/proof?id=N[&tree_size=M]: the leaf hash
// of event N and its inclusion proof (RFC 9162 section 2.1.3) in the tree
// of size M (default: the latest signed head's), M at most that size.
func (p *Provider) handleAuditProof(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ok1 := uintParam(r, "id", 0)
	size, ok2 := uintParam(r, "tree_size", 0)
	if !r.URL.Query().Has("id") || !ok1 || !ok2 || (r.URL.Query().Has("tree_size") && size == 0) {
		problem(w, http.StatusBadRequest, "id must be a decimal integer, and tree_size, when given, a positive one")
		return
	}
	size, release, ok := p.signedSize(w, r, "tree_size", size)
	if !ok {
		return
	}
	defer release()
	if id >= size {
		problem(w, http.StatusNotFound, "the tree of this size does not hold this event")
		return
	}
	leaves, err := p.st.LeafHashes(ctx, id, id+1)
	if err != nil || len(leaves) != 1 {
		p.logErr(ctx, "oidc: audit leaf hash", cmp.Or(err, errors.New("missing leaf")))
		problem(w, http.StatusInternalServerError, "the audit log is unavailable")
		return
	}
	proof, err := p.cfg.AuditLog.InclusionProof(ctx, id, size)
	if err != nil {
		p.logErr(ctx, "oidc: audit inclusion proof", err)
		problem(w, http.StatusInternalServerError, "the audit log is unavailable")
		return
	}
	// The tree of a signed size never changes: neither does the proof.
	writeAuditJSON(w, "public, max-age=31536000, immutable",
		inclusionJSON{ID: id, TreeSize: size, LeafHash: leaves[0], InclusionProof: nonNil(proof)})
}

// signedSize takes a proof slot and resolves the tree size a proof request
// names in param (size; zero: the latest signed head's), refusing a size
// larger than that head. When it reports ok, the caller calls release.
func (p *Provider) signedSize(w http.ResponseWriter, r *http.Request, param string, size uint64) (uint64, func(), bool) {
	release, ok := p.proofSlot(w, r)
	if !ok {
		return 0, nil, false
	}
	th := p.latestHead(w, r.Context())
	if th == nil {
		release()
		return 0, nil, false
	}
	if size == 0 {
		return th.TreeSize, release, true
	}
	if size > th.TreeSize {
		release()
		problem(w, http.StatusBadRequest, param+" is larger than the latest signed tree head ("+strconv.FormatUint(th.TreeSize, 10)+")")
		return 0, nil, false
	}
	return size, release, true
}

// consistencyJSON is the answer of /audit/v1/consistency.
type consistencyJSON struct {
	First            uint64       `json:"first"`
	Second           uint64       `json:"second"`
	ConsistencyProof []audit.Hash `json:"consistency_proof"`
}

// handleAuditConsistency is GET /audit/v1/consistency?first=M[&second=N]:
// the proof (RFC 9162 section 2.1.4) that the tree of size N (default: the
// latest signed head's) extends the tree of size M, 0 < M <= N.
func (p *Provider) handleAuditConsistency(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	first, ok1 := uintParam(r, "first", 0)
	second, ok2 := uintParam(r, "second", 0)
	if !ok1 || !ok2 || first == 0 || (r.URL.Query().Has("second") && second == 0) {
		problem(w, http.StatusBadRequest, "first, and second when given, must be positive decimal integers")
		return
	}
	second, release, ok := p.signedSize(w, r, "second", second)
	if !ok {
		return
	}
	defer release()
	if first > second {
		problem(w, http.StatusBadRequest, "first must not be larger than second")
		return
	}
	proof, err := p.cfg.AuditLog.ConsistencyProof(ctx, first, second)
	if err != nil {
		p.logErr(ctx, "oidc: audit consistency proof", err)
		problem(w, http.StatusInternalServerError, "the audit log is unavailable")
		return
	}
	writeAuditJSON(w, "public, max-age=31536000, immutable",
		consistencyJSON{First: first, Second: second, ConsistencyProof: nonNil(proof)})
}

func nonNil(hs []audit.Hash) []audit.Hash {
	if hs == nil {
		return []audit.Hash{}
	}
	return hs
}

// meEvent is one of the citizen's events with its inclusion proof in the
// tree of the answer's tree head; no proof while no head covers it yet.
type meEvent struct {
	Event          *audit.Record `json:"event"`
	InclusionProof []audit.Hash  `json:"inclusion_proof"` // null while no head covers it
}

// meEventsJSON is the answer of /api/v1/me/events.
type meEventsJSON struct {
	TreeHead *audit.TreeHead `json:"tree_head"`
	Events   []meEvent       `json:"events"`
	// Next is the after to ask for the following page; absent on the last.
	Next *uint64 `json:"next_after,omitempty"`
}

// handleMeEvents is GET /api/v1/me/events?after=ID&limit=N: the events
// about the signed-in citizen (their account's pseudonym and, when the
// account is linked to a registry person, that person's), by number, after
// event ID, each with its inclusion proof in the latest signed tree head.
// The SSO session cookie authenticates it.
func (p *Provider) handleMeEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := p.currentSession(r)
	if sess == nil {
		problem(w, http.StatusUnauthorized, "sign in first: this API reads the SSO session")
		return
	}
	if !p.auditing() {
		problem(w, http.StatusNotFound, "this server keeps no audit log")
		return
	}
	q := r.URL.Query()
	from := uint64(0)
	if q.Has("after") {
		after, ok := uintParam(r, "after", 0)
		if !ok || after == ^uint64(0) {
			problem(w, http.StatusBadRequest, "after must be an event number")
			return
		}
		from = after + 1
	}
	limit := meEventsDefault
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > meEventsMax {
			problem(w, http.StatusBadRequest, "limit must be between 1 and "+strconv.Itoa(meEventsMax))
			return
		}
		limit = n
	}
	acct, err := p.st.GetAccount(ctx, sess.AccountID)
	if err != nil {
		p.logErr(ctx, "oidc: get account", err)
		problem(w, http.StatusInternalServerError, "your events are unavailable")
		return
	}
	subjects := []string{p.cfg.Audit.Pseudonyms.Account(acct.ID)}
	if acct.PersonID != "" && acct.LoA >= sqin.LoA2 {
		// The person's events only to an account that proved it is the
		// person (one lowered to level 1 by a password reset keeps its
		// link but must prove it again).
		subjects = append(subjects, p.cfg.Audit.Pseudonyms.Person(acct.PersonID))
	}
	release, ok := p.proofSlot(w, r)
	if !ok {
		return
	}
	defer release()
	var recs []*audit.Record
	for _, s := range subjects {
		rs, err := p.st.EventsBySubject(ctx, s, from, limit+1)
		if err != nil {
			p.logErr(ctx, "oidc: events by subject", err)
			problem(w, http.StatusInternalServerError, "your events are unavailable")
			return
		}
		recs = append(recs, rs...)
	}
	slices.SortFunc(recs, func(a, b *audit.Record) int { return cmp.Compare(a.ID, b.ID) })
	recs = slices.CompactFunc(recs, func(a, b *audit.Record) bool { return a.ID == b.ID })
	out := meEventsJSON{Events: []meEvent{}}
	if len(recs) > limit {
		recs = recs[:limit]
		next := recs[limit-1].ID
		out.Next = &next
	}
	th, err := p.st.LatestTreeHead(ctx)
	if err != nil && !errors.Is(err, sqin.ErrNotFound) {
		p.logErr(ctx, "oidc: latest tree head", err)
		problem(w, http.StatusInternalServerError, "your events are unavailable")
		return
	}
	out.TreeHead = th
	for _, rec := range recs {
		ev := meEvent{Event: rec}
		if th != nil && rec.ID < th.TreeSize {
			if ev.InclusionProof, err = p.cfg.AuditLog.InclusionProof(ctx, rec.ID, th.TreeSize); err != nil {
				p.logErr(ctx, "oidc: audit inclusion proof", err)
				problem(w, http.StatusInternalServerError, "your events are unavailable")
				return
			}
			ev.InclusionProof = nonNil(ev.InclusionProof)
		}
		out.Events = append(out.Events, ev)
	}
	writeAuditJSON(w, "no-store", out)
}
