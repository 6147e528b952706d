package sqlstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sqin/sqin/internal/registry"
)

// The registry import (docs/formats/registry-import.md) on both dialects.
//
// A delivery gets a row in registry_imports and a staging table of its own,
// registry_stage_<id> (UNLOGGED on PostgreSQL), created in the transaction
// that records the delivery. Valid records are staged in batches, each in
// one transaction that also advances staged_line and staged_rows, so a run
// interrupted at any point resumes after the last committed batch; on
// PostgreSQL each batch is one COPY. MergeImport then applies the whole
// delivery to persons and registry_history, locks the accounts of people
// who died, records the counts and drops the staging table — all in one
// transaction: readers see the registry before the delivery or after it,
// never in between.

var (
	_ registry.Store   = (*DB)(nil)
	_ registry.Querier = (*DB)(nil)
)

// attrCols are the persons columns of the catalogue's attributes.
var attrCols = func() []string {
	cols := make([]string, len(registry.Attributes))
	for i, a := range registry.Attributes {
		cols[i] = a.Column
	}
	return cols
}()

// stageCols are the columns of a staging table, in StageRecords' order.
var stageCols = append(append([]string{"line", "op", "pid", "ref"}, attrCols...), "effective_date")

func stageTable(id int64) string { return fmt.Sprintf("registry_stage_%d", id) }

func (db *DB) createStageTable(ctx context.Context, tx *sql.Tx, id int64) error {
	var b strings.Builder
	if db.dialect == Postgres {
		// No index: COPY only appends; the merge reads it whole.
		fmt.Fprintf(&b, "CREATE UNLOGGED TABLE %s (line BIGINT NOT NULL", stageTable(id))
	} else {
		fmt.Fprintf(&b, "CREATE TABLE %s (line INTEGER NOT NULL PRIMARY KEY", stageTable(id))
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
	if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+stageTable(id)); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, b.String())
	return err
}

var (
	qRegistryLock    = newQuery(`SELECT pg_advisory_xact_lock(hashtext('sqin.registry'), hashtext(?))`)
	qImportBySeq     = newQuery(`SELECT id, sha256, state, staged_line, staged_rows FROM registry_imports WHERE source = ? AND sequence = ?`)
	qLastApplied     = newQuery(`SELECT COALESCE(MAX(sequence), 0), COUNT(CASE WHEN kind = 'snapshot' THEN 1 END) FROM registry_imports WHERE source = ? AND state = 'applied'`)
	qOtherInProgress = newQuery(`SELECT COUNT(*) FROM registry_imports WHERE source = ? AND state = 'staging' AND sequence <> ?`)
	qInsertImport    = newQuery(`INSERT INTO registry_imports (source, sequence, kind, format, sha256, record_count,
		extracted_at, state, staged_line, staged_rows, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'staging', 0, 0, ?) RETURNING id`)
	qResetImport = newQuery(`UPDATE registry_imports SET kind = ?, format = ?, sha256 = ?, record_count = ?, extracted_at = ?,
		state = 'staging', staged_line = 0, staged_rows = 0, reason = '', started_at = ?, finished_at = 0 WHERE id = ?`)
	qStaged       = newQuery(`UPDATE registry_imports SET staged_line = ?, staged_rows = staged_rows + ? WHERE id = ? AND state = 'staging'`)
	qRefuseImport = newQuery(`UPDATE registry_imports SET state = 'refused', reason = ?, staged_line = 0, staged_rows = 0,
		finished_at = ? WHERE id = ? AND state = 'staging'`)
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
//     empty staging table.
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
			sum, state        string
			stagedLine, rows  int64
			existing          = true
			lastSeq, snapshot int64
		)
		err := tx.QueryRowContext(ctx, db.sql(qImportBySeq), m.Source, m.Sequence).Scan(&st.ID, &sum, &state, &stagedLine, &rows)
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
				st.StagedLine = stagedLine
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
		if existing {
			_, err = tx.ExecContext(ctx, db.sql(qResetImport), m.Kind, m.Format, m.SHA256, m.RecordCount,
				ms(m.ExtractedAt), ms(now), st.ID)
		} else {
			err = tx.QueryRowContext(ctx, db.sql(qInsertImport), m.Source, m.Sequence, m.Kind, m.Format, m.SHA256,
				m.RecordCount, ms(m.ExtractedAt), ms(now)).Scan(&st.ID)
		}
		if err != nil {
			return err
		}
		return db.createStageTable(ctx, tx, st.ID)
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

// stageRow is the values of one staged record, in stageCols order.
func stageRow(dst []any, st *registry.ImportState, r *registry.Record) []any {
	pid := r.PID
	if pid == "" {
		pid = registry.PersonID(st.Source, r.Ref())
	}
	dst = append(dst[:0], r.Line, r.Fields[registry.FOp], pid, r.Ref())
	for _, a := range registry.Attributes {
		dst = append(dst, r.Fields[a.Field])
	}
	return append(dst, cmp.Or(r.Fields[registry.FEffectiveDate], st.AsOf))
}

