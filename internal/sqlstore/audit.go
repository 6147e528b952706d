package sqlstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
)

// The audit log (internal/audit). Every write transaction of the store
// ends with commit, which writes the events the context carries
// (audit.With) before committing; a write that fails drops them. Event
// numbers come from audit_state.size, raised in the transaction that
// inserts the events into audit_events: the row lock (PostgreSQL) or the
// single writer (SQLite) serialises appenders from reservation to commit,
// so numbers are gap-free and committed in order, and the size a reader
// sees counts only committed events.
//
// On SQLite a change's transaction appends its events itself. On
// PostgreSQL it inserts them into audit_queue instead, which locks no
// shared row, so audited changes commit side by side; after the commit,
// the sequencer (one at a time across instances, advisory lock) moves
// every committed queue row into audit_events in one transaction, in
// batches, and commit waits for that before returning (see sequencer).
// AppendEvents (the Batcher's standalone events) appends directly on both.

const auditCols = `seq, at, request_id, actor_kind, actor_id, action, subject, client_id, public_body,
	legal_basis, attributes, outcome, detail, salt, personal_digest, leaf_hash, redacted`

// auditBatch is the most events one INSERT writes.
const auditBatch = 256

var (
	qAuditReserve = newQuery(`UPDATE audit_state SET size = size + ? WHERE id = 1 RETURNING size`)
	qAuditSize    = newQuery(`SELECT size FROM audit_state WHERE id = 1`)
	qAuditEnd     = newQuery(`SELECT COALESCE(MAX(seq), -1) FROM audit_events`)
	// The LIMIT, which changes nothing, keeps PostgreSQL on the primary key
	// in order even before its statistics know the table (a parallel
	// bitmap scan costs 100 ms of worker start-up per query).
	qAuditEvents    = newQuery(`SELECT ` + auditCols + ` FROM audit_events WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT ?`)
	qAuditLeaves    = newQuery(`SELECT seq, leaf_hash FROM audit_events WHERE seq >= ? AND seq < ? ORDER BY seq LIMIT ?`)
	qAuditBySubject = newQuery(`SELECT ` + auditCols + ` FROM audit_events
		WHERE subject = ? AND seq >= ? ORDER BY seq LIMIT ?`)
	qAuditToRedact = newQuery(`SELECT ` + auditCols + ` FROM audit_events
		WHERE at < ? AND NOT redacted ORDER BY at, seq LIMIT ?`)
	qAuditRedact = newQuery(`UPDATE audit_events SET request_id = '', actor_id = '', subject = '',
		legal_basis = '', detail = '', salt = NULL, personal_digest = ?, redacted = ? WHERE seq = ? AND NOT redacted`)
	qSaveTreeHead = newQuery(`INSERT INTO audit_tree_heads (tree_size, timestamp, root_hash, key_id, signature)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING`)
	qLatestTreeHead = newQuery(`SELECT tree_size, timestamp, root_hash, key_id, signature FROM audit_tree_heads
		ORDER BY tree_size DESC LIMIT 1`)
	qTreeHeads       = newQuery(`SELECT tree_size, timestamp, root_hash, key_id, signature FROM audit_tree_heads ORDER BY tree_size`)
	qSaveSubtree     = newQuery(`INSERT INTO audit_subtrees (node, hash) VALUES (?, ?) ON CONFLICT (node) DO NOTHING`)
	qSubtreeFrontier = newQuery(`SELECT COALESCE(MAX(node), -1) FROM audit_subtrees WHERE node >= ? AND node < ?`)

	// PostgreSQL only: the queue and its sequencer's lock, one per schema.
	qAuditSequencerLock = newQuery(`SELECT pg_advisory_xact_lock(hashtext('sqin.audit'), hashtext(COALESCE(current_schema(), '')))`)
	qAuditQueueSize     = newQuery(`SELECT COUNT(*) FROM audit_queue`)
)

