package audit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func sample() *Event {
	return &Event{
		ID:         42,
		Time:       time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC),
		RequestID:  "req-1",
		Actor:      Actor{Kind: ActorCitizen, ID: "ps1.actor"},
		Action:     UserinfoDisclosed,
		Subject:    "ps1.subject",
		ClientID:   "rp-ramq",
		PublicBody: "ramq",
		LegalBasis: "consent:rp-ramq",
		Attributes: []string{"birthdate", "family_name"},
		Outcome:    Success,
		Detail:     "réponse userinfo",
		Salt:       bytes.Repeat([]byte{0xab}, SaltSize),
	}
}

// TestEntryGolden pins the format with values computed apart (a few lines
// of Python following docs/audit.md): a change here changes every leaf
// hash and breaks the verification of logs already written.
func TestEntryGolden(t *testing.T) {
	e := sample()
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	const (
		wantEntry = "01000000000000002a0000019ca9450a7b0007636974697a656e001275736572696e666f2e646973636c6f736564" +
			"000772702d72616d71000472616d7100020009626972746864617465000b66616d696c795f6e616d65000773756363657373"
		wantPersonal = "3d1f26aaa641b79e2684329a87cbfee3895808ba4e95fe8c493ce7f140e6aa26"
		wantLeaf     = "7645e83038ba26275ddd0d259278646bd64b43407609f1a2fedb384db4b2d79f"
	)
	entry := e.Entry()
	if got := hex.EncodeToString(entry[:len(entry)-32]); got != wantEntry {
		t.Errorf("entry\n got %s\nwant %s", got, wantEntry)
	}
	if got := e.PersonalDigest().String(); got != wantPersonal {
		t.Errorf("personal digest %s, want %s", got, wantPersonal)
	}
	if got := hex.EncodeToString(entry[len(entry)-32:]); got != wantPersonal {
		t.Errorf("entry ends with %s, not the personal digest", got)
	}
	if got := e.LeafHash().String(); got != wantLeaf {
		t.Errorf("leaf hash %s, want %s", got, wantLeaf)
	}
	// A redacted record rebuilds the same leaf from what it keeps.
	d := e.PersonalDigest()
	r := &Record{Event: *e, Redacted: true, PersonalDigest: &d}
	r.RequestID, r.Actor.ID, r.Subject, r.LegalBasis, r.Detail, r.Salt = "", "", "", "", "", nil
	if h, err := r.Leaf(); err != nil || h.String() != wantLeaf {
		t.Errorf("redacted leaf %s, %v", h, err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Event)
		want string // "" = valid
	}{
		{"sample", func(*Event) {}, ""},
		{"no attributes", func(e *Event) { e.Attributes = nil }, ""},
		{"system without id", func(e *Event) { e.Actor = Actor{Kind: ActorSystem} }, ""},
		{"actor kind", func(e *Event) { e.Actor.Kind = "robot" }, "actor kind"},
		{"outcome", func(e *Event) { e.Outcome = "ok" }, "outcome"},
		{"action without dot", func(e *Event) { e.Action = "signin" }, "action"},
		{"action upper case", func(e *Event) { e.Action = "Signin.success" }, "action"},
		{"action empty word", func(e *Event) { e.Action = "signin..success" }, "action"},
		{"action space", func(e *Event) { e.Action = "signin. success" }, "action"},
		{"zero time", func(e *Event) { e.Time = time.Time{} }, "time"},
		{"before 1970", func(e *Event) { e.Time = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }, "time"},
		{"long subject", func(e *Event) { e.Subject = strings.Repeat("a", MaxField+1) }, "subject"},
		{"long detail", func(e *Event) { e.Detail = strings.Repeat("é", MaxDetail) }, "detail"},
		{"newline in detail", func(e *Event) { e.Detail = "a\nb" }, "control"},
		{"C1 control", func(e *Event) { e.ClientID = "a\u0085b" }, "control"},
		{"line separator", func(e *Event) { e.LegalBasis = "a\u2028b" }, "control"},
		{"bad UTF-8", func(e *Event) { e.RequestID = "a\xffb" }, "UTF-8"},
		{"attribute with space", func(e *Event) { e.Attributes = []string{"family name"} }, "attribute"},
		{"attribute empty", func(e *Event) { e.Attributes = []string{""} }, "attribute"},
		{"attributes unsorted", func(e *Event) { e.Attributes = []string{"b", "a"} }, "sorted"},
		{"attributes repeated", func(e *Event) { e.Attributes = []string{"a", "a"} }, "sorted"},
		{"too many attributes", func(e *Event) {
			e.Attributes = nil
			for i := range MaxAttributes + 1 {
				e.Attributes = append(e.Attributes, "a"+strings.Repeat("b", i%60)+string(rune('a'+i/60)))
			}
		}, "attributes"},
		{"no salt", func(e *Event) { e.Salt = nil }, "salt"},
	}
	for _, tc := range tests {
		e := sample()
		tc.edit(e)
		err := e.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid)):
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	e := sample()
	e.Time = time.Date(2026, 3, 1, 7, 0, 0, 123456789, time.FixedZone("EST", -5*3600))
	e.Attributes = []string{"z", "a", "z", "m"}
	e.Normalize()
	if !e.Time.Equal(time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)) || e.Time.Location() != time.UTC {
		t.Errorf("time %v", e.Time)
	}
	if !reflect.DeepEqual(e.Attributes, []string{"a", "m", "z"}) {
		t.Errorf("attributes %v", e.Attributes)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseEntry(t *testing.T) {
	e := sample()
	entry := e.Entry()
	got, personal, err := ParseEntry(entry)
	if err != nil {
		t.Fatal(err)
	}
	if personal != e.PersonalDigest() || !bytes.Equal(got.AppendEntry(nil, personal), entry) {
		t.Fatal("round trip differs")
	}
	if got.Action != e.Action || got.ID != e.ID || !got.Time.Equal(e.Time) || got.Subject != "" {
		t.Fatalf("parsed %+v", got)
	}
	bad := map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{2}, entry[1:]...),
		"truncated": entry[:len(entry)-1],
		"trailing":  append(append([]byte(nil), entry...), 0),
	}
	for name, b := range bad {
		if _, _, err := ParseEntry(b); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// FuzzParseEntry: whatever ParseEntry accepts, it accepts exactly (the
// entry re-encodes to the same bytes) and is a valid event.
func FuzzParseEntry(f *testing.F) {
	e := sample()
	f.Add(e.Entry())
	e.Attributes = nil
	f.Add(e.Entry())
	e.Action, e.ClientID = "a.b", ""
	f.Add(e.Entry())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, personal, err := ParseEntry(b)
		if err != nil {
			return
		}
		if got := e.AppendEntry(nil, personal); !bytes.Equal(got, b) {
			t.Fatalf("not canonical:\n in %x\nout %x", b, got)
		}
		if err := e.validatePublic(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzEvent: an event built from arbitrary fields either fails Validate or
// survives the entry and JSON round trips, and its leaf hash changes with
// every field.
func FuzzEvent(f *testing.F) {
	s := sample()
	f.Add(uint64(7), int64(1700000000000), s.RequestID, s.Actor.Kind, s.Actor.ID, s.Action, s.Subject, s.ClientID,
		s.PublicBody, s.LegalBasis, "birthdate email", s.Outcome, s.Detail)
	f.Fuzz(func(t *testing.T, id uint64, ms int64, req, kind, actor, action, subject, client, body, basis,
		attrs, outcome, detail string) {
		e := &Event{ID: id, Time: time.UnixMilli(ms), RequestID: req, Actor: Actor{Kind: kind, ID: actor},
			Action: action, Subject: subject, ClientID: client, PublicBody: body, LegalBasis: basis,
			Attributes: strings.Fields(attrs), Outcome: outcome, Detail: detail, Salt: make([]byte, SaltSize)}
		e.Normalize()
		if e.Validate() != nil {
			return
		}
		got, personal, err := ParseEntry(e.Entry())
		if err != nil {
			t.Fatalf("valid event's entry refused: %v", err)
		}
		if personal != e.PersonalDigest() || got.ID != e.ID || !got.Time.Equal(e.Time) ||
			got.Action != e.Action || !reflect.DeepEqual(got.Attributes, e.Attributes) {
			t.Fatalf("entry round trip: %+v", got)
		}
		j, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back Event
		if err := json.Unmarshal(j, &back); err != nil {
			t.Fatal(err)
		}
		if back.LeafHash() != e.LeafHash() {
			t.Fatalf("JSON round trip changes the leaf: %s", j)
		}
		other := *e
		other.Detail += "x"
		if other.Validate() == nil && other.LeafHash() == e.LeafHash() {
			t.Fatal("detail does not enter the leaf")
		}
		other = *e
		other.ID++
		if other.LeafHash() == e.LeafHash() {
			t.Fatal("ID does not enter the leaf")
		}
	})
}

func TestTreeHeadSignatures(t *testing.T) {
	edKey, err := NewKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		signer any
	}{{"ed25519", edKey}, {"ecdsa", ecKey}} {
		th := &TreeHead{TreeSize: 1000, Timestamp: 1767225600000, RootHash: LeafHash([]byte("x"))}
		var pub any
		switch k := tc.signer.(type) {
		case ed25519.PrivateKey:
			err, pub = th.Sign(k), k.Public()
		case *ecdsa.PrivateKey:
			err, pub = th.Sign(k), k.Public()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := th.Verify(pub); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		j, _ := json.Marshal(th)
		back, err := ParseTreeHead(j)
		if err != nil || back.Verify(pub) != nil {
			t.Fatalf("%s: JSON round trip: %v", tc.name, err)
		}
		for _, edit := range []func(*TreeHead){
			func(h *TreeHead) { h.TreeSize++ },
			func(h *TreeHead) { h.Timestamp++ },
			func(h *TreeHead) { h.RootHash[3] ^= 1 },
			func(h *TreeHead) { h.Signature = append([]byte(nil), h.Signature...); h.Signature[5] ^= 1 },
		} {
			c := *th
			edit(&c)
			if c.Verify(pub) == nil {
				t.Fatalf("%s: edited head verifies", tc.name)
			}
		}
	}
	if _, err := ParseTreeHead([]byte(`{"tree_size":1,"extra":1}`)); err == nil {
		t.Error("unknown member accepted")
	}
	th := &TreeHead{TreeSize: 1}
	if err := th.Sign(edKey); err != nil {
		t.Fatal(err)
	}
	other, _ := NewKey(bytes.Repeat([]byte{2}, 32))
	if err := th.Verify(other.Public()); !errors.Is(err, ErrSignature) {
		t.Errorf("other key: %v", err)
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if Pending(ctx) || Take(ctx) != nil || Add(ctx, Event{Action: "a.b"}) {
		t.Fatal("a bare context carries events")
	}
	c1 := With(ctx, Event{Action: "a.one"})
	c2 := With(c1, Event{Action: "a.two"}) // joins c1's
	if c2 != c1 || !Pending(c1) {
		t.Fatal("With on a carrying context made a new one")
	}
	type otherKey struct{}
	if !Add(context.WithValue(c1, otherKey{}, 1), Event{Action: "a.three"}) {
		t.Fatal("Add through a derived context failed")
	}
	got := Take(c1)
	if len(got) != 3 || got[0].Action != "a.one" || got[2].Action != "a.three" || Pending(c1) || Take(c1) != nil {
		t.Fatalf("Take: %v", got)
	}
	r := Recorder(ctx)
	if Pending(r) || !Add(r, Event{}) || !Pending(r) || Recorder(r) != r {
		t.Fatal("Recorder")
	}
	// Concurrent adds and takes lose nothing and duplicate nothing.
	c := Recorder(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				Add(c, Event{Detail: string(rune('a' + i))})
				n := len(Take(c))
				mu.Lock()
				taken += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if taken+len(Take(c)) != 800 {
		t.Fatalf("%d events taken of 800", taken)
	}
}

func TestPseudonyms(t *testing.T) {
	if _, err := NewPseudonymizer(make([]byte, 16)); err == nil {
		t.Fatal("short key accepted")
	}
	p, _ := NewPseudonymizer(bytes.Repeat([]byte{7}, 32))
	q, _ := NewPseudonymizer(bytes.Repeat([]byte{8}, 32))
	a := p.Account("acct-1")
	if len(a) != 26 || !strings.HasPrefix(a, "ps1.") || a != p.Account("acct-1") {
		t.Fatalf("pseudonym %q", a)
	}
	if a == p.Person("acct-1") || a == p.Account("acct-2") || a == q.Account("acct-1") || p.Account("") != "" {
		t.Fatal("pseudonyms collide")
	}
	if c := p.Citizen("acct-1"); c.Kind != ActorCitizen || c.ID != a {
		t.Fatalf("citizen actor %+v", c)
	}
	e := sample()
	e.Subject, e.Actor.ID = a, a
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
}