// sqliteImportCache gives the SQLite write connection a page cache of
// 128 MiB for imports (the default is 2 MiB): inserting millions of rows
// in key order into persons and its indexes then touches pages in memory.
const sqliteImportCache = "PRAGMA cache_size = -131072"

// sqliteStageRows is how many records one INSERT statement stages.
const sqliteStageRows = 50

// StageRecords adds recs to the delivery's staging table and records that
// every line up to throughLine is staged, in one transaction.
func (db *DB) StageRecords(ctx context.Context, st *registry.ImportState, recs []registry.Record, throughLine int64) error {
	const op = "sqlstore.StageRecords"
	if db.dialect == Postgres {
		return wrap(op, db.copyStage(ctx, st, recs, throughLine))
	}
	insert := func(rows int) string {
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(stageCols)), ", ") + ")"
		return "INSERT INTO " + stageTable(st.ID) + " (" + strings.Join(stageCols, ", ") + ") VALUES " +
			strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
	}
	many, single := insert(sqliteStageRows), insert(1)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		args := make([]any, 0, sqliteStageRows*len(stageCols))
		var row []any
		i := 0
		for ; i+sqliteStageRows <= len(recs); i += sqliteStageRows {
			args = args[:0]
			for j := i; j < i+sqliteStageRows; j++ {
				row = stageRow(row, st, &recs[j])
				args = append(args, row...)
			}
			if _, err := tx.ExecContext(ctx, many, args...); err != nil {
				return err
			}
		}
		for ; i < len(recs); i++ {
			row = stageRow(row, st, &recs[i])
			if _, err := tx.ExecContext(ctx, single, row...); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, db.sql(qStaged), throughLine, int64(len(recs)), st.ID); err != nil {
			return err
		}
		registry.CrashPoint("stage-tx")
		return nil
	})
	if err == nil {
		registry.CrashPoint("stage")
	}
	return wrap(op, err)
}