// queueCols are the columns of audit_queue after its id: an event's fields
// before numbering.
const queueCols = `at, request_id, actor_kind, actor_id, action, subject, client_id, public_body,
	legal_basis, attributes, outcome, detail, salt`

// sequenceBatch is the most queued transactions whose events one
// sequencer transaction moves.
const sequenceBatch = 500

// auditInserts and queueInserts hold INSERT statements for 1 to auditBatch
// rows, and subtreeSelects SELECTs of 1 to auditBatch nodes, made when
// first used.
var auditInserts, queueInserts, subtreeSelects sync.Map // int -> query

func queueInsert(n int) query { return rowsInsert(&queueInserts, "audit_queue", queueCols, n) }
func auditInsert(n int) query { return rowsInsert(&auditInserts, "audit_events", auditCols, n) }

// rowsInsert is INSERT INTO table (cols) VALUES with n rows, kept in cache.
func rowsInsert(cache *sync.Map, table, cols string, n int) query {
	if q, ok := cache.Load(n); ok {
		return q.(query)
	}
	row := "(" + strings.Repeat("?, ", strings.Count(cols, ",")) + "?)"
	q := newQuery("INSERT INTO " + table + " (" + cols + ") VALUES " + strings.Repeat(row+", ", n-1) + row)
	cache.Store(n, q)
	return q
}

func subtreeSelect(n int) query {
	if q, ok := subtreeSelects.Load(n); ok {
		return q.(query)
	}
	q := newQuery("SELECT node, hash FROM audit_subtrees WHERE node IN (" +
		strings.Repeat("?, ", n-1) + "?)")
	subtreeSelects.Store(n, q)
	return q
}

// nodeKey packs a node ID into one integer column.
func nodeKey(id audit.NodeID) int64 { return int64(id.Level)<<56 | int64(id.Index) }

func nodeOf(k int64) audit.NodeID {
	return audit.NodeID{Level: uint8(k >> 56), Index: uint64(k) & (1<<56 - 1)}
}

// begin starts a write transaction; when it cannot, the events ctx
// carries are dropped as with any failed write.
func (db *DB) begin(ctx context.Context) (*sql.Tx, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		audit.Take(ctx)
	}
	return tx, err
}

// commit writes the events ctx carries into tx and commits. On PostgreSQL
// they go into the queue, and commit returns once the sequencer has moved
// them into the log (or ctx ends: they are committed either way, and the
// next round of any instance sequences them).
func (db *DB) commit(ctx context.Context, tx *sql.Tx) error {
	evs := audit.Take(ctx)
	if len(evs) == 0 {
		return tx.Commit()
	}
	ps := make([]*audit.Event, len(evs))
	for i := range evs {
		ps[i] = &evs[i]
	}
	if db.dialect != Postgres {
		if err := db.appendEvents(ctx, tx, ps); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	if err := db.queueEvents(ctx, tx, ps); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	db.sequencer().await(ctx, db)
	return nil
}

// rollback rolls tx back (harmless after commit) and drops the events ctx
// still carries.
func (db *DB) rollback(ctx context.Context, tx *sql.Tx) {
	audit.Take(ctx)
	tx.Rollback()
}

// writeExec runs a write on its own, or, when ctx carries events, in a
// transaction with them.
func (db *DB) writeExec(ctx context.Context, q query, args ...any) (sql.Result, error) {
	if !audit.Pending(ctx) {
		return db.write.ExecContext(ctx, db.sql(q), args...)
	}
	var res sql.Result
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, db.sql(q), args...)
		return err
	})
	return res, err
}

// execChanged is exec when ctx carries events: a write that changes no
// row changed nothing, so its events are dropped with its transaction.
func (db *DB) execChanged(ctx context.Context, q query, args ...any) (bool, error) {
	changed := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.sql(q), args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			return errNoChange
		}
		changed = true
		return err
	})
	if err == errNoChange {
		return false, nil
	}
	return changed, err
}

var errNoChange = fmt.Errorf("sqlstore: no row changed")

