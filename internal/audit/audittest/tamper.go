package audittest

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/audit"
)

// Tamperer changes a store's rows behind its back, as someone with write
// access to the database would (triggers disabled).
type Tamperer interface {
	// SetColumn sets a column of event id: "at" (int64 unix ms),
	// "attributes" (space-separated string), "salt", "leaf_hash" and
	// "personal_digest" ([]byte), or a text column by name (string).
	SetColumn(ctx context.Context, id uint64, column string, value any) error
	Delete(ctx context.Context, id uint64) error
	// Swap exchanges the contents of events i and j, their leaf hashes too
	// when withLeafHashes.
	Swap(ctx context.Context, i, j uint64, withLeafHashes bool) error
	// Insert stores a row as given, whatever its ID.
	Insert(ctx context.Context, r *audit.Record) error
	// Shift renumbers the events with ID >= from by delta.
	Shift(ctx context.Context, from uint64, delta int64) error
	// SetSize sets the store's count of events.
	SetSize(ctx context.Context, n uint64) error
	SetTreeHeadRoot(ctx context.Context, size uint64, root audit.Hash) error
}

// T0 is the time of the first event RandomEvents makes; event i is i
// seconds later.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var (
	kinds    = []string{audit.ActorCitizen, audit.ActorAgent, audit.ActorAdmin, audit.ActorClient, audit.ActorSystem}
	actions  = []string{audit.SigninSuccess, audit.SigninFailure, audit.ConsentGiven, audit.TokenIssued, audit.UserinfoDisclosed, audit.ClientDeleted}
	outcomes = []string{audit.Success, audit.Failure, audit.Denied}
	attrs    = []string{"birthdate", "email", "family_name", "given_name", "address", "health_no", "sub"}
	bodies   = []string{"", "ramq", "saaq", "revenu-quebec"}
)

// RandomEvent returns a valid event, different for every i.
func RandomEvent(rng *rand.Rand, i int) *audit.Event {
	e := &audit.Event{
		Time:       T0.Add(time.Duration(i) * time.Second),
		RequestID:  fmt.Sprintf("req-%d-%x", i, rng.Uint32()),
		Actor:      audit.Actor{Kind: kinds[rng.IntN(len(kinds))], ID: fmt.Sprintf("actor-%d", rng.IntN(50))},
		Action:     actions[rng.IntN(len(actions))],
		Subject:    fmt.Sprintf("ps1.subject%d", rng.IntN(100)),
		ClientID:   fmt.Sprintf("client-%d", rng.IntN(5)),
		PublicBody: bodies[rng.IntN(len(bodies))],
		LegalBasis: fmt.Sprintf("consent:%d", rng.IntN(1000)),
		Outcome:    outcomes[rng.IntN(len(outcomes))],
		Detail:     fmt.Sprintf("event %d «é»", i),
	}
	for _, a := range attrs {
		if rng.IntN(3) == 0 {
			e.Attributes = append(e.Attributes, a)
		}
	}
	return e
}

// testKey is the audit key the suite signs with.
var testKey = ed25519.NewKeyFromSeed(make([]byte, 32))

// tamper is one kind of tampering: it changes the log and returns what the
// report must contain.
type tamper struct {
	name  string
	apply func(ctx context.Context, x *env) (expect func(*audit.Report) error, err error)
}

type env struct {
	t   *testing.T
	rng *rand.Rand
	st  audit.Storage
	tp  Tamperer
	n   uint64
	rs  []*audit.Record // the log before tampering
}

func (x *env) pick() uint64 { return uint64(x.rng.IntN(int(x.n))) }

// names requires a finding of one of kinds that names event id: alone when
// exact, within a range otherwise.
func names(id uint64, exact bool, kinds ...string) func(*audit.Report) error {
	return func(r *audit.Report) error {
		for _, f := range r.Findings {
			if !slices.Contains(kinds, f.Kind) {
				continue
			}
			if exact && f.Event == id && f.Events == 1 {
				return nil
			}
			if !exact && f.Event <= id && id < f.Event+max(f.Events, 1) {
				return nil
			}
		}
		return fmt.Errorf("no %v finding names event %d", kinds, id)
	}
}

func both(a, b func(*audit.Report) error) func(*audit.Report) error {
	return func(r *audit.Report) error {
		if err := a(r); err != nil {
			return err
		}
		return b(r)
	}
}

var eventKinds = []string{audit.FindAltered, audit.FindInvalid, audit.FindMoved}

