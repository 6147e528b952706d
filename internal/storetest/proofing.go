package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/store"
)

func testLocalSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.PutLocalSecrets(ctx, []store.LocalSecret{
		{SecretType: "driving-licence", PersonID: "p1", Hash: []byte{1, 2, 3}},
		{SecretType: "driving-licence", PersonID: "p2", Hash: []byte{4}},
		{SecretType: "other", PersonID: "p1", Hash: []byte{5}},
	}, t0))
	// A new delivery replaces the person's hash of that type only.
	ok(t, s.PutLocalSecrets(ctx, []store.LocalSecret{{SecretType: "driving-licence", PersonID: "p1", Hash: []byte{9, 9}}}, t0))
	for _, tc := range []struct {
		typ, person string
		want        []byte
	}{
		{"driving-licence", "p1", []byte{9, 9}},
		{"driving-licence", "p2", []byte{4}},
		{"other", "p1", []byte{5}},
	} {
		got, err := s.LocalSecretHash(ctx, tc.typ, tc.person)
		ok(t, err)
		if !bytes.Equal(got, tc.want) {
			t.Fatalf("%s/%s = %v, want %v", tc.typ, tc.person, got, tc.want)
		}
	}
	_, err := s.LocalSecretHash(ctx, "driving-licence", "p3")
	isErr(t, err, sqin.ErrNotFound)
	ok(t, s.PutLocalSecrets(ctx, nil, t0))
}

// testSecretDeliveries: a holder's deliveries of local secrets
// (proofing.DeliveryStore): the sequence rules applied in the store's
// transaction, batches stored with their delivery, a snapshot dropping
// what earlier deliveries stored, refusals, health numbers matched as
// FindPersonByHealthNumber does.
func testSecretDeliveries(t *testing.T, s store.Store) {
	st, isDelivery := s.(proofing.DeliveryStore)
	if !isDelivery {
		t.Skip("the store does not implement proofing.DeliveryStore")
	}
	ctx := t.Context()
	ok(t, s.CreatePerson(ctx, &sqin.Person{ID: "p-a", HealthNo: "AAAA90010101", UpdatedAt: t0}))
	ok(t, s.CreatePerson(ctx, &sqin.Person{ID: "p-b", HealthNo: "BBBB90010101", UpdatedAt: t0}))
	got, err := st.PersonsByHealthNumber(ctx, []string{"AAAA90010101", "BBBB90010101", "CCCC90010101"})
	ok(t, err)
	same(t, got, map[string]string{"AAAA90010101": "p-a", "BBBB90010101": "p-b"})

	d1 := &proofing.SecretDelivery{Source: "SAAQ", SecretType: "driving-licence", Sequence: 1, Kind: proofing.DeliverySnapshot, SHA256: "s1", Records: 2}
	done, err := st.BeginSecretDelivery(ctx, d1, t0)
	ok(t, err)
	if done {
		t.Fatal("a new delivery is done")
	}
	// While it runs, another sequence is refused.
	d2 := &proofing.SecretDelivery{Source: "SAAQ", SecretType: "driving-licence", Sequence: 2, Kind: proofing.DeliveryDelta, SHA256: "s2"}
	_, err = st.BeginSecretDelivery(ctx, d2, t0)
	checkErr(t, err, proofing.ErrSequence)
	if sqin.ErrorCode(err) != sqin.EConflict {
		t.Fatalf("code %q", sqin.ErrorCode(err))
	}
	ok(t, st.ApplySecrets(ctx, d1, []store.LocalSecret{
		{SecretType: "driving-licence", PersonID: "p-a", Hash: []byte{1}},
		{SecretType: "driving-licence", PersonID: "p-b", Hash: []byte{2}},
	}, nil, t0))
	dropped, err := st.FinishSecretDelivery(ctx, d1, proofing.DeliveryCounts{Stored: 2}, t0)
	ok(t, err)
	if dropped != 0 {
		t.Fatalf("first snapshot dropped %d", dropped)
	}
	_, err = st.FinishSecretDelivery(ctx, d1, proofing.DeliveryCounts{Stored: 2}, t0)
	checkErr(t, err, sqin.ErrConflict) // not running any more
	done, err = st.BeginSecretDelivery(ctx, d1, t0)
	ok(t, err)
	if !done {
		t.Fatal("the same delivery again is not done")
	}

	// A delta removes one; a refused delivery may run again.
	done, err = st.BeginSecretDelivery(ctx, d2, t0)
	ok(t, err)
	if done {
		t.Fatal("the first delta is done before it ran")
	}
	ok(t, st.RefuseSecretDelivery(ctx, d2, "too many rejects", t0))
	d2.SHA256 = "s2-corrected"
	done, err = st.BeginSecretDelivery(ctx, d2, t0)
	ok(t, err)
	if done {
		t.Fatal("a refused delivery is done")
	}
	ok(t, st.ApplySecrets(ctx, d2, nil, []string{"p-b"}, t0))
	_, err = st.FinishSecretDelivery(ctx, d2, proofing.DeliveryCounts{Removed: 1}, t0)
	ok(t, err)
	_, err = s.LocalSecretHash(ctx, "driving-licence", "p-b")
	isErr(t, err, sqin.ErrNotFound)

	// A secret stored outside the pipeline, of another type and of another
	// source stay; the next snapshot drops the source's older ones.
	ok(t, s.PutLocalSecrets(ctx, []store.LocalSecret{{SecretType: "driving-licence", PersonID: "p-legacy", Hash: []byte{7}},
		{SecretType: "other", PersonID: "p-a", Hash: []byte{8}}}, t0))
	d3 := &proofing.SecretDelivery{Source: "SAAQ", SecretType: "driving-licence", Sequence: 5, Kind: proofing.DeliverySnapshot, SHA256: "s5"}
	_, err = st.BeginSecretDelivery(ctx, d3, t0)
	ok(t, err)
	ok(t, st.ApplySecrets(ctx, d3, []store.LocalSecret{{SecretType: "driving-licence", PersonID: "p-b", Hash: []byte{3}}}, nil, t0))
	dropped, err = st.FinishSecretDelivery(ctx, d3, proofing.DeliveryCounts{Stored: 1}, t0)
	ok(t, err)
	if dropped != 1 {
		t.Fatalf("snapshot 5 dropped %d, want 1 (p-a's)", dropped)
	}
	for _, tc := range []struct {
		typ, person string
		want        []byte
	}{{"driving-licence", "p-a", nil}, {"driving-licence", "p-b", []byte{3}}, {"driving-licence", "p-legacy", []byte{7}}, {"other", "p-a", []byte{8}}} {
		h, err := s.LocalSecretHash(ctx, tc.typ, tc.person)
		if tc.want == nil {
			isErr(t, err, sqin.ErrNotFound)
			continue
		}
		ok(t, err)
		if !bytes.Equal(h, tc.want) {
			t.Fatalf("%s/%s = %v, want %v", tc.typ, tc.person, h, tc.want)
		}
	}
	// Sequences are per source.
	_, err = st.BeginSecretDelivery(ctx, &proofing.SecretDelivery{Source: "SAAQ", SecretType: "driving-licence", Sequence: 3, Kind: proofing.DeliverySnapshot, SHA256: "x"}, t0)
	checkErr(t, err, proofing.ErrSequence)
	_, err = st.BeginSecretDelivery(ctx, &proofing.SecretDelivery{Source: "OTHER", SecretType: "driving-licence", Sequence: 1, Kind: proofing.DeliverySnapshot, SHA256: "x"}, t0)
	ok(t, err)
}