// sqlWriter is what Hit needs of a pool or a transaction.
type sqlWriter interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Hit records one event for key and returns how many the window ending at
// now holds, this one included; with the events ctx carries in the same
// transaction (a failed sign-in and its rate-limit hit, say).
func (db *DB) Hit(ctx context.Context, key string, d time.Duration, now time.Time) (int, error) {
	if !audit.Pending(ctx) {
		return db.hit(ctx, db.write, key, d, now)
	}
	var n int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = db.hit(ctx, tx, key, d, now)
		return err
	})
	return n, err
}

// AppendEvents appends the events ctx carries, then events, in one
// transaction, setting their ID (and Time when zero).
func (db *DB) AppendEvents(ctx context.Context, events ...*audit.Event) error {
	const op = "sqlstore.AppendEvents"
	if db.dialect == Postgres && len(events) > 0 && len(events) <= auditBatch && !audit.Pending(ctx) {
		return wrap(op, db.appendAlone(ctx, events))
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return wrap(op, err)
	}
	defer db.rollback(ctx, tx)
	pend := audit.Take(ctx)
	all := make([]*audit.Event, 0, len(pend)+len(events))
	for i := range pend {
		all = append(all, &pend[i])
	}
	all = append(all, events...)
	if err := db.appendEvents(ctx, tx, all); err != nil {
		return wrap(op, err)
	}
	return wrap(op, db.commit(ctx, tx))
}

// prepareEvents sets the time and salt of events that have none and
// checks them.
func prepareEvents(events []*audit.Event) error {
	const op = "sqlstore.AppendEvents"
	now := time.Now()
	salts := make([]byte, audit.SaltSize*len(events))
	rand.Read(salts)
	for i, e := range events {
		if e.Time.IsZero() {
			e.Time = now
		}
		if len(e.Salt) == 0 {
			e.Salt = salts[i*audit.SaltSize : (i+1)*audit.SaltSize : (i+1)*audit.SaltSize]
		}
		e.Normalize()
		// The ID is not known yet; Validate does not look at it.
		if err := e.Validate(); err != nil {
			return &sqin.Error{Code: sqin.EInvalid, Op: op, Message: "audit event refused", Err: err}
		}
	}
	return nil
}

// appendEvents numbers, hashes and inserts events in tx.
func (db *DB) appendEvents(ctx context.Context, tx *sql.Tx, events []*audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := prepareEvents(events); err != nil {
		return err
	}
	return db.insertEvents(ctx, tx, events)
}

// insertEvents numbers, hashes and inserts prepared events in tx.
func (db *DB) insertEvents(ctx context.Context, tx *sql.Tx, events []*audit.Event) error {
	var size int64
	if err := tx.QueryRowContext(ctx, db.sql(qAuditReserve), int64(len(events))).Scan(&size); err != nil {
		return err
	}
	next := uint64(size) - uint64(len(events))
	for i, e := range events {
		e.ID = next + uint64(i)
	}
	for start := 0; start < len(events); start += auditBatch {
		batch := events[start:min(start+auditBatch, len(events))]
		if _, err := tx.ExecContext(ctx, db.sql(auditInsert(len(batch))), numberedArgs(batch)...); err != nil {
			return err
		}
	}
	return nil
}

// numberedArgs are the arguments of auditInsert for numbered events, their
// leaf hashes computed from their fields. Sized by the events at hand:
// most transactions carry one or two.
func numberedArgs(events []*audit.Event) []any {
	args := make([]any, 0, len(events)*17)
	for _, e := range events {
		leaf := e.LeafHash()
		args = append(args, int64(e.ID), e.Time.UnixMilli(), e.RequestID, e.Actor.Kind, e.Actor.ID, e.Action,
			e.Subject, e.ClientID, e.PublicBody, e.LegalBasis, strings.Join(e.Attributes, " "), e.Outcome,
			e.Detail, e.Salt, nil, leaf[:], false)
	}
	return args
}

