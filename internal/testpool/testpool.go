// Package testpool gives a test a pool on its own fresh database with the system
// migrations applied. It is apart from testdb because engine/store's own tests use
// testdb, and the migrations live in engine/store.
package testpool

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/engine/store"
	"github.com/tessera/tessera/internal/testdb"
)

// New migrates a new test database and returns a pool on it, closed when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	url := testdb.New(t)
	if _, err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
