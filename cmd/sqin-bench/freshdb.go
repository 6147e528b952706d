package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// freshDB makes an empty database of kind db for one run of a scenario
// family: a SQLite file named after name in dir, or a new PostgreSQL
// schema. done removes it (the file and its WAL, or the schema).
func freshDB(ctx context.Context, o *options, db, dir, name string) (url string, done func() error, err error) {
	switch db {
	case "sqlite":
		path := filepath.Join(dir, name+"-"+randString(6)+".db")
		return "sqlite://" + path, func() error {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(path + suffix)
			}
			return nil
		}, nil
	case "postgres":
		u, drop, err := pgSchema(ctx, o.postgres)
		if err != nil {
			return "", nil, err
		}
		return u, func() error {
			if err := drop(); err != nil {
				return fmt.Errorf("drop schema: %w", err)
			}
			return nil
		}, nil
	}
	return "", nil, fmt.Errorf("unknown database %q", db)
}
