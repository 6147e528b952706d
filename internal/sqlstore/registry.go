package sqlstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sqin/sqin/internal/registry"
)

// The registry import (docs/formats/registry-import.md) on both dialects.
//
// A delivery gets a row in registry_imports and a staging table of its own,
// registry_stage_<id>, created in the transaction that records the
// delivery. Valid records are staged in batches, each in one transaction
// that also advances staged_line, staged_rows and staged_dead, so a run
// interrupted at any point resumes after the last committed batch; on
// PostgreSQL each batch is one binary COPY. MergeImport then makes the
// whole delivery visible in one transaction: readers see the registry
// before the delivery or after it, never in between.
//
// The staging table has one of two shapes (registry_imports.mode):
//
//   - merge: line, op, pid, ref, the attributes and effective_date
//     (UNLOGGED on PostgreSQL). MergeImport compares it with persons and
//     applies creations, changes (with history), deaths and removals,
//     locks the accounts of people who died, and drops it.
//   - load: persons' own columns, no index (PostgreSQL adds a line
//     column; SQLite keeps the line in the rowid). The first snapshot of
//     a source, into a registry holding no more people than the delivery,
//     is staged this way: MergeImport adds the people already there,
//     builds persons' indexes once from sorted keys and puts the table in
//     persons' place. Maintaining persons' three B-trees (keyed by random
//     values) row by row cost five to eight times the load itself.

var (
	_ registry.Store   = (*DB)(nil)
	_ registry.Querier = (*DB)(nil)
)

// Staging modes (registry_imports.mode).
const (
	modeMerge = "merge"
	modeLoad  = "load"
)

// attrCols are the persons columns of the catalogue's attributes.
var attrCols = func() []string {
	cols := make([]string, len(registry.Attributes))
	for i, a := range registry.Attributes {
		cols[i] = a.Column
	}
	return cols
}()

// stageCols are the columns of a merge-mode staging table, in
// StageRecords' order.
var stageCols = append(append([]string{"line", "op", "pid", "ref"}, attrCols...), "effective_date")

// loadCols are the persons columns StageRecords fills in load mode from
// each record (after its line), and loadConstCols those that hold the
// same value for every record of the delivery (loadConsts).
var (
	loadCols      = append(append([]string{"id"}, attrCols...), "source_ref", "effective_date")
	loadConstCols = []string{"province", "country", "source", "import_id", "removed_import", "updated_at"}
)

func loadConsts(st *registry.ImportState) []any {
	return []any{"QC", "CA", st.Source, st.ID, int64(0), ms(st.Started)}
}

func stageTable(id int64) string { return fmt.Sprintf("registry_stage_%d", id) }

// layout names, for the merge's statements, the columns of a staging
// table aliased s: expressions (line, pid, ref, op) and bare column names
// (lineCol, pidCol).
type layout struct{ line, pid, ref, op, lineCol, pidCol string }

func (db *DB) layout(st *registry.ImportState) layout {
	switch {
	case st.Mode != modeLoad:
		return layout{"s.line", "s.pid", "s.ref", "s.op", "line", "pid"}
	case db.dialect == SQLite:
		return layout{"s.rowid", "s.id", "s.source_ref", "'create'", "rowid", "id"}
	}
	return layout{"s.line", "s.id", "s.source_ref", "'create'", "line", "id"}
}

func (db *DB) createStageTable(ctx context.Context, tx *sql.Tx, st *registry.ImportState) error {
	t := stageTable(st.ID)
	if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
		return err
	}
	var stmts []string
	switch {
	case st.Mode == modeLoad && db.dialect == Postgres:
		// Logged, as persons, which it becomes; no autovacuum while it
		// fills (persons' setting comes back at the merge).
		stmts = []string{
			"CREATE TABLE " + t + " (LIKE persons INCLUDING ALL EXCLUDING INDEXES) WITH (autovacuum_enabled = false)",
			"ALTER TABLE " + t + " ADD COLUMN line BIGINT NOT NULL DEFAULT 0",
		}
	case st.Mode == modeLoad:
		ddl, err := sqliteLoadTable(ctx, tx, t)
		if err != nil {
			return err
		}
		stmts = []string{ddl}
	default:
		var b strings.Builder
		if db.dialect == Postgres {
			// No index: COPY only appends; the merge reads it whole.
			fmt.Fprintf(&b, "CREATE UNLOGGED TABLE %s (line BIGINT NOT NULL", t)
		} else {
			fmt.Fprintf(&b, "CREATE TABLE %s (line INTEGER NOT NULL PRIMARY KEY", t)
		}
		for _, c := range stageCols[1:] {
			if db.dialect == Postgres {
				fmt.Fprintf(&b, `, %s TEXT COLLATE "C" NOT NULL`, c)
			} else {
				fmt.Fprintf(&b, ", %s TEXT NOT NULL", c)
			}
		}
		b.WriteString(")")
		if db.dialect == SQLite {
			b.WriteString(" STRICT")
		}
		stmts = []string{b.String()}
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("staging table: %w", err)
		}
	}
	return nil
}