// qAuditAppendAlone appends a batch of events in one PostgreSQL statement
// outside any transaction: the row lock on audit_state is held only while
// PostgreSQL runs the statement and commits it, never across a round trip
// to the server, so appenders (the Batcher's loops, other instances) wait
// for each other for microseconds instead of for a transaction's four round
// trips. The numbers are known only inside the statement, so PostgreSQL
// hashes the leaves: SHA-256(0x00 || entry), each entry encoded here with a
// zero number that the statement overwrites (bytes 2–9, big-endian, as
// audit.Event.AppendEntry writes it). $1 carries the times and gives the
// count.
var qAuditAppendAlone = query{postgres: `WITH r AS (
	UPDATE audit_state SET size = size + cardinality($1::bigint[]) WHERE id = 1
	RETURNING size - cardinality($1::bigint[]) AS base),
ins AS (INSERT INTO audit_events (` + auditCols + `)
	SELECT r.base + v.i - 1, v.at, v.request_id, v.actor_kind, v.actor_id, v.action, v.subject, v.client_id,
		v.public_body, v.legal_basis, v.attributes, v.outcome, v.detail, v.salt, NULL,
		sha256('\x00'::bytea || overlay(v.entry PLACING int8send(r.base + v.i - 1) FROM 2 FOR 8)), false
	FROM r, unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[], $14::bytea[])
		WITH ORDINALITY AS v(at, request_id, actor_kind, actor_id, action, subject, client_id, public_body,
			legal_basis, attributes, outcome, detail, salt, entry, i)
	RETURNING 1)
SELECT base, (SELECT count(*) FROM ins) FROM r`}

// appendAlone appends events (at most auditBatch) in one statement on
// PostgreSQL: see qAuditAppendAlone.
func (db *DB) appendAlone(ctx context.Context, events []*audit.Event) error {
	if err := prepareEvents(events); err != nil {
		return err
	}
	n := len(events)
	at := make([]int64, n)
	cols := make([][]string, 11)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	salts := make([][]byte, n)
	entries := make([][]byte, n)
	buf := make([]byte, 0, 256*n)
	for i, e := range events {
		at[i] = e.Time.UnixMilli()
		for j, v := range [...]string{e.RequestID, e.Actor.Kind, e.Actor.ID, e.Action, e.Subject, e.ClientID,
			e.PublicBody, e.LegalBasis, strings.Join(e.Attributes, " "), e.Outcome, e.Detail} {
			cols[j][i] = v
		}
		salts[i] = e.Salt
		e.ID = 0
		start := len(buf)
		buf = e.AppendEntry(buf, e.PersonalDigest())
		entries[i] = buf[start:len(buf):len(buf)]
	}
	var base, inserted int64
	err := db.write.QueryRowContext(ctx, db.sql(qAuditAppendAlone), at, cols[0], cols[1], cols[2], cols[3], cols[4],
		cols[5], cols[6], cols[7], cols[8], cols[9], cols[10], salts, entries).Scan(&base, &inserted)
	if err != nil {
		return err
	}
	if inserted != int64(n) {
		return fmt.Errorf("audit: %d of %d events inserted", inserted, n)
	}
	for i, e := range events {
		e.ID = uint64(base) + uint64(i)
	}
	return nil
}

// queueEvents inserts events into the audit queue in tx (PostgreSQL).
func (db *DB) queueEvents(ctx context.Context, tx *sql.Tx, events []*audit.Event) error {
	var err error
	qerr := db.queueStatements(events, func(q string, args []any) {
		if err == nil {
			_, err = tx.ExecContext(ctx, q, args...)
		}
	})
	return cmp.Or(qerr, err)
}