// copyStage is StageRecords on PostgreSQL: one COPY and the progress update
// in one transaction.
func (db *DB) copyStage(ctx context.Context, st *registry.ImportState, recs []registry.Record, throughLine int64) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		row := make([]any, 0, len(stageCols))
		_, err = tx.CopyFrom(ctx, pgx.Identifier{stageTable(st.ID)}, stageCols,
			pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
				row = stageRow(row, st, &recs[i])
				return row, nil
			}))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qStaged.postgres, throughLine, int64(len(recs)), st.ID); err != nil {
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

// MergeImport applies the staged delivery in one transaction:
//
//   - lines whose source reference an earlier line holds are rejected
//     (p.Duplicate), and the delivery refused with ErrTooManyRejects when
//     the rejects then exceed p.MaxRejects;
//   - create and change records create the person, or replace every
//     attribute that differs, keeping the previous value in
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
	chg, dead := fmt.Sprintf("registry_chg_%d", st.ID), fmt.Sprintf("registry_dead_%d", st.ID)
	now := ms(p.Now)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		exec := func(q string, args ...any) (int64, error) {
			if db.dialect == Postgres {
				q = newQuery(q).postgres
			}
			t0 := time.Now()
			res, err := tx.ExecContext(ctx, q, args...)
			slog.Debug("registry merge step", "import", st.ID, "elapsed", time.Since(t0), "sql", firstWords(q, 8))
			if err != nil {
				return 0, fmt.Errorf("%s…: %w", firstWords(q, 8), err)
			}
			return res.RowsAffected()
		}
		// ints runs a query of one row of integers.
		ints := func(q string, args ...any) ([]int64, error) {
			if db.dialect == Postgres {
				q = newQuery(q).postgres
			}
			t0 := time.Now()
			rows, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return nil, fmt.Errorf("%s…: %w", firstWords(q, 8), err)
			}
			cols, err := rows.Columns()
			if err != nil {
				rows.Close()
				return nil, err
			}
			vals := make([]sql.NullInt64, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if !rows.Next() {
				rows.Close()
				return nil, cmp.Or(rows.Err(), sql.ErrNoRows)
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, err
			}
			slog.Debug("registry merge step", "import", st.ID, "elapsed", time.Since(t0), "sql", firstWords(q, 8))
			out := make([]int64, len(vals))
			for i, v := range vals {
				out[i] = v.Int64
			}
			return out, rows.Close()
		}
		if db.dialect == SQLite {
			if _, err := exec(sqliteImportCache); err != nil {
				return err
			}
		} else if _, err := exec("SET LOCAL work_mem = '256MB'"); err != nil {
			return err
		}
		// The first delivery of a source: no person of it exists yet
		// (identifiers derive from the source), so only creations apply.
		applied, err := ints("SELECT COUNT(*) FROM registry_imports WHERE source = ? AND state = 'applied'", st.Source)
		if err != nil {
			return err
		}
		first := applied[0] == 0

		dups, err := db.duplicates(ctx, tx, stage, p)
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
		for i := range dups {
			if i%1000 == 0 { // one statement (one scan on PostgreSQL) per 1,000 lines
				chunk := dups[i:min(i+1000, len(dups))]
				list := make([]string, len(chunk))
				for j, l := range chunk {
					list[j] = strconv.FormatInt(l, 10)
				}
				if _, err := exec("DELETE FROM " + stage + " WHERE line IN (" + strings.Join(list, ", ") + ")"); err != nil {
					return err
				}
			}
		}

		// One scan for the counts by operation.
		counts, err := ints(fmt.Sprintf(`SELECT SUM(CASE WHEN op IN ('create', 'change') THEN 1 ELSE 0 END),
			SUM(CASE WHEN op = 'death' THEN 1 ELSE 0 END), SUM(CASE WHEN op = 'remove' THEN 1 ELSE 0 END),
			SUM(CASE WHEN death_date <> '' THEN 1 ELSE 0 END) FROM %s`, stage))
		if err != nil {
			return err
		}
		upserts, deathOps, removeOps := counts[0], counts[1], counts[2]

		if first {
			if deathOps+removeOps > 0 {
				return fmt.Errorf("the first delivery of a source holds death or remove records")
			}
			if s.Created, err = exec(fmt.Sprintf(`INSERT INTO persons (id, %s, province, country, source, source_ref,
				import_id, effective_date, removed_import, updated_at)
				SELECT s.pid, s.%s, 'QC', 'CA', ?, s.ref, ?, s.effective_date, 0, ? FROM %s s`,
				strings.Join(attrCols, ", "), strings.Join(attrCols, ", s."), stage), st.Source, st.ID, now); err != nil {
				return err
			}
			s.Deceased = counts[3]
			return db.finishImport(ctx, tx, exec, st, s, p, []string{stage})
		}

		// Create and change.
		var differs, oldNew []string
		for _, c := range attrCols {
			differs = append(differs, fmt.Sprintf("p.%s <> s.%s", c, c))
			oldNew = append(oldNew, fmt.Sprintf("p.%s AS o_%s, s.%s AS n_%s", c, c, c, c))
		}
		if _, err := exec(fmt.Sprintf(`CREATE TEMP TABLE %s AS SELECT s.pid, s.effective_date AS eff, %s
			FROM %s s JOIN persons p ON p.id = s.pid
			WHERE s.op IN ('create', 'change') AND (p.removed_import <> 0 OR %s)`,
			chg, strings.Join(oldNew, ", "), stage, strings.Join(differs, " OR "))); err != nil {
			return err
		}
		for _, a := range registry.Attributes {
			if _, err := exec(fmt.Sprintf(`INSERT INTO registry_history (person_id, attribute, value, replaced_by, replaced_on)
				SELECT pid, ?, o_%s, ?, eff FROM %s WHERE o_%s <> n_%s`, a.Column, chg, a.Column, a.Column),
				a.Name, st.ID); err != nil {
				return err
			}
		}
		var set []string
		for _, c := range attrCols {
			set = append(set, fmt.Sprintf("%s = c.n_%s", c, c))
		}
		if s.Changed, err = exec(fmt.Sprintf(`UPDATE persons SET %s, removed_import = 0, updated_at = ?
			FROM %s c WHERE persons.id = c.pid`, strings.Join(set, ", "), chg), now); err != nil {
			return err
		}
		createdDead, err := ints(fmt.Sprintf(`SELECT COUNT(*) FROM %s s WHERE s.op IN ('create', 'change')
			AND s.death_date <> '' AND NOT EXISTS (SELECT 1 FROM persons p WHERE p.id = s.pid)`, stage))
		if err != nil {
			return err
		}
		if s.Created, err = exec(fmt.Sprintf(`INSERT INTO persons (id, %s, province, country, source, source_ref,
			import_id, effective_date, removed_import, updated_at)
			SELECT s.pid, s.%s, 'QC', 'CA', ?, s.ref, ?, s.effective_date, 0, ?
			FROM %s s WHERE s.op IN ('create', 'change') AND NOT EXISTS (SELECT 1 FROM persons p WHERE p.id = s.pid)`,
			strings.Join(attrCols, ", "), strings.Join(attrCols, ", s."), stage), st.Source, st.ID, now); err != nil {
			return err
		}
		s.Unchanged = upserts - s.Created - s.Changed
		newlyDead, err := ints(fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE o_death_date = '' AND n_death_date <> ''", chg))
		if err != nil {
			return err
		}
		s.Deceased = newlyDead[0] + createdDead[0]

		// Deaths.
		if _, err := exec(fmt.Sprintf(`CREATE TEMP TABLE %s AS SELECT s.pid, s.death_date AS n, p.death_date AS o,
			s.effective_date AS eff FROM %s s JOIN persons p ON p.id = s.pid WHERE s.op = 'death'`, dead, stage)); err != nil {
			return err
		}
		if _, err := exec(fmt.Sprintf(`INSERT INTO registry_history (person_id, attribute, value, replaced_by, replaced_on)
			SELECT pid, 'death_date', o, ?, eff FROM %s WHERE o <> n`, dead), st.ID); err != nil {
			return err
		}
		deathChanges, err := exec(fmt.Sprintf(`UPDATE persons SET death_date = d.n, updated_at = ?
			FROM %s d WHERE persons.id = d.pid AND d.o <> d.n`, dead), now)
		if err != nil {
			return err
		}
		deaths, err := ints(fmt.Sprintf("SELECT COUNT(*), SUM(CASE WHEN o = '' THEN 1 ELSE 0 END) FROM %s", dead))
		if err != nil {
			return err
		}
		knownDeaths, firstDeaths := deaths[0], deaths[1]
		s.Deceased += firstDeaths
		s.Changed += deathChanges - firstDeaths // a death date corrected
		s.Unchanged += knownDeaths - deathChanges
		s.Unknown += deathOps - knownDeaths

		// Accounts of the people who died are locked.
		if _, err := exec(fmt.Sprintf(`UPDATE accounts SET locked = ?, updated_at = ? WHERE NOT locked AND person_id IN
			(SELECT pid FROM %s WHERE o = '' UNION SELECT pid FROM %s WHERE o_death_date = '' AND n_death_date <> '')`,
			dead, chg), true, now); err != nil {
			return err
		}

		// Removals.
		known, err := ints(fmt.Sprintf("SELECT COUNT(*) FROM %s s JOIN persons p ON p.id = s.pid WHERE s.op = 'remove'", stage))
		if err != nil {
			return err
		}
		if s.Removed, err = exec(fmt.Sprintf(`UPDATE persons SET removed_import = ?, updated_at = ?
			WHERE removed_import = 0 AND id IN (SELECT pid FROM %s WHERE op = 'remove')`, stage), st.ID, now); err != nil {
			return err
		}
		s.Unchanged += known[0] - s.Removed
		s.Unknown += removeOps - known[0]
		if st.Kind == registry.KindSnapshot {
			if db.dialect == SQLite {
				if _, err := exec(fmt.Sprintf("CREATE INDEX %s_pid ON %s (pid)", stage, stage)); err != nil {
					return err
				}
			}
			n, err := exec(fmt.Sprintf(`UPDATE persons SET removed_import = ?, updated_at = ?
				WHERE source = ? AND removed_import = 0 AND import_id <> ?
				AND NOT EXISTS (SELECT 1 FROM %s s WHERE s.pid = persons.id)`, stage), st.ID, now, st.Source, st.ID)
			if err != nil {
				return err
			}
			s.Removed += n
		}
		return db.finishImport(ctx, tx, exec, st, s, p, []string{chg, dead, stage})
	})
	if err != nil {
		return nil, importErr(op, err)
	}
	return s, nil
}

