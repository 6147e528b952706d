package registry

import "context"

// Entry is a person of the registry as the registry knows them: every
// attribute of the catalogue with its provenance and history.
type Entry struct {
	PersonID  string // internal, never shown outside
	Source    string
	SourceRef string
	// RemovedBy is the sequence of the delivery that removed the person
	// from the source's file, 0 while present.
	RemovedBy  int64
	Attributes []AttributeValue // in catalogue order
}

// Attribute returns the value of the attribute called name.
func (e *Entry) Attribute(name string) (AttributeValue, bool) {
	for _, a := range e.Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return AttributeValue{}, false
}

// AttributeValue is an attribute's current value and where it comes from.
type AttributeValue struct {
	Name      string
	Value     string
	Source    string
	SourceRef string
	Sequence  int64  // the delivery (import batch) that set this value
	Effective string // YYYY-MM-DD from which the value holds
	History   []PastValue
}

// PastValue is a value the attribute held before, oldest first.
type PastValue struct {
	Value      string
	Sequence   int64  // the delivery that set it
	From       string // its effective date
	ReplacedBy int64  // the delivery that replaced it
	Until      string // the effective date of its replacement
}

// Querier reads the registry.
type Querier interface {
	// RegistryDigest is a SHA-256 over every person and history row,
	// independent of database identifiers: the same deliveries give the
	// same digest.
	RegistryDigest(ctx context.Context) (string, error)
	// GetRegistryEntry returns sqin.ErrNotFound for an unknown person.
	GetRegistryEntry(ctx context.Context, personID string) (*Entry, error)
	// FindPersonByHealthNumber returns the ID of the person, not removed,
	// with that compact health number, or sqin.ErrNotFound.
	FindPersonByHealthNumber(ctx context.Context, nam string) (string, error)
}