// queueStatements prepares events and passes to send the INSERTs that
// queue them (PostgreSQL), auditBatch rows at most each.
func (db *DB) queueStatements(events []*audit.Event, send func(q string, args []any)) error {
	if err := prepareEvents(events); err != nil {
		return err
	}
	for start := 0; start < len(events); start += auditBatch {
		batch := events[start:min(start+auditBatch, len(events))]
		args := make([]any, 0, len(batch)*13)
		for _, e := range batch {
			args = append(args, e.Time.UnixMilli(), e.RequestID, e.Actor.Kind, e.Actor.ID, e.Action, e.Subject,
				e.ClientID, e.PublicBody, e.LegalBasis, strings.Join(e.Attributes, " "), e.Outcome, e.Detail, e.Salt)
		}
		send(db.sql(queueInsert(len(batch))), args)
	}
	return nil
}

// SequenceAudit moves every event queued by a committed change into the
// log (PostgreSQL; on SQLite there is no queue) and returns how many it
// moved. Changes wait for this themselves; call it at start-up and now and
// then to sequence what an instance that stopped between a commit and its
// sequencing left queued. Safe on several instances at once: one at a time
// runs.
func (db *DB) SequenceAudit(ctx context.Context) (int, error) {
	if db.dialect != Postgres {
		return 0, nil
	}
	total := 0
	for {
		n, txs, err := db.sequenceRound(ctx)
		total += n
		if err != nil || txs < sequenceBatch {
			return total, wrap("sqlstore.SequenceAudit", err)
		}
	}
}

// AuditQueued is the number of events committed but not yet sequenced
// (always 0 on SQLite).
func (db *DB) AuditQueued(ctx context.Context) (int64, error) {
	if db.dialect != Postgres {
		return 0, nil
	}
	var n int64
	err := db.read.QueryRowContext(ctx, db.sql(qAuditQueueSize)).Scan(&n)
	return n, wrap("sqlstore.AuditQueued", err)
}