// finishImport drops the merge's tables and records the delivery as
// applied, last in MergeImport's transaction.
func (db *DB) finishImport(_ context.Context, _ *sql.Tx, exec func(string, ...any) (int64, error),
	st *registry.ImportState, s *registry.Summary, p registry.MergeParams, tables []string) error {
	for _, t := range tables {
		if _, err := exec("DROP TABLE " + t); err != nil {
			return err
		}
	}
	if _, err := exec(qFinishImport.sqlite, p.Records, s.Created, s.Changed, s.Unchanged, s.Deceased, s.Removed,
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
func (db *DB) duplicates(ctx context.Context, tx *sql.Tx, stage string, p registry.MergeParams) ([]int64, error) {
	var q string
	switch {
	case p.FindDuplicates:
		q = fmt.Sprintf(`SELECT s.line, s.pid FROM %s s JOIN
			(SELECT pid FROM %s GROUP BY pid HAVING COUNT(*) > 1) d ON d.pid = s.pid`, stage, stage)
	case len(p.Candidates) == 0:
		return nil, nil
	default:
		lines := make([]string, len(p.Candidates))
		for i, l := range p.Candidates {
			lines[i] = strconv.FormatInt(l, 10)
		}
		q = fmt.Sprintf(`SELECT line, pid FROM %s WHERE pid IN (SELECT pid FROM %s WHERE line IN (%s))`,
			stage, stage, strings.Join(lines, ", "))
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