// sqliteLoadTable is the CREATE TABLE statement of a table with persons'
// columns (names, types, NOT NULL, defaults, in order; STRICT like it)
// and no key: the rowid holds the line.
func sqliteLoadTable(ctx context.Context, tx *sql.Tx, name string) (string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, type, "notnull", dflt_value FROM pragma_table_info('persons') ORDER BY cid`)
	if err != nil {
		return "", err
	}
	var cols []string
	for rows.Next() {
		var col, typ string
		var notNull bool
		var dflt sql.NullString
		if err := rows.Scan(&col, &typ, &notNull, &dflt); err != nil {
			rows.Close()
			return "", err
		}
		c := `"` + col + `" ` + typ
		if notNull {
			c += " NOT NULL"
		}
		if dflt.Valid {
			c += " DEFAULT " + dflt.String
		}
		cols = append(cols, c)
	}
	if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
		return "", err
	}
	if len(cols) == 0 {
		return "", errors.New("table persons not found")
	}
	var strict bool
	if err := tx.QueryRowContext(ctx, `SELECT strict FROM pragma_table_list('persons') WHERE schema = 'main'`).Scan(&strict); err != nil {
		return "", err
	}
	ddl := "CREATE TABLE " + name + " (" + strings.Join(cols, ", ") + ")"
	if strict {
		ddl += " STRICT"
	}
	return ddl, nil
}

var (
	qPersonsUpTo     = newQuery(`SELECT COUNT(*) FROM (SELECT 1 FROM persons LIMIT ?) t`)
	qPersonsOfSource = newQuery(`SELECT COUNT(*) FROM (SELECT 1 FROM persons WHERE source = ? LIMIT 1) t`)
	// qPersonsDependents counts what replacing the table persons would
	// drop or break: foreign keys to it, triggers, views and rules,
	// privileges granted, row security, inheritance, publications.
	qPersonsDependents = query{
		sqlite: `SELECT COUNT(*) FROM sqlite_master WHERE type IN ('trigger', 'view') AND (tbl_name = 'persons' OR sql LIKE '%persons%')`,
		postgres: `SELECT (SELECT COUNT(*) FROM pg_constraint WHERE confrelid = 'persons'::regclass)
			+ (SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = 'persons'::regclass AND NOT tgisinternal)
			+ (SELECT COUNT(*) FROM pg_depend WHERE refobjid = 'persons'::regclass AND classid = 'pg_rewrite'::regclass)
			+ (SELECT COUNT(*) FROM pg_class WHERE oid = 'persons'::regclass
				AND (relacl IS NOT NULL OR relrowsecurity OR relkind <> 'r' OR relispartition))
			+ (SELECT COUNT(*) FROM pg_inherits WHERE inhparent = 'persons'::regclass OR inhrelid = 'persons'::regclass)
			+ (SELECT COUNT(*) FROM pg_publication_rel WHERE prrelid = 'persons'::regclass)`,
	}
)

// loadable reports whether a first snapshot of source holding records
// people may replace the table persons (load mode): persons holds at most
// that many people and none of source, and nothing but its indexes
// depends on the table.
func (db *DB) loadable(ctx context.Context, tx *sql.Tx, source string, records int64) (bool, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, db.sql(qPersonsUpTo), records+1).Scan(&n); err != nil || n > records {
		return false, err
	}
	if err := tx.QueryRowContext(ctx, db.sql(qPersonsOfSource), source).Scan(&n); err != nil || n > 0 {
		return false, err
	}
	if err := tx.QueryRowContext(ctx, db.sql(qPersonsDependents)).Scan(&n); err != nil || n > 0 {
		return false, err
	}
	return true, nil
}

var (
	qRegistryLock = newQuery(`SELECT pg_advisory_xact_lock(hashtext('sqin.registry'), hashtext(?))`)
	qImportBySeq  = newQuery(`SELECT id, sha256, state, staged_line, staged_rows, mode, started_at
		FROM registry_imports WHERE source = ? AND sequence = ?`)
	qLastApplied     = newQuery(`SELECT COALESCE(MAX(sequence), 0), COUNT(CASE WHEN kind = 'snapshot' THEN 1 END) FROM registry_imports WHERE source = ? AND state = 'applied'`)
	qOtherInProgress = newQuery(`SELECT COUNT(*) FROM registry_imports WHERE source = ? AND state = 'staging' AND sequence <> ?`)
	qInsertImport    = newQuery(`INSERT INTO registry_imports (source, sequence, kind, format, sha256, record_count,
		extracted_at, state, staged_line, staged_rows, staged_dead, mode, started_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'staging', 0, 0, 0, ?, ?) RETURNING id`)
	qResetImport = newQuery(`UPDATE registry_imports SET kind = ?, format = ?, sha256 = ?, record_count = ?, extracted_at = ?,
		state = 'staging', staged_line = 0, staged_rows = 0, staged_dead = 0, mode = ?, reason = '', started_at = ?,
		finished_at = 0 WHERE id = ?`)
	qStaged = newQuery(`UPDATE registry_imports SET staged_line = ?, staged_rows = staged_rows + ?, staged_dead = staged_dead + ?
		WHERE id = ? AND state = 'staging'`)
	qStagedCounts = newQuery(`SELECT staged_rows, staged_dead FROM registry_imports WHERE id = ?`)
	qRefuseImport = newQuery(`UPDATE registry_imports SET state = 'refused', reason = ?, staged_line = 0, staged_rows = 0,
		staged_dead = 0, finished_at = ? WHERE id = ? AND state = 'staging'`)
	qFinishImport = newQuery(`UPDATE registry_imports SET state = 'applied', records = ?, created = ?, changed = ?,
		unchanged = ?, deceased = ?, removed = ?, unknown = ?, rejected = ?, finished_at = ? WHERE id = ?`)
)

// BeginImport records delivery m, or finds the interrupted run of it, in
// one transaction (serialised per source on PostgreSQL by an advisory
// lock, on SQLite by the one writer):
//
//   - the same source and sequence already applied: ErrAlreadyImported
//     when the checksum is the same, ErrSequenceReused otherwise;
//   - the same delivery interrupted while staging: its state, to resume
//     after StagedLine — unless its staging table lost rows (PostgreSQL
//     empties UNLOGGED tables after a server crash), then from the start;
//   - a delivery of the same source interrupted with another sequence:
//     ErrInProgress;
//   - a delta whose sequence is not the last applied + 1, or with no
//     snapshot applied before; a snapshot whose sequence is not above the
//     last applied: ErrOutOfSequence;
//   - otherwise a new delivery (or a refused one tried again), with an
//     empty staging table: in load mode for the first delivery of a
//     source when loadable, in merge mode otherwise.
func (db *DB) BeginImport(ctx context.Context, m *registry.Manifest, now time.Time) (*registry.ImportState, error) {
	const op = "sqlstore.BeginImport"
	st := &registry.ImportState{Source: m.Source, Sequence: m.Sequence, Kind: m.Kind, AsOf: m.AsOf()}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if db.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, db.sql(qRegistryLock), m.Source); err != nil {
				return err
			}
		}
		var (
			sum, state, mode  string
			stagedLine, rows  int64
			started           int64
			existing          = true
			lastSeq, snapshot int64
		)
		err := tx.QueryRowContext(ctx, db.sql(qImportBySeq), m.Source, m.Sequence).Scan(&st.ID, &sum, &state,
			&stagedLine, &rows, &mode, &started)
		if errors.Is(err, sql.ErrNoRows) {
			existing = false
		} else if err != nil {
			return err
		}
		switch {
		case existing && state == "applied" && sum == m.SHA256:
			return registry.ErrAlreadyImported
		case existing && state == "applied":
			return registry.ErrSequenceReused
		case existing && state == "staging" && sum == m.SHA256:
			var n int64
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+stageTable(st.ID)).Scan(&n); err == nil && n == rows {
				st.StagedLine, st.Mode, st.Started = stagedLine, mode, time.UnixMilli(started).UTC()
				return nil
			}
		}
		var others int64
		if err := tx.QueryRowContext(ctx, db.sql(qOtherInProgress), m.Source, m.Sequence).Scan(&others); err != nil {
			return err
		}
		if others > 0 {
			return registry.ErrInProgress
		}
		if err := tx.QueryRowContext(ctx, db.sql(qLastApplied), m.Source).Scan(&lastSeq, &snapshot); err != nil {
			return err
		}
		if m.Kind == registry.KindDelta && (snapshot == 0 || m.Sequence != lastSeq+1) ||
			m.Kind == registry.KindSnapshot && m.Sequence <= lastSeq {
			return fmt.Errorf("%w: sequence %d, last imported %d", registry.ErrOutOfSequence, m.Sequence, lastSeq)
		}
		st.Mode, st.Started = modeMerge, now.Truncate(time.Millisecond)
		if m.Kind == registry.KindSnapshot && lastSeq == 0 {
			load, err := db.loadable(ctx, tx, m.Source, m.RecordCount)
			if err != nil {
				return fmt.Errorf("staging mode: %w", err)
			}
			if load {
				st.Mode = modeLoad
			}
		}
		if existing {
			_, err = tx.ExecContext(ctx, db.sql(qResetImport), m.Kind, m.Format, m.SHA256, m.RecordCount,
				ms(m.ExtractedAt), st.Mode, ms(now), st.ID)
		} else {
			err = tx.QueryRowContext(ctx, db.sql(qInsertImport), m.Source, m.Sequence, m.Kind, m.Format, m.SHA256,
				m.RecordCount, ms(m.ExtractedAt), st.Mode, ms(now)).Scan(&st.ID)
		}
		if err != nil {
			return err
		}
		return db.createStageTable(ctx, tx, st)
	})
	if err != nil {
		return nil, importErr(op, err)
	}
	return st, nil
}

// importErr keeps the registry's refusals as they are.
func importErr(op string, err error) error {
	for _, e := range []error{registry.ErrAlreadyImported, registry.ErrSequenceReused, registry.ErrOutOfSequence,
		registry.ErrInProgress, registry.ErrTooManyRejects} {
		if errors.Is(err, e) {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return wrap(op, err)
}

// stageRow is the values of one staged record: in stageCols order (merge
// mode) or its line and loadCols (load mode).
func stageRow(dst []any, st *registry.ImportState, r *registry.Record) []any {
	pid := r.PID
	if pid == "" {
		pid = registry.PersonID(st.Source, r.Ref())
	}
	if st.Mode == modeLoad {
		dst = append(dst[:0], r.Line, pid)
	} else {
		dst = append(dst[:0], r.Line, r.Fields[registry.FOp], pid, r.Ref())
	}
	for _, a := range registry.Attributes {
		dst = append(dst, r.Fields[a.Field])
	}
	if st.Mode == modeLoad {
		dst = append(dst, r.Ref())
	}
	return append(dst, cmp.Or(r.Fields[registry.FEffectiveDate], st.AsOf))
}

// sqliteImportCache gives the SQLite write connection a page cache of
// 128 MiB for imports (the default is 2 MiB): inserting millions of rows
// in key order into persons and its indexes then touches pages in memory.
const sqliteImportCache = "PRAGMA cache_size = -131072"

// sqliteLoadCache is the page cache of a load-mode merge: the index
// builds append to their B-trees, but each sorter (the connection's and
// its helper threads') may hold as much in memory as the page cache, so
// the cache is much smaller than sqliteImportCache to keep the import
// within its memory budget. At 9 million people 32 MiB gave a peak RSS
// of 273 MB and a 48 s merge; 64 MiB gave 484 MB (close to the 500 MB
// budget) and a 60 s merge.
const sqliteLoadCache = "PRAGMA cache_size = -32768"

// sqliteStageRows is how many records one INSERT statement stages.
const sqliteStageRows = 100

// sqlQuote is s as an SQL string literal.
func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// StageRecords adds recs to the delivery's staging table and records that
// every line up to throughLine is staged, in one transaction.
func (db *DB) StageRecords(ctx context.Context, st *registry.ImportState, recs []registry.Record, throughLine int64) error {
	const op = "sqlstore.StageRecords"
	var dead int64
	for i := range recs {
		if recs[i].Fields[registry.FDeathDate] != "" {
			dead++
		}
	}
	if db.dialect == Postgres {
		return wrap(op, db.copyStage(ctx, st, recs, throughLine, dead))
	}
	// SQLite: multi-row INSERTs; in load mode the rowid takes the line and
	// the delivery's constants are literals.
	cols, params, consts := stageCols, len(stageCols), ""
	if st.Mode == modeLoad {
		cols = append([]string{"rowid"}, append(slices.Clone(loadCols), loadConstCols...)...)
		params = 1 + len(loadCols)
		var lit []string
		for _, v := range loadConsts(st) {
			if s, isString := v.(string); isString {
				lit = append(lit, sqlQuote(s))
			} else {
				lit = append(lit, fmt.Sprint(v))
			}
		}
		consts = ", " + strings.Join(lit, ", ")
	}
	insert := func(rows int) string {
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", params), ", ") + consts + ")"
		return "INSERT INTO " + stageTable(st.ID) + " (" + strings.Join(cols, ", ") + ") VALUES " +
			strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
	}
	many, single := insert(sqliteStageRows), insert(1)
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return wrap(op, err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c := dc.(*cachingConn)
		return stageSQLite(ctx, c, st, recs, params, many, single,
			[]driver.NamedValue{{Ordinal: 1, Value: throughLine}, {Ordinal: 2, Value: int64(len(recs))},
				{Ordinal: 3, Value: dead}, {Ordinal: 4, Value: st.ID}})
	})
	if err == nil {
		registry.CrashPoint("stage")
	}
	return wrap(op, err)
}

// stageSQLite runs StageRecords' transaction on the SQLite write
// connection c, below database/sql: a second goroutine turns the records
// into the arguments of the next statements (sqliteStageRows records each,
// params values a record) while this one runs the previous ones, so the
// connection's goroutine only binds and steps. The arguments go to the
// driver as they are (no database/sql conversion); a few buffers are
// reused. progress are qStaged's arguments.
func stageSQLite(ctx context.Context, c *cachingConn, st *registry.ImportState, recs []registry.Record, params int,
	many, single string, progress []driver.NamedValue) error {
	tx, err := c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tx.Rollback()
		}
	}()
	full, free := make(chan []driver.NamedValue, 2), make(chan []driver.NamedValue, 4)
	for range cap(free) {
		free <- make([]driver.NamedValue, 0, sqliteStageRows*params)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(full)
		var row []any
		for i := 0; i < len(recs); i += sqliteStageRows {
			var a []driver.NamedValue
			select {
			case a = <-free:
			case <-stop:
				return
			}
			a = a[:0]
			for j := i; j < min(i+sqliteStageRows, len(recs)); j++ {
				row = stageRow(row, st, &recs[j])
				for _, v := range row {
					a = append(a, driver.NamedValue{Ordinal: len(a) + 1, Value: v})
				}
			}
			select {
			case full <- a:
			case <-stop:
				return
			}
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for a := range full {
		if len(a) == sqliteStageRows*params {
			if _, err := c.ExecContext(ctx, many, a); err != nil {
				return err
			}
		} else { // the last records: one statement each
			for k := 0; k < len(a); k += params {
				one := a[k : k+params : k+params]
				for i := range one {
					one[i].Ordinal = i + 1
				}
				if _, err := c.ExecContext(ctx, single, one); err != nil {
					return err
				}
			}
		}
		free <- a
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, qStaged.sqlite, progress); err != nil {
		return err
	}
	registry.CrashPoint("stage-tx")
	done = true
	return tx.Commit()
}

// copyStage is StageRecords on PostgreSQL: one binary COPY and the
// progress update in one transaction. The transaction does not wait for
// its commit record to reach the disk (synchronous_commit off): a server
// crash may lose the last batches, staged rows and progress together, and
// the rerun stages them again; the merge's commit is durable and makes
// them durable with it.
func (db *DB) copyStage(ctx context.Context, st *registry.ImportState, recs []registry.Record, throughLine, dead int64) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	cols, consts := stageCols, []any(nil)
	if st.Mode == modeLoad {
		cols = append(append([]string{"line"}, loadCols...), loadConstCols...)
		consts = loadConsts(st)
	}
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		quoted := make([]string, len(cols))
		for i, c := range cols {
			quoted[i] = pgx.Identifier{c}.Sanitize()
		}
		_, err = tx.Conn().PgConn().CopyFrom(ctx, newCopyEncoder(st, recs, consts),
			"COPY "+pgx.Identifier{stageTable(st.ID)}.Sanitize()+" ("+strings.Join(quoted, ", ")+") FROM STDIN (FORMAT binary)")
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qStaged.postgres, throughLine, int64(len(recs)), dead, st.ID); err != nil {
			return err
		}
		registry.CrashPoint("stage-tx")
		return tx.Commit(ctx)
	})
	if err == nil {
		registry.CrashPoint("stage")
	}
	return err
}

// copyEncoder is the binary COPY stream of a batch (the fields of
// stageRow, then the constants), encoded as pgconn reads it: text fields
// as their bytes, integers (the line, the constants' numbers) as int8 —
// every staged column is TEXT or BIGINT. It writes the bytes directly
// instead of going through pgx's per-value encoding plans.
type copyEncoder struct {
	st     *registry.ImportState
	recs   []registry.Record
	consts []byte // the constants' fields, encoded once
	fields int16
	next   int
	buf    []byte
	off    int
	ended  bool
}

func newCopyEncoder(st *registry.ImportState, recs []registry.Record, consts []any) *copyEncoder {
	e := &copyEncoder{st: st, recs: recs, buf: make([]byte, 0, 128<<10)}
	e.buf = append(e.buf, "PGCOPY\n\xff\r\n\x00"...)
	e.buf = binary.BigEndian.AppendUint64(e.buf, 0) // flags, header extension length
	for _, v := range consts {
		e.consts = appendCopyField(e.consts, v)
	}
	n := len(stageCols)
	if st.Mode == modeLoad {
		n = 1 + len(loadCols)
	}
	e.fields = int16(n + len(consts))
	return e
}

func appendCopyField(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
		return append(b, x...)
	case int64:
		b = binary.BigEndian.AppendUint32(b, 8)
		return binary.BigEndian.AppendUint64(b, uint64(x))
	}
	panic(fmt.Sprintf("copyEncoder: value of type %T", v))
}

func appendCopyText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendRow encodes one record as stageRow orders its values.
func (e *copyEncoder) appendRow(b []byte, r *registry.Record) []byte {
	st := e.st
	pid := r.PID
	if pid == "" {
		pid = registry.PersonID(st.Source, r.Ref())
	}
	b = binary.BigEndian.AppendUint16(b, uint16(e.fields))
	b = binary.BigEndian.AppendUint32(b, 8)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Line))
	if st.Mode == modeLoad {
		b = appendCopyText(b, pid)
	} else {
		b = appendCopyText(appendCopyText(appendCopyText(b, r.Fields[registry.FOp]), pid), r.Ref())
	}
	for _, a := range registry.Attributes {
		b = appendCopyText(b, r.Fields[a.Field])
	}
	if st.Mode == modeLoad {
		b = appendCopyText(b, r.Ref())
	}
	b = appendCopyText(b, cmp.Or(r.Fields[registry.FEffectiveDate], st.AsOf))
	return append(b, e.consts...)
}

func (e *copyEncoder) Read(p []byte) (int, error) {
	for len(e.buf)-e.off < len(p) && !e.ended {
		if e.off > 0 {
			e.buf = append(e.buf[:0], e.buf[e.off:]...)
			e.off = 0
		}
		for range 64 {
			if e.next == len(e.recs) {
				e.buf = binary.BigEndian.AppendUint16(e.buf, 0xffff) // trailer
				e.ended = true
				break
			}
			e.buf = e.appendRow(e.buf, &e.recs[e.next])
			e.next++
		}
	}
	n := copy(p, e.buf[e.off:])
	e.off += n
	if n == 0 && e.ended {
		return 0, io.EOF
	}
	return n, nil
}

// firstWords is the start of a statement, for logs (statements hold no
// registry values: those are arguments).
func firstWords(q string, n int) string {
	w := strings.Fields(q)
	return strings.Join(w[:min(n, len(w))], " ")
}

// RefuseImport drops the staging table of a refused delivery and records
// why; the registry is as it was. The delivery may be run again.
func (db *DB) RefuseImport(ctx context.Context, st *registry.ImportState, reason string, now time.Time) error {
	return wrap("sqlstore.RefuseImport", db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+stageTable(st.ID)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.sql(qRefuseImport), reason, ms(now), st.ID)
		return err
	}))
}

// mergeTx runs MergeImport's statements in its transaction, logging each
// step's time at debug level (statements hold no registry values).
type mergeTx struct {
	ctx context.Context
	tx  *sql.Tx
	pg  bool
	id  int64
}

// exec runs a statement written with ? placeholders and returns the rows
// it changed.
func (m *mergeTx) exec(q string, args ...any) (int64, error) {
	if m.pg {
		q = newQuery(q).postgres
	}
	t0 := time.Now()
	res, err := m.tx.ExecContext(m.ctx, q, args...)
	slog.Debug("registry merge step", "import", m.id, "elapsed", time.Since(t0), "sql", firstWords(q, 8))
	if err != nil {
		return 0, fmt.Errorf("%s…: %w", firstWords(q, 8), err)
	}
	return res.RowsAffected()
}

// ints runs a query of one row of integers (NULL reads as 0).
func (m *mergeTx) ints(q string, args ...any) ([]int64, error) {
	if m.pg {
		q = newQuery(q).postgres
	}
	t0 := time.Now()
	rows, err := m.tx.QueryContext(m.ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s…: %w", firstWords(q, 8), err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]sql.NullInt64, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if !rows.Next() {
		return nil, cmp.Or(rows.Err(), sql.ErrNoRows)
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	slog.Debug("registry merge step", "import", m.id, "elapsed", time.Since(t0), "sql", firstWords(q, 8))
	out := make([]int64, len(vals))
	for i, v := range vals {
		out[i] = v.Int64
	}
	return out, rows.Close()
}

// strings runs a query of one text column.
func (m *mergeTx) strings(q string, args ...any) ([]string, error) {
	rows, err := m.tx.QueryContext(m.ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s…: %w", firstWords(q, 8), err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, cmp.Or(rows.Err(), rows.Close())
}

// lineList is lines as an SQL list.
func lineList(lines []int64) string {
	list := make([]string, len(lines))
	for i, l := range lines {
		list[i] = strconv.FormatInt(l, 10)
	}
	return strings.Join(list, ", ")
}

// MergeImport applies the staged delivery in one transaction:
//
//   - lines whose source reference an earlier line holds are rejected
//     (p.Duplicate), and the delivery refused with ErrTooManyRejects when
//     the rejects then exceed p.MaxRejects;
//   - in load mode, when the registry is still loadable, the staging
//     table becomes persons (swapIn);
//   - otherwise create and change records create the person, or replace
//     every attribute that differs, keeping the previous value in
//     registry_history (replaced_by this import, replaced_on the record's
//     effective date); a person removed earlier comes back;
//   - death records set the death date (history kept the same way);
//   - remove records, and for a snapshot every person of the source it
//     does not hold, mark the person removed;
//   - the accounts linked to people who died are locked;
//   - the import's counts are recorded and its staging table dropped.
func (db *DB) MergeImport(ctx context.Context, st *registry.ImportState, p registry.MergeParams) (*registry.Summary, error) {
	const op = "sqlstore.MergeImport"
	s := &registry.Summary{ImportID: st.ID, Rejected: p.Rejected}
	stage := stageTable(st.ID)
	L := db.layout(st)
	chg, dead := fmt.Sprintf("registry_chg_%d", st.ID), fmt.Sprintf("registry_dead_%d", st.ID)
	now := ms(p.Now)
	if db.dialect == SQLite && st.Mode == modeLoad {
		// Index builds sort through temporary files (the connection
		// keeps them in memory otherwise: a whole index) with a helper
		// thread; set back after the merge.
		if _, err := db.write.ExecContext(ctx, "PRAGMA temp_store = FILE; PRAGMA threads = 2"); err != nil {
			return nil, wrap(op, err)
		}
		defer db.write.ExecContext(context.WithoutCancel(ctx), "PRAGMA temp_store = MEMORY; PRAGMA threads = 0")
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		m := &mergeTx{ctx: ctx, tx: tx, pg: db.dialect == Postgres, id: st.ID}
		if db.dialect == SQLite {
			cache := sqliteImportCache
			if st.Mode == modeLoad {
				cache = sqliteLoadCache
			}
			if _, err := m.exec(cache); err != nil {
				return err
			}
		} else {
			if _, err := m.exec("SET LOCAL work_mem = '256MB'"); err != nil {
				return err
			}
			if _, err := m.exec("SET LOCAL maintenance_work_mem = '256MB'"); err != nil {
				return err
			}
			if st.Mode == modeLoad {
				// No writer may add people between the check that the
				// registry is loadable and the swap; readers go on.
				if _, err := m.exec("LOCK TABLE persons IN SHARE MODE"); err != nil {
					return err
				}
			} else if _, err := m.exec("ANALYZE " + stage); err != nil {
				return err
			}
		}
		// The first delivery of a source: no person of it exists yet
		// (identifiers derive from the source), so only creations apply.
		applied, err := m.ints("SELECT COUNT(*) FROM registry_imports WHERE source = ? AND state = 'applied'", st.Source)
		if err != nil {
			return err
		}
		first := applied[0] == 0

		dups, err := db.duplicates(ctx, tx, stage, L, p)
		if err != nil {
			return err
		}
		for _, line := range dups { // reported even when the delivery is refused
			if p.Duplicate != nil {
				if err := p.Duplicate(line); err != nil {
					return err
				}
			}
		}
		s.Rejected += int64(len(dups))
		if s.Rejected > p.MaxRejects {
			return registry.ErrTooManyRejects
		}
		var dupDead int64
		for i := 0; i < len(dups); i += 1000 { // one statement (one scan on PostgreSQL) per 1,000 lines
			list := lineList(dups[i:min(i+1000, len(dups))])
			if st.Mode == modeLoad {
				n, err := m.ints("SELECT COUNT(*) FROM " + stage + " WHERE " + L.lineCol + " IN (" + list + ") AND death_date <> ''")
				if err != nil {
					return err
				}
				dupDead += n[0]
			}
			if _, err := m.exec("DELETE FROM " + stage + " WHERE " + L.lineCol + " IN (" + list + ")"); err != nil {
				return err
			}
		}

		if st.Mode == modeLoad {
			c, err := m.ints(db.sql(qStagedCounts), st.ID)
			if err != nil {
				return err
			}
			staged := c[0] - int64(len(dups))
			load, err := db.loadable(ctx, tx, st.Source, staged)
			if err != nil {
				return err
			}
			if load {
				s.Created, s.Deceased = staged, c[1]-dupDead
				if err := db.swapIn(m, stage); err != nil {
					return err
				}
				return db.finishImport(m, st, s, p, nil)
			}
			slog.Info("registry import: persons changed since the delivery began, merging instead of loading",
				"import", st.ID)
		}

		// One scan for the counts by operation.
		counts, err := m.ints(fmt.Sprintf(`SELECT SUM(CASE WHEN %[1]s IN ('create', 'change') THEN 1 ELSE 0 END),
			SUM(CASE WHEN %[1]s = 'death' THEN 1 ELSE 0 END), SUM(CASE WHEN %[1]s = 'remove' THEN 1 ELSE 0 END),
			SUM(CASE WHEN s.death_date <> '' THEN 1 ELSE 0 END) FROM %[2]s s`, L.op, stage))
		if err != nil {
			return err
		}
		upserts, deathOps, removeOps := counts[0], counts[1], counts[2]

		insertPersons := fmt.Sprintf(`INSERT INTO persons (id, %s, province, country, source, source_ref,
			import_id, effective_date, removed_import, updated_at)
			SELECT %s, s.%s, 'QC', 'CA', ?, %s, ?, s.effective_date, 0, ? FROM %s s`,
			strings.Join(attrCols, ", "), L.pid, strings.Join(attrCols, ", s."), L.ref, stage)
		if first {
			if deathOps+removeOps > 0 {
				return fmt.Errorf("the first delivery of a source holds death or remove records")
			}
			if s.Created, err = m.exec(insertPersons, st.Source, st.ID, now); err != nil {
				return err
			}
			s.Deceased = counts[3]
			return db.finishImport(m, st, s, p, []string{stage})
		}

		// Create and change.
		var differs, oldNew []string
		for _, c := range attrCols {
			differs = append(differs, fmt.Sprintf("p.%s <> s.%s", c, c))
			oldNew = append(oldNew, fmt.Sprintf("p.%s AS o_%s, s.%s AS n_%s", c, c, c, c))
		}
		if _, err := m.exec(fmt.Sprintf(`CREATE TEMP TABLE %s AS SELECT %s AS pid, s.effective_date AS eff, %s
			FROM %s s JOIN persons p ON p.id = %s
			WHERE %s IN ('create', 'change') AND (p.removed_import <> 0 OR %s)`,
			chg, L.pid, strings.Join(oldNew, ", "), stage, L.pid, L.op, strings.Join(differs, " OR "))); err != nil {
			return err
		}
		for _, a := range registry.Attributes {
			if _, err := m.exec(fmt.Sprintf(`INSERT INTO registry_history (person_id, attribute, value, replaced_by, replaced_on)
				SELECT pid, ?, o_%s, ?, eff FROM %s WHERE o_%s <> n_%s`, a.Column, chg, a.Column, a.Column),
				a.Name, st.ID); err != nil {
				return err
			}
		}
		var set []string
		for _, c := range attrCols {
			set = append(set, fmt.Sprintf("%s = c.n_%s", c, c))
		}
		if s.Changed, err = m.exec(fmt.Sprintf(`UPDATE persons SET %s, removed_import = 0, updated_at = ?
			FROM %s c WHERE persons.id = c.pid`, strings.Join(set, ", "), chg), now); err != nil {
			return err
		}
		notKnown := fmt.Sprintf("%s IN ('create', 'change') AND NOT EXISTS (SELECT 1 FROM persons p WHERE p.id = %s)", L.op, L.pid)
		createdDead, err := m.ints(fmt.Sprintf(`SELECT COUNT(*) FROM %s s WHERE s.death_date <> '' AND %s`, stage, notKnown))
		if err != nil {
			return err
		}
		if s.Created, err = m.exec(insertPersons+" WHERE "+notKnown, st.Source, st.ID, now); err != nil {
			return err
		}
		s.Unchanged = upserts - s.Created - s.Changed
		newlyDead, err := m.ints(fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE o_death_date = '' AND n_death_date <> ''", chg))
		if err != nil {
			return err
		}
		s.Deceased = newlyDead[0] + createdDead[0]

		// Deaths.
		if _, err := m.exec(fmt.Sprintf(`CREATE TEMP TABLE %s AS SELECT %s AS pid, s.death_date AS n, p.death_date AS o,
			s.effective_date AS eff FROM %s s JOIN persons p ON p.id = %s WHERE %s = 'death'`,
			dead, L.pid, stage, L.pid, L.op)); err != nil {
			return err
		}
		if _, err := m.exec(fmt.Sprintf(`INSERT INTO registry_history (person_id, attribute, value, replaced_by, replaced_on)
			SELECT pid, 'death_date', o, ?, eff FROM %s WHERE o <> n`, dead), st.ID); err != nil {
			return err
		}
		deathChanges, err := m.exec(fmt.Sprintf(`UPDATE persons SET death_date = d.n, updated_at = ?
			FROM %s d WHERE persons.id = d.pid AND d.o <> d.n`, dead), now)
		if err != nil {
			return err
		}
		deaths, err := m.ints(fmt.Sprintf("SELECT COUNT(*), SUM(CASE WHEN o = '' THEN 1 ELSE 0 END) FROM %s", dead))
		if err != nil {
			return err
		}
		knownDeaths, firstDeaths := deaths[0], deaths[1]
		s.Deceased += firstDeaths
		s.Changed += deathChanges - firstDeaths // a death date corrected
		s.Unchanged += knownDeaths - deathChanges
		s.Unknown += deathOps - knownDeaths

		// Accounts of the people who died are locked.
		if _, err := m.exec(fmt.Sprintf(`UPDATE accounts SET locked = ?, updated_at = ? WHERE NOT locked AND person_id IN
			(SELECT pid FROM %s WHERE o = '' UNION SELECT pid FROM %s WHERE o_death_date = '' AND n_death_date <> '')`,
			dead, chg), true, now); err != nil {
			return err
		}

		// Removals.
		known, err := m.ints(fmt.Sprintf("SELECT COUNT(*) FROM %s s JOIN persons p ON p.id = %s WHERE %s = 'remove'",
			stage, L.pid, L.op))
		if err != nil {
			return err
		}
		if s.Removed, err = m.exec(fmt.Sprintf(`UPDATE persons SET removed_import = ?, updated_at = ?
			WHERE removed_import = 0 AND id IN (SELECT %s FROM %s s WHERE %s = 'remove')`, L.pid, stage, L.op), st.ID, now); err != nil {
			return err
		}
		s.Unchanged += known[0] - s.Removed
		s.Unknown += removeOps - known[0]
		if st.Kind == registry.KindSnapshot {
			if db.dialect == SQLite {
				if _, err := m.exec(fmt.Sprintf("CREATE INDEX %s_pid ON %s (%s)", stage, stage, L.pidCol)); err != nil {
					return err
				}
			}
			n, err := m.exec(fmt.Sprintf(`UPDATE persons SET removed_import = ?, updated_at = ?
				WHERE source = ? AND removed_import = 0 AND import_id <> ?
				AND NOT EXISTS (SELECT 1 FROM %s s WHERE %s = persons.id)`, stage, L.pid), st.ID, now, st.Source, st.ID)
			if err != nil {
				return err
			}
			s.Removed += n
		}
		return db.finishImport(m, st, s, p, []string{chg, dead, stage})
	})
	if err != nil {
		return nil, importErr(op, err)
	}
	return s, nil
}

// swapIn puts the load-mode staging table in the place of persons, inside
// the merge's transaction: it adds the people persons holds, gives it
// persons' indexes (built once, from sorted keys) and constraints, and
// renames it. On PostgreSQL the indexes are built before persons is
// dropped, so readers wait only for the drop and renames, not for the
// builds; on SQLite readers keep their snapshot meanwhile (WAL).
func (db *DB) swapIn(m *mergeTx, stage string) error {
	if db.dialect == SQLite {
		return swapInSQLite(m, stage)
	}
	cols, err := m.strings(`SELECT quote_ident(attname) FROM pg_attribute
		WHERE attrelid = 'persons'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`)
	if err != nil {
		return err
	}
	list := strings.Join(cols, ", ")
	if _, err := m.exec("INSERT INTO " + stage + " (" + list + ") SELECT " + list + " FROM persons"); err != nil {
		return err
	}
	// Dropping a column only hides it: no rewrite.
	if _, err := m.exec("ALTER TABLE " + stage + " DROP COLUMN line, RESET (autovacuum_enabled)"); err != nil {
		return err
	}
	type index struct{ name, def, constraint, kind string }
	rows, err := m.tx.QueryContext(m.ctx, `SELECT c.relname, pg_get_indexdef(i.indexrelid),
		COALESCE(k.conname, ''), COALESCE(k.contype::text, '')
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid
		WHERE i.indrelid = 'persons'::regclass ORDER BY c.relname`)
	if err != nil {
		return err
	}
	var idx []index
	for rows.Next() {
		var x index
		if err := rows.Scan(&x.name, &x.def, &x.constraint, &x.kind); err != nil {
			rows.Close()
			return err
		}
		idx = append(idx, x)
	}
	if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for i, x := range idx {
		// "CREATE [UNIQUE] INDEX name ON schema.persons USING …": the same
		// index on the staging table, under a name of its own.
		using := strings.Index(x.def, " USING ")
		if using < 0 {
			return fmt.Errorf("index %s: unexpected definition", x.name)
		}
		create := "CREATE INDEX "
		if strings.HasPrefix(x.def, "CREATE UNIQUE INDEX ") {
			create = "CREATE UNIQUE INDEX "
		}
		if _, err := m.exec(fmt.Sprintf("%s%s_i%d ON %s%s", create, stage, i, stage, x.def[using:])); err != nil {
			return err
		}
	}
	if _, err := m.exec("ANALYZE " + stage); err != nil {
		return err
	}
	if _, err := m.exec("DROP TABLE persons"); err != nil {
		return err
	}
	if _, err := m.exec("ALTER TABLE " + stage + " RENAME TO persons"); err != nil {
		return err
	}
	for i, x := range idx {
		tmp := fmt.Sprintf("%s_i%d", stage, i)
		var q string
		switch x.kind {
		case "p":
			q = fmt.Sprintf("ALTER TABLE persons ADD CONSTRAINT %s PRIMARY KEY USING INDEX %s", pgx.Identifier{x.constraint}.Sanitize(), tmp)
		case "u":
			q = fmt.Sprintf("ALTER TABLE persons ADD CONSTRAINT %s UNIQUE USING INDEX %s", pgx.Identifier{x.constraint}.Sanitize(), tmp)
		case "":
			q = fmt.Sprintf("ALTER INDEX %s RENAME TO %s", tmp, pgx.Identifier{x.name}.Sanitize())
		default:
			return fmt.Errorf("index %s backs a constraint of kind %s", x.name, x.kind)
		}
		if _, err := m.exec(q); err != nil {
			return err
		}
	}
	return nil
}

// swapInSQLite is swapIn on SQLite: persons' primary key becomes a unique
// index (persons_id) on the same columns.
func swapInSQLite(m *mergeTx, stage string) error {
	cols, err := m.strings(`SELECT '"' || name || '"' FROM pragma_table_info('persons') ORDER BY cid`)
	if err != nil {
		return err
	}
	list := strings.Join(cols, ", ")
	if _, err := m.exec("INSERT INTO " + stage + " (" + list + ") SELECT " + list + " FROM persons"); err != nil {
		return err
	}
	idx, err := m.strings(`SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'persons' AND sql IS NOT NULL ORDER BY name`)
	if err != nil {
		return err
	}
	pk, err := m.strings(`SELECT '"' || name || '"' FROM pragma_table_info('persons') WHERE pk > 0 ORDER BY pk`)
	if err != nil {
		return err
	}
	if len(pk) > 0 {
		idx = append([]string{"CREATE UNIQUE INDEX persons_id ON persons (" + strings.Join(pk, ", ") + ")"}, idx...)
	}
	for _, q := range []string{"DROP TABLE persons", "ALTER TABLE " + stage + " RENAME TO persons"} {
		if _, err := m.exec(q); err != nil {
			return err
		}
	}
	for _, q := range idx {
		if _, err := m.exec(q); err != nil {
			return err
		}
	}
	return nil
}

// finishImport drops the merge's tables and records the delivery as
// applied, last in MergeImport's transaction.
func (db *DB) finishImport(m *mergeTx, st *registry.ImportState, s *registry.Summary, p registry.MergeParams, tables []string) error {
	for _, t := range tables {
		if _, err := m.exec("DROP TABLE " + t); err != nil {
			return err
		}
	}
	if _, err := m.exec(qFinishImport.sqlite, p.Records, s.Created, s.Changed, s.Unchanged, s.Deceased, s.Removed,
		s.Unknown, s.Rejected, ms(p.Now), st.ID); err != nil {
		return err
	}
	if p.Audit != nil {
		p.Audit(s)
	}
	registry.CrashPoint("merge-tx")
	return nil
}

// duplicates returns, in order, the staged lines whose reference an
// earlier staged line holds: among p.Candidates only, unless
// p.FindDuplicates asks to look at every line.
func (db *DB) duplicates(ctx context.Context, tx *sql.Tx, stage string, L layout, p registry.MergeParams) ([]int64, error) {
	var q string
	switch {
	case p.FindDuplicates:
		q = fmt.Sprintf(`SELECT %s, %s FROM %s s JOIN
			(SELECT %s AS k FROM %s GROUP BY %s HAVING COUNT(*) > 1) d ON d.k = %s`,
			L.line, L.pid, stage, L.pidCol, stage, L.pidCol, L.pid)
	case len(p.Candidates) == 0:
		return nil, nil
	default:
		q = fmt.Sprintf(`SELECT %s, %s FROM %s s WHERE %s IN (SELECT %s FROM %s WHERE %s IN (%s))`,
			L.line, L.pid, stage, L.pid, L.pidCol, stage, L.lineCol, lineList(p.Candidates))
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	first := map[string]int64{}
	var all [][2]any
	for rows.Next() {
		var line int64
		var pid string
		if err := rows.Scan(&line, &pid); err != nil {
			rows.Close()
			return nil, err
		}
		if f, seen := first[pid]; !seen || line < f {
			first[pid] = line
		}
		all = append(all, [2]any{line, pid})
	}
	if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	var dups []int64
	for _, r := range all {
		if line := r[0].(int64); line != first[r[1].(string)] {
			dups = append(dups, line)
		}
	}
	slices.Sort(dups)
	return dups, nil
}

var qDeceasedSessions = newQuery(`SELECT s.id FROM sessions s JOIN accounts a ON a.id = s.account_id
	JOIN persons p ON p.id = a.person_id WHERE p.death_date <> ''`)

// EndDeceasedSessions ends (as EndSession does, back-channel logout
// included) every session of an account linked to a person who died, and
// returns how many. MergeImport has locked those accounts already; ending
// the sessions after its commit is idempotent, so Import does it after
// every merge and on a rerun of a delivery already imported.
func (db *DB) EndDeceasedSessions(ctx context.Context, now time.Time) (int, error) {
	const op = "sqlstore.EndDeceasedSessions"
	rows, err := db.read.QueryContext(ctx, db.sql(qDeceasedSessions))
	if err != nil {
		return 0, wrap(op, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, wrap(op, err)
		}
		ids = append(ids, id)
	}
	if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
		return 0, wrap(op, err)
	}
	for _, id := range ids {
		if _, err := db.EndSession(ctx, id, now, 0); err != nil {
			return 0, wrap(op, err)
		}
	}
	return len(ids), nil
}

// RegistryDigest is a SHA-256 over the registry's content: every person's
// attributes and provenance (imports named by source and sequence, not by
// their database identifier) and every history row, in a fixed order. Two
// registries that received the same deliveries have the same digest,
// whatever the interruptions on the way.
func (db *DB) RegistryDigest(ctx context.Context) (string, error) {
	const op = "sqlstore.RegistryDigest"
	h := sha256.New()
	put := func(vals []sql.NullString) {
		var n [4]byte
		for _, v := range vals {
			binary.BigEndian.PutUint32(n[:], uint32(len(v.String)))
			h.Write(n[:])
			h.Write([]byte(v.String))
		}
	}
	for _, q := range []string{
		`SELECT p.id, p.source, p.source_ref, p.` + strings.Join(attrCols, ", p.") + `, p.province, p.country,
			p.effective_date, CAST(COALESCE(i.sequence, 0) AS TEXT), CAST(COALESCE(r.sequence, 0) AS TEXT)
			FROM persons p LEFT JOIN registry_imports i ON i.id = p.import_id
			LEFT JOIN registry_imports r ON r.id = p.removed_import ORDER BY p.id`,
		`SELECT h.person_id, h.attribute, h.value, i.source, CAST(i.sequence AS TEXT), h.replaced_on
			FROM registry_history h JOIN registry_imports i ON i.id = h.replaced_by
			ORDER BY h.person_id, h.attribute, i.sequence`,
	} {
		rows, err := db.read.QueryContext(ctx, q)
		if err != nil {
			return "", wrap(op, err)
		}
		cols, _ := rows.Columns()
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return "", wrap(op, err)
			}
			put(vals)
		}
		if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
			return "", wrap(op, err)
		}
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var qRegistryEntry = newQuery(`SELECT p.id, p.source, p.source_ref, p.` + strings.Join(attrCols, ", p.") + `,
	p.effective_date, COALESCE(i.sequence, 0), COALESCE(r.sequence, 0)
	FROM persons p LEFT JOIN registry_imports i ON i.id = p.import_id
	LEFT JOIN registry_imports r ON r.id = p.removed_import WHERE p.id = ?`)

var qRegistryHistory = newQuery(`SELECT h.attribute, h.value, i.sequence, h.replaced_on
	FROM registry_history h JOIN registry_imports i ON i.id = h.replaced_by
	WHERE h.person_id = ? ORDER BY h.attribute, i.sequence`)

// GetRegistryEntry returns a person's attributes with their provenance
// and history, or sqin.ErrNotFound.
func (db *DB) GetRegistryEntry(ctx context.Context, personID string) (*registry.Entry, error) {
	const op = "sqlstore.GetRegistryEntry"
	e := &registry.Entry{}
	vals := make([]string, len(attrCols))
	dest := []any{&e.PersonID, &e.Source, &e.SourceRef}
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	var effective string
	var seq, removed int64
	dest = append(dest, &effective, &seq, &removed)
	if err := db.read.QueryRowContext(ctx, db.sql(qRegistryEntry), personID).Scan(dest...); err != nil {
		return nil, wrap(op, err)
	}
	e.RemovedBy = removed
	past := map[string][]registry.PastValue{}
	rows, err := db.read.QueryContext(ctx, db.sql(qRegistryHistory), personID)
	if err != nil {
		return nil, wrap(op, err)
	}
	for rows.Next() {
		var name string
		var v registry.PastValue
		if err := rows.Scan(&name, &v.Value, &v.ReplacedBy, &v.Until); err != nil {
			rows.Close()
			return nil, wrap(op, err)
		}
		past[name] = append(past[name], v)
	}
	if err := cmp.Or(rows.Err(), rows.Close()); err != nil {
		return nil, wrap(op, err)
	}
	for i, a := range registry.Attributes {
		av := registry.AttributeValue{Name: a.Name, Value: vals[i], Source: e.Source, SourceRef: e.SourceRef,
			Sequence: seq, Effective: effective}
		from, fromSeq := effective, seq
		for j, pv := range past[a.Name] {
			past[a.Name][j].From, past[a.Name][j].Sequence = from, fromSeq
			from, fromSeq = pv.Until, pv.ReplacedBy
		}
		av.Sequence, av.Effective, av.History = fromSeq, from, past[a.Name]
		e.Attributes = append(e.Attributes, av)
	}
	return e, nil
}

var qRegistrySeeded = newQuery(`SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM persons LIMIT 1) t),
	(SELECT COUNT(*) FROM registry_imports WHERE source = ? AND state = 'applied')`)

// RegistrySeeded reports whether the registry holds any person, and
// whether a delivery of source has been imported.
func (db *DB) RegistrySeeded(ctx context.Context, source string) (people, imported bool, err error) {
	var p, i int64
	if err := db.read.QueryRowContext(ctx, db.sql(qRegistrySeeded), source).Scan(&p, &i); err != nil {
		return false, false, wrap("sqlstore.RegistrySeeded", err)
	}
	return p > 0, i > 0, nil
}

// qPersonByHealthNo reads only the index persons_health_no_live (migration
// 035: health_no, removed_import, id): no table row, no sort.
var qPersonByHealthNo = newQuery(`SELECT id FROM persons WHERE health_no = ? AND removed_import = 0 ORDER BY id LIMIT 1`)

// FindPersonByHealthNumber returns the ID of the person (not removed) with
// that compact health number, or sqin.ErrNotFound.
func (db *DB) FindPersonByHealthNumber(ctx context.Context, nam string) (string, error) {
	var id string
	err := db.read.QueryRowContext(ctx, db.sql(qPersonByHealthNo), nam).Scan(&id)
	if err != nil {
		return "", wrap("sqlstore.FindPersonByHealthNumber", err)
	}
	return id, nil
}