// sequenceRound moves the events of up to sequenceBatch queued
// transactions, oldest first, into the log in one transaction under the
// sequencer lock, and returns how many events and transactions it moved.
func (db *DB) sequenceRound(ctx context.Context) (moved, txs int, err error) {
	err = db.withPgConn(ctx, func(c *pgx.Conn) error {
		b := new(pgx.Batch)
		b.BeginTx(pgx.TxOptions{})
		// Durable whatever the role's or database's default: the changes
		// that commit without waiting for the disk rely on this commit
		// (durableBySequencer).
		b.Queue("SET LOCAL synchronous_commit TO on")
		b.Queue(db.sql(qAuditSequencerLock))
		b.Queue(db.sql(qAuditDequeueNumbered), int64(sequenceBatch))
		br := c.SendBatch(ctx, b)
		var events []*audit.Event
		err := func() error {
			for range 3 {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			rows, err := br.Query()
			if err != nil {
				return err
			}
			defer rows.Close()
			var last int64
			for rows.Next() {
				var base *int64
				var xact, id int64
				e := new(audit.Event)
				if err := rows.Scan(&base, &xact, &id, millis{&e.Time}, &e.RequestID, &e.Actor.Kind, &e.Actor.ID,
					&e.Action, &e.Subject, &e.ClientID, &e.PublicBody, &e.LegalBasis, strs{&e.Attributes}, &e.Outcome,
					&e.Detail, &e.Salt); err != nil {
					return err
				}
				if base == nil {
					return errors.New("audit: queued events dequeued but no number reserved (audit_state)")
				}
				e.ID = uint64(*base) + uint64(len(events))
				if txs == 0 || xact != last {
					txs, last = txs+1, xact
				}
				events = append(events, e)
			}
			return rows.Err()
		}()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil || len(events) == 0 {
			return err // nothing dequeued: the transaction is rolled back
		}
		moved = len(events)
		// The leaves are hashed here from the fields as stored in the
		// queue, so that what the log holds is what its hashes cover.
		b = new(pgx.Batch)
		for start := 0; start < len(events); start += auditBatch {
			batch := events[start:min(start+auditBatch, len(events))]
			b.Queue(db.sql(auditInsert(len(batch))), numberedArgs(batch)...)
		}
		b.Queue("commit")
		return c.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, 0, err
	}
	return moved, txs, nil
}

// qAuditDequeueNumbered deletes the events of up to ? queued transactions,
// oldest first, reserves their numbers from audit_state and returns them
// in order of transaction then id, each with the first number reserved
// (NULL, and then the round fails, if audit_state has no row).
var qAuditDequeueNumbered = newQuery(`WITH d AS (DELETE FROM audit_queue
	WHERE xact IN (SELECT DISTINCT xact FROM audit_queue ORDER BY xact LIMIT ?)
	RETURNING xact, id, ` + queueCols + `),
r AS (UPDATE audit_state SET size = size + (SELECT count(*) FROM d) WHERE id = 1 AND EXISTS (SELECT 1 FROM d)
	RETURNING size - (SELECT count(*) FROM d) AS base)
SELECT r.base, d.xact, d.id, ` + prefixCols("d.", queueCols) + ` FROM d LEFT JOIN r ON TRUE ORDER BY d.xact, d.id`)

// sequencer runs sequencing rounds for the changes of one DB that wait for
// their events to reach the log: the waiters that arrive while a round
// runs share the next one (group commit), and no goroutine runs while
// none waits.
type sequencer struct {
	mu      sync.Mutex
	running bool
	waiters []chan error
	wg      sync.WaitGroup // the running loop, waited for by DB.Close
}

// sequencers holds the sequencer of each PostgreSQL DB.
var sequencers sync.Map // *DB -> *sequencer

func (db *DB) sequencer() *sequencer {
	if s, ok := sequencers.Load(db); ok {
		return s.(*sequencer)
	}
	s, _ := sequencers.LoadOrStore(db, new(sequencer))
	return s.(*sequencer)
}

// sequenceTimeout bounds one sequencing round of the background sequencer.
const sequenceTimeout = 10 * time.Second

// await returns once a round that started after the call has ended, or
// ctx has, and whether such a round succeeded (its commit, which is
// durable, flushed the WAL up to and past every commit before it). A
// round that fails leaves the events queued for the next.
func (s *sequencer) await(ctx context.Context, db *DB) bool {
	if ctx.Err() != nil {
		return false
	}
	done := make(chan error, 1)
	s.mu.Lock()
	s.waiters = append(s.waiters, done)
	if !s.running {
		s.running = true
		s.wg.Add(1)
		go s.run(db)
	}
	s.mu.Unlock()
	select {
	case err := <-done:
		return err == nil
	case <-ctx.Done():
		return false
	}
}

func (s *sequencer) run(db *DB) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		ws := s.waiters
		s.waiters = nil
		if len(ws) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		// Rounds until the queue holds less than a full one, each bounded
		// by sequenceTimeout; on failure the events stay queued for the
		// next.
		var err error
		for {
			ctx, cancel := context.WithTimeout(context.Background(), sequenceTimeout)
			var txs int
			_, txs, err = db.sequenceRound(ctx)
			cancel()
			if err != nil || txs < sequenceBatch {
				break
			}
		}
		for _, w := range ws {
			w <- err
		}
	}
}

// AuditSize is the number of events appended.
func (db *DB) AuditSize(ctx context.Context) (uint64, error) {
	var n int64
	err := db.read.QueryRowContext(ctx, db.sql(qAuditSize)).Scan(&n)
	return uint64(n), wrap("sqlstore.AuditSize", err)
}

// AuditEnd is one more than the highest event ID stored.
func (db *DB) AuditEnd(ctx context.Context) (uint64, error) {
	var n int64
	err := db.read.QueryRowContext(ctx, db.sql(qAuditEnd)).Scan(&n)
	return uint64(n + 1), wrap("sqlstore.AuditEnd", err)
}

// seqArg bounds a sequence number for a BIGINT column.
func seqArg(n uint64) int64 { return int64(min(n, 1<<63-1)) }