// validRecord is a well-formed event at id, with its right leaf hash.
func validRecord(rng *rand.Rand, id uint64) *audit.Record {
	e := RandomEvent(rng, int(id)+100000)
	e.Normalize()
	e.ID = id
	e.Salt = make([]byte, audit.SaltSize)
	return &audit.Record{Event: *e, LeafHash: e.LeafHash()}
}

var tampers = []tamper{
	{"edit a field", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		id := x.pick()
		r := x.rs[id]
		cols := []string{"at", "actor_kind", "action", "client_id", "public_body", "attributes", "outcome"}
		if r.Redacted {
			cols = append(cols, "personal_digest")
		} else {
			cols = append(cols, "request_id", "actor_id", "subject", "legal_basis", "detail", "salt")
		}
		col := cols[x.rng.IntN(len(cols))]
		var v any
		switch col {
		case "at":
			v = r.Time.UnixMilli() + 1 + int64(x.rng.IntN(1000))
		case "attributes":
			v = strings.Join(r.Attributes, " ")
			if len(r.Attributes) > 0 {
				v = strings.Join(r.Attributes[1:], " ")
			} else {
				v = "email"
			}
		case "salt":
			b := slices.Clone(r.Salt)
			b[x.rng.IntN(len(b))] ^= 1
			v = b
		case "personal_digest":
			d := *r.PersonalDigest
			d[x.rng.IntN(len(d))] ^= 0x40
			v = d[:]
		case "actor_kind":
			v = kinds[(slices.Index(kinds, r.Actor.Kind)+1)%len(kinds)]
		case "outcome":
			v = outcomes[(slices.Index(outcomes, r.Outcome)+1)%len(outcomes)]
		case "action":
			v = actions[(slices.Index(actions, r.Action)+1)%len(actions)]
		default:
			v = "x" + fmt.Sprint(x.rng.IntN(10))
		}
		x.t.Logf("event %d: %s = %v", id, col, v)
		return names(id, true, eventKinds...), x.tp.SetColumn(ctx, id, col, v)
	}},
	{"edit a field and its leaf hash", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		id := x.pick()
		r := *x.rs[id]
		r.Outcome = outcomes[(slices.Index(outcomes, r.Outcome)+1)%len(outcomes)]
		leaf, err := r.Leaf()
		if err != nil {
			return nil, err
		}
		x.t.Logf("event %d: outcome = %s, leaf hash recomputed", id, r.Outcome)
		if err := x.tp.SetColumn(ctx, id, "outcome", r.Outcome); err != nil {
			return nil, err
		}
		return names(id, false, audit.FindRoot, audit.FindSubtree), x.tp.SetColumn(ctx, id, "leaf_hash", leaf[:])
	}},
	{"edit a leaf hash", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		id := x.pick()
		h := x.rs[id].LeafHash
		h[x.rng.IntN(len(h))] ^= 2
		x.t.Logf("event %d: leaf hash", id)
		return names(id, true, eventKinds...), x.tp.SetColumn(ctx, id, "leaf_hash", h[:])
	}},
	{"delete", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		id := x.pick()
		x.t.Logf("delete event %d", id)
		return names(id, true, audit.FindMissing), x.tp.Delete(ctx, id)
	}},
	{"swap two events", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		i, j := x.pick(), x.pick()
		for i == j {
			j = x.pick()
		}
		x.t.Logf("swap events %d and %d", i, j)
		return both(names(i, true, eventKinds...), names(j, true, eventKinds...)), x.tp.Swap(ctx, i, j, true)
	}},
	{"swap two events' fields", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		i, j := x.pick(), x.pick()
		for i == j {
			j = x.pick()
		}
		x.t.Logf("swap the fields of events %d and %d", i, j)
		return both(names(i, true, eventKinds...), names(j, true, eventKinds...)), x.tp.Swap(ctx, i, j, false)
	}},
	{"truncate", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		k := 1 + uint64(x.rng.IntN(int(min(x.n, 20))))
		x.t.Logf("truncate the last %d events", k)
		for id := x.n - k; id < x.n; id++ {
			if err := x.tp.Delete(ctx, id); err != nil {
				return nil, err
			}
		}
		return names(x.n-k, false, audit.FindTruncated), x.tp.SetSize(ctx, x.n-k)
	}},
	{"insert at the end", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		x.t.Logf("insert event %d", x.n)
		return names(x.n, true, audit.FindExtra), x.tp.Insert(ctx, validRecord(x.rng, x.n))
	}},
	{"insert and renumber", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		k := x.pick()
		x.t.Logf("insert event %d, renumbering those after", k)
		if err := x.tp.Shift(ctx, k, 1); err != nil {
			return nil, err
		}
		if err := x.tp.Insert(ctx, validRecord(x.rng, k)); err != nil {
			return nil, err
		}
		return names(k+1, true, audit.FindMoved), x.tp.SetSize(ctx, x.n+1)
	}},
	{"delete and renumber", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		k := uint64(x.rng.IntN(int(x.n - 1)))
		x.t.Logf("delete event %d, renumbering those after", k)
		if err := x.tp.Delete(ctx, k); err != nil {
			return nil, err
		}
		if err := x.tp.Shift(ctx, k+1, -1); err != nil {
			return nil, err
		}
		return names(k, true, audit.FindMoved), x.tp.SetSize(ctx, x.n-1)
	}},
	{"lower the size", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		k := 1 + uint64(x.rng.IntN(int(min(x.n, 20))))
		x.t.Logf("size %d instead of %d", x.n-k, x.n)
		return both(names(x.n-k, true, audit.FindExtra), names(x.n-k, false, audit.FindTruncated)), x.tp.SetSize(ctx, x.n-k)
	}},
	{"raise the size far", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		x.t.Logf("size %d instead of %d", x.n+1<<40, x.n)
		return names(x.n, false, audit.FindMissing), x.tp.SetSize(ctx, x.n+1<<40)
	}},
	{"insert far beyond", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		x.t.Logf("insert event %d", uint64(1)<<40)
		return names(1<<40, true, audit.FindExtra), x.tp.Insert(ctx, validRecord(x.rng, 1<<40))
	}},
	{"forge a tree head", func(ctx context.Context, x *env) (func(*audit.Report) error, error) {
		var root audit.Hash
		root[0] = byte(x.rng.IntN(256))
		x.t.Logf("root of the tree head of size %d replaced", x.n)
		sig := func(r *audit.Report) error {
			for _, f := range r.Findings {
				if f.Kind == audit.FindSignature && f.TreeSize == x.n {
					return nil
				}
			}
			return fmt.Errorf("no signature finding for the head of size %d", x.n)
		}
		return sig, x.tp.SetTreeHeadRoot(ctx, x.n, root)
	}},
}