// testHitAll: several limits counted in one transaction
// (proofing.MultiCounter) agree with Hit, key by key.
func testHitAll(t *testing.T, s store.Store) {
	mc, isMulti := s.(proofing.MultiCounter)
	if !isMulti {
		t.Skip("the store does not implement proofing.MultiCounter")
	}
	ctx := t.Context()
	_, err := s.Hit(ctx, "k1", time.Hour, t0)
	ok(t, err)
	for want := 1; want <= 3; want++ {
		got, err := mc.HitAll(ctx, []string{"k1", "k2"}, time.Hour, t0.Add(time.Duration(want)*time.Minute))
		ok(t, err)
		same(t, got, []int{want + 1, want})
	}
	n, err := s.Count(ctx, "k2", time.Hour, t0.Add(5*time.Minute))
	ok(t, err)
	if n != 3 {
		t.Fatalf("k2 counts %d, want 3", n)
	}
	got, err := mc.HitAll(ctx, []string{"k1"}, time.Hour, t0.Add(3*time.Hour))
	ok(t, err)
	same(t, got, []int{1}) // the window moved on

	// Concurrent callers, some of them invalid (no window): each valid
	// one is counted once and sees a count of its own on the shared key,
	// as if they had run one after the other; an invalid one fails alone
	// and records nothing.
	const callers = 48
	at := t0.Add(10 * time.Hour)
	counts := make([][]int, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			d := time.Hour
			if i%8 == 3 {
				d = 0
			}
			counts[i], errs[i] = mc.HitAll(ctx, []string{"shared", fmt.Sprintf("own-%d", i)}, d, at)
		})
	}
	wg.Wait()
	var seen []int
	for i := range callers {
		if i%8 == 3 {
			if errs[i] == nil {
				t.Fatalf("caller %d without a window: no error", i)
			}
			continue
		}
		ok(t, errs[i])
		if counts[i][1] != 1 {
			t.Fatalf("caller %d: own key counts %d, want 1", i, counts[i][1])
		}
		seen = append(seen, counts[i][0])
	}
	slices.Sort(seen)
	for i, n := range seen {
		if n != i+1 {
			t.Fatalf("shared key counts %v, want 1…%d once each", seen, len(seen))
		}
	}
	n, err = s.Count(ctx, "shared", time.Hour, at)
	ok(t, err)
	if n != len(seen) {
		t.Fatalf("shared key holds %d events, want %d", n, len(seen))
	}
	n, err = s.Count(ctx, "own-3", time.Hour, at)
	ok(t, err)
	if n != 0 {
		t.Fatalf("an invalid caller's key holds %d events", n)
	}
}