func scanRecord(s scanner) (*audit.Record, error) {
	r := new(audit.Record)
	var leaf, personal []byte
	err := s.Scan(&r.ID, millis{&r.Time}, &r.RequestID, &r.Actor.Kind, &r.Actor.ID, &r.Action, &r.Subject,
		&r.ClientID, &r.PublicBody, &r.LegalBasis, strs{&r.Attributes}, &r.Outcome, &r.Detail, &r.Salt,
		&personal, &leaf, &r.Redacted)
	if err != nil {
		return nil, err
	}
	// A stored hash of the wrong length reads as zero: it then matches
	// nothing, which is what verification must report.
	r.LeafHash, _ = audit.HashFromBytes(leaf)
	if personal != nil {
		h, _ := audit.HashFromBytes(personal)
		r.PersonalDigest = &h
	}
	if len(r.Salt) == 0 {
		r.Salt = nil
	}
	return r, nil
}

func (db *DB) records(ctx context.Context, op string, q query, args ...any) ([]*audit.Record, error) {
	rows, err := db.read.QueryContext(ctx, db.sql(q), args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var rs []*audit.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		rs = append(rs, r)
	}
	return rs, wrap(op, rows.Err())
}

// Events returns the stored events with from <= ID < to, by ID.
func (db *DB) Events(ctx context.Context, from, to uint64) ([]*audit.Record, error) {
	if to <= from {
		return nil, nil
	}
	return db.records(ctx, "sqlstore.Events", qAuditEvents, seqArg(from), seqArg(to), seqArg(to-from))
}

// EventsBySubject returns up to limit events about subject with ID >= from.
func (db *DB) EventsBySubject(ctx context.Context, subject string, from uint64, limit int) ([]*audit.Record, error) {
	if subject == "" || limit <= 0 {
		return nil, nil
	}
	return db.records(ctx, "sqlstore.EventsBySubject", qAuditBySubject, subject, seqArg(from), int64(limit))
}

// LeafHashes returns the stored leaf hashes of events [from, to).
func (db *DB) LeafHashes(ctx context.Context, from, to uint64) ([]audit.Hash, error) {
	const op = "sqlstore.LeafHashes"
	if to <= from {
		return nil, nil
	}
	rows, err := db.read.QueryContext(ctx, db.sql(qAuditLeaves), seqArg(from), seqArg(to), seqArg(to-from))
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	hs := make([]audit.Hash, 0, to-from)
	var leaf []byte
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq, &leaf); err != nil {
			return nil, wrap(op, err)
		}
		h, err := audit.HashFromBytes(leaf)
		if uint64(seq) != from+uint64(len(hs)) || err != nil {
			return nil, &sqin.Error{Code: sqin.EInternal, Op: op,
				Message: fmt.Sprintf("audit event %d is missing or its leaf hash is damaged", from+uint64(len(hs)))}
		}
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	if uint64(len(hs)) != to-from {
		return nil, &sqin.Error{Code: sqin.EInternal, Op: op,
			Message: fmt.Sprintf("audit event %d is missing", from+uint64(len(hs)))}
	}
	return hs, nil
}

// RedactEvents drops the personal fields and the salt of up to limit
// events older than before, oldest first, keeping their personal digest,
// with the events ctx carries, in one transaction; when there is nothing
// to redact, those events are dropped.
func (db *DB) RedactEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, db.sql(qAuditToRedact), ms(before), int64(max(limit, 0)))
		if err != nil {
			return err
		}
		var rs []*audit.Record
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				rows.Close()
				return err
			}
			rs = append(rs, r)
		}
		if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, r := range rs {
			d := r.Event.PersonalDigest()
			res, err := tx.ExecContext(ctx, db.sql(qAuditRedact), d[:], true, int64(r.ID))
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		if n == 0 {
			return errNoChange // nothing redacted: no event either
		}
		return nil
	})
	if err == errNoChange {
		err = nil
	}
	return n, wrap("sqlstore.RedactEvents", err)
}

