// Package store holds Tessera's PostgreSQL layer: the system schema migrations, the DDL
// generated from entity definitions and the record SQL.
package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable records which system migrations have run.
const versionTable = "public.tessera_schema_version"

// Migrate applies the embedded system migrations. tern holds a PostgreSQL advisory lock
// for the whole run, so several nodes starting at once apply each migration exactly once.
func Migrate(ctx context.Context, databaseURL string) (version int32, err error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return 0, fmt.Errorf("connect for migrations: %w", err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return 0, fmt.Errorf("migrator: %w", err)
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return 0, err
	}
	if err := m.LoadMigrations(sub); err != nil {
		return 0, fmt.Errorf("load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return 0, fmt.Errorf("apply migrations: %w", err)
	}
	return m.GetCurrentVersion(ctx)
}
