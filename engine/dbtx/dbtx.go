// Package dbtx lets one database transaction span operations of several services
// (engine, auth, workflows), so that a module install commits or rolls back as one.
//
// The caller begins the transaction with Run, which hands it down in the context.
// An operation that writes begins its own transaction on Of(ctx, pool): on its own
// that is a transaction of the pool, inside Run a savepoint of the caller's, so the
// same "begin, work, commit" code commits alone or joins. A context rather than a
// parameter: the operations keep their signatures, and what they call (hooks,
// definition lookups) sees the transaction without every layer passing it along.
// The package is a leaf so that engine/auth, which the engine imports, can use it.
package dbtx

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is a pool or a transaction.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ DB = (*pgxpool.Pool)(nil)
	_ DB = pgx.Tx(nil)
)

type key struct{}

// state is the transaction a context carries and the work waiting for its commit.
type state struct {
	tx    pgx.Tx
	after []func(context.Context) error
}

// Run runs fn in one transaction of pool, carried by the context fn receives, and
// commits it when fn returns nil; an error rolls all of it back. Then the work queued
// with AfterCommit runs, with ctx; its errors are returned, but the commit stands.
// ctx must not carry a transaction already.
func Run(ctx context.Context, pool *pgxpool.Pool, fn func(ctx context.Context) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	st := &state{tx: tx}
	if err := fn(context.WithValue(ctx, key{}, st)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	var errs []error
	for _, f := range st.after {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// From is the transaction ctx carries, or nil.
func From(ctx context.Context) pgx.Tx {
	if st, ok := ctx.Value(key{}).(*state); ok {
		return st.tx
	}
	return nil
}

// Of is the transaction ctx carries, else pool. Begin on the transaction starts a
// savepoint: a failed operation rolls back to it, and its Commit only releases it.
func Of(ctx context.Context, pool DB) DB {
	if tx := From(ctx); tx != nil {
		return tx
	}
	return pool
}

// AfterCommit runs f once the transaction ctx carries has committed, or at once (and
// returns its error) when ctx carries none. It is for what lives outside the
// database, such as caches and Temporal schedules, which must not see what a
// rollback undoes: on rollback, queued work is dropped.
func AfterCommit(ctx context.Context, f func(context.Context) error) error {
	if st, ok := ctx.Value(key{}).(*state); ok {
		st.after = append(st.after, f)
		return nil
	}
	return f(ctx)
}