// SaveTreeHead stores th unless a head of its size is stored.
func (db *DB) SaveTreeHead(ctx context.Context, th *audit.TreeHead) error {
	_, err := db.writeExec(ctx, qSaveTreeHead, int64(th.TreeSize), th.Timestamp, th.RootHash[:], th.KeyID,
		th.Signature)
	return wrap("sqlstore.SaveTreeHead", err)
}

func scanTreeHead(s scanner) (*audit.TreeHead, error) {
	th := new(audit.TreeHead)
	var root []byte
	if err := s.Scan(&th.TreeSize, &th.Timestamp, &root, &th.KeyID, &th.Signature); err != nil {
		return nil, err
	}
	th.RootHash, _ = audit.HashFromBytes(root) // a damaged root matches nothing
	return th, nil
}

// LatestTreeHead returns the head of the largest size, or sqin.ErrNotFound.
func (db *DB) LatestTreeHead(ctx context.Context) (*audit.TreeHead, error) {
	th, err := scanTreeHead(db.read.QueryRowContext(ctx, db.sql(qLatestTreeHead)))
	if err != nil {
		return nil, wrap("sqlstore.LatestTreeHead", err)
	}
	return th, nil
}

// TreeHeads returns every stored head, by size.
func (db *DB) TreeHeads(ctx context.Context) ([]*audit.TreeHead, error) {
	const op = "sqlstore.TreeHeads"
	rows, err := db.read.QueryContext(ctx, db.sql(qTreeHeads))
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var ths []*audit.TreeHead
	for rows.Next() {
		th, err := scanTreeHead(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		ths = append(ths, th)
	}
	return ths, wrap(op, rows.Err())
}

// Subtrees returns the cached hashes of the nodes asked for.
func (db *DB) Subtrees(ctx context.Context, ids []audit.NodeID) (map[audit.NodeID]audit.Hash, error) {
	const op = "sqlstore.Subtrees"
	out := make(map[audit.NodeID]audit.Hash, len(ids))
	args := make([]any, 0, auditBatch)
	for start := 0; start < len(ids); start += auditBatch {
		batch := ids[start:min(start+auditBatch, len(ids))]
		args = args[:0]
		for _, id := range batch {
			args = append(args, nodeKey(id))
		}
		rows, err := db.read.QueryContext(ctx, db.sql(subtreeSelect(len(batch))), args...)
		if err != nil {
			return nil, wrap(op, err)
		}
		for rows.Next() {
			var k int64
			var b []byte
			if err := rows.Scan(&k, &b); err != nil {
				rows.Close()
				return nil, wrap(op, err)
			}
			if h, err := audit.HashFromBytes(b); err == nil {
				out[nodeOf(k)] = h
			}
		}
		if err := rows.Close(); err != nil {
			return nil, wrap(op, err)
		}
		if err := rows.Err(); err != nil {
			return nil, wrap(op, err)
		}
	}
	return out, nil
}

// SaveSubtrees caches node hashes in one transaction.
func (db *DB) SaveSubtrees(ctx context.Context, nodes map[audit.NodeID]audit.Hash) error {
	if len(nodes) == 0 {
		return nil
	}
	return wrap("sqlstore.SaveSubtrees", db.inTx(ctx, func(tx *sql.Tx) error {
		for id, h := range nodes {
			if _, err := tx.ExecContext(ctx, db.sql(qSaveSubtree), nodeKey(id), h[:]); err != nil {
				return err
			}
		}
		return nil
	}))
}

// SubtreeFrontier is one more than the highest index cached at level.
func (db *DB) SubtreeFrontier(ctx context.Context, level uint8) (uint64, error) {
	var k int64
	lo := nodeKey(audit.NodeID{Level: level})
	err := db.read.QueryRowContext(ctx, db.sql(qSubtreeFrontier), lo, lo+1<<56).Scan(&k)
	if err != nil || k < 0 {
		return 0, wrap("sqlstore.SubtreeFrontier", err)
	}
	return nodeOf(k).Index + 1, nil
}
