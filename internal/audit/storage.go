package audit

import (
	"context"
	"time"
)

// Record is an event as stored: its fields, the leaf hash stored with it
// when it was appended, and whether retention redacted it (emptied its
// personal fields; its stored leaf hash stands for it since).
type Record struct {
	Event
	LeafHash Hash `json:"leaf_hash"`
	Redacted bool `json:"redacted,omitempty"`
	// PersonalDigest is kept when the personal fields and the salt are
	// dropped (Redacted), so that the entry can still be rebuilt.
	PersonalDigest *Hash `json:"personal_digest,omitempty"`
}

// Leaf recomputes r's leaf hash from its fields (from the fields kept and
// the personal digest, once redacted). It fails when the fields do not
// form a valid event.
func (r *Record) Leaf() (Hash, error) {
	if !r.Redacted {
		if err := r.Event.Validate(); err != nil {
			return Hash{}, err
		}
		return r.Event.LeafHash(), nil
	}
	if r.PersonalDigest == nil {
		return Hash{}, invalid("redacted without its personal digest")
	}
	if r.RequestID != "" || r.Actor.ID != "" || r.Subject != "" || r.LegalBasis != "" || r.Detail != "" || r.Salt != nil {
		return Hash{}, invalid("redacted but still holding personal fields")
	}
	if err := r.Event.validatePublic(); err != nil {
		return Hash{}, err
	}
	var buf [256]byte
	return LeafHash(r.Event.AppendEntry(buf[:0], *r.PersonalDigest)), nil
}

// CacheLevel is the lowest level of the subtrees whose hashes storage
// caches: subtrees of 256 leaves and above. Lower nodes are computed from
// at most 256 leaf hashes.
const CacheLevel = 8

// Storage is what the log needs from a store (store.Audit provides it).
type Storage interface {
	// AppendEvents appends events, with those ctx carries, in one
	// transaction; each gets its ID (and Time if zero) set.
	AppendEvents(ctx context.Context, events ...*Event) error
	// AuditSize is the number of events appended, as the store counts them.
	AuditSize(ctx context.Context) (uint64, error)
	// AuditEnd is one more than the highest ID stored, 0 when there is
	// none: AuditSize unless events were added or removed behind the
	// store's back.
	AuditEnd(ctx context.Context) (uint64, error)
	// Events returns the stored events with from <= ID < to, by ID.
	Events(ctx context.Context, from, to uint64) ([]*Record, error)
	// LeafHashes returns the stored leaf hashes of events [from, to); a
	// missing event is an error.
	LeafHashes(ctx context.Context, from, to uint64) ([]Hash, error)
	// EventsBySubject returns up to limit events about subject (a
	// pseudonym) with ID >= from, by ID.
	EventsBySubject(ctx context.Context, subject string, from uint64, limit int) ([]*Record, error)
	// RedactEvents drops the personal fields (request ID, actor ID,
	// subject, legal basis, detail) and the salt of up to limit events
	// older than before, oldest first, keeping their personal digest, with
	// the events ctx carries in the same transaction (dropped when there is
	// nothing to redact). It returns how many it redacted (0: none is left).
	RedactEvents(ctx context.Context, before time.Time, limit int) (int64, error)

	// SaveTreeHead stores a signed tree head; one already stored for the
	// same size stays, and saving it again is not an error.
	SaveTreeHead(ctx context.Context, th *TreeHead) error
	// LatestTreeHead returns the head of the largest size, or
	// sqin.ErrNotFound.
	LatestTreeHead(ctx context.Context) (*TreeHead, error)
	// TreeHeads returns every stored head, by size.
	TreeHeads(ctx context.Context) ([]*TreeHead, error)

	// Subtrees returns the cached hashes of the nodes asked for that the
	// cache holds.
	Subtrees(ctx context.Context, ids []NodeID) (map[NodeID]Hash, error)
	// SaveSubtrees caches node hashes; nodes already cached keep their
	// hash.
	SaveSubtrees(ctx context.Context, nodes map[NodeID]Hash) error
	// SubtreeFrontier is one more than the highest index cached at level,
	// 0 when none is.
	SubtreeFrontier(ctx context.Context, level uint8) (uint64, error)
}
