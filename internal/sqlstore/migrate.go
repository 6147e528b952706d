package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// migrations holds migrations/<dialect>/NNN_name.sql, applied in order of NNN.
//
//go:embed migrations
var migrations embed.FS

var (
	// qMigrateLock serialises migrations of one schema across processes on
	// PostgreSQL; SQLite's BEGIN IMMEDIATE does the same there.
	qMigrateLock       = newQuery(`SELECT pg_advisory_xact_lock(hashtext('sqin.migrate'), hashtext(COALESCE(current_schema(), '')))`)
	qMigrationsTable   = newQuery(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
	qMigrationApplied  = newQuery(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`)
	qMigrationRecorded = newQuery(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`)
)

// Migrate brings the schema up to date, each migration in a transaction of
// its own. Several processes may migrate one database at once.
func (db *DB) Migrate(ctx context.Context) error {
	const op = "sqlstore.Migrate"
	dir := "migrations/" + db.dialect
	files, err := fs.Glob(migrations, dir+"/*.sql") // sorted, and NNN is zero-padded
	if err != nil {
		return wrap(op, err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(path.Base(file), ".sql")
		n, _, _ := strings.Cut(name, "_")
		version, err := strconv.Atoi(n)
		if err != nil {
			return wrap(op, fmt.Errorf("migration %s: name does not start with a number", file))
		}
		body, err := migrations.ReadFile(file)
		if err != nil {
			return wrap(op, err)
		}
		err = db.inTx(ctx, func(tx *sql.Tx) error {
			if db.dialect == Postgres {
				if _, err := tx.ExecContext(ctx, db.sql(qMigrateLock)); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, db.sql(qMigrationsTable)); err != nil {
				return err
			}
			var applied int
			if err := tx.QueryRowContext(ctx, db.sql(qMigrationApplied), version).Scan(&applied); err != nil || applied > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", file, err)
			}
			_, err := tx.ExecContext(ctx, db.sql(qMigrationRecorded), version, name, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return wrap(op, err)
		}
	}
	return nil
}