// RunTamper builds random logs, checks that untampered ones verify, then
// tampers with each (one kind of tampering per round, in turn) and checks
// that Verify names what changed. open returns a fresh, empty store.
func RunTamper(t *testing.T, rounds int, seed uint64, open func(t *testing.T) (audit.Storage, Tamperer)) {
	for round := range rounds {
		tm := tampers[round%len(tampers)]
		t.Run(fmt.Sprintf("%d %s", round, tm.name), func(t *testing.T) {
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(seed, uint64(round)))
			st, tp := open(t)
			n := 2 + rng.IntN(700)
			log := audit.NewLog(st, testKey)
			for i := 0; i < n; {
				k := min(1+rng.IntN(60), n-i)
				evs := make([]*audit.Event, k)
				for j := range evs {
					evs[j] = RandomEvent(rng, i+j)
				}
				if err := st.AppendEvents(ctx, evs...); err != nil {
					t.Fatal(err)
				}
				i += k
				if rng.IntN(4) == 0 {
					if _, err := log.SignTreeHead(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if rng.IntN(3) == 0 {
				before := T0.Add(time.Duration(rng.IntN(n)) * time.Second)
				if _, err := st.RedactEvents(ctx, before, 1+rng.IntN(n)); err != nil {
					t.Fatal(err)
				}
			}
			final, err := log.SignTreeHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			size, _ := st.AuditSize(ctx)
			x := &env{t: t, rng: rng, st: st, tp: tp, n: size}
			if x.rs, err = st.Events(ctx, 0, size); err != nil || uint64(len(x.rs)) != size {
				t.Fatalf("%d events read back of %d (%v)", len(x.rs), size, err)
			}
			opts := audit.VerifyOptions{PublicKeys: []crypto.PublicKey{testKey.Public()}, External: []*audit.TreeHead{final}, Chunk: 1 + rng.IntN(300)}
			rep, err := audit.Verify(ctx, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Root == nil || *rep.Root != final.RootHash {
				t.Fatalf("untampered log of %d events does not verify: %v", size, rep.Findings)
			}
			expect, err := tm.apply(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			rep, err = audit.Verify(ctx, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatalf("tampering not detected")
			}
			if err := expect(rep); err != nil {
				t.Fatalf("%v; findings: %v", err, rep.Findings)
			}
		})
	}
}
