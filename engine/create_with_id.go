package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/query"
)

// recordID is the id of the record a create writes: the caller's, or a new UUIDv7.
func (t *txn) recordID() (uuid.UUID, error) {
	if t.id != uuid.Nil {
		return t.id, nil
	}
	return uuid.NewV7()
}

// CreateWithID is Create with a caller-chosen id, for callers that retry: a workflow
// activity derives the id from its workflow, step and iteration, so a retried
// activity finds the record its first attempt wrote instead of writing a second one.
// When a record with the id already exists (live or soft-deleted) it is returned
// unchanged with created=false; the body is not compared with it.
func (e *Engine) CreateWithID(ctx context.Context, actor Actor, entity string, id uuid.UUID, body []byte) (rec json.RawMessage, created bool, err error) {
	if id == uuid.Nil {
		return nil, false, invalid("/id", "required", "a record id is required")
	}
	fields, err := decodeBody(body)
	if err != nil {
		return nil, false, err
	}
	out, err := e.write(ctx, actor, nil, func(t *txn) (json.RawMessage, error) {
		c, err := e.entity(ctx, t.tx, entity)
		if err != nil {
			return nil, err
		}
		// A retry must not reveal a record its actor may no longer create.
		if _, err := authorize(t.actor, c.entity, auth.Create); err != nil {
			return nil, err
		}
		// Two attempts racing on the same id queue here instead of one failing on
		// the primary key.
		if _, err := t.tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", id.String()); err != nil {
			return nil, fmt.Errorf("lock record id: %w", err)
		}
		existing, err := readRecord(ctx, t.tx, c.entity, id, true)
		switch {
		case err == nil:
			return existing, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, err
		}
		t.id = id
		created = true
		return e.create(ctx, t, entity, fields)
	})
	if err != nil {
		return nil, false, err
	}
	return out, created, nil
}

// Match reports whether a record of entity (as JSON, the shape Get returns) satisfies
// a parsed expression, with the entity's fields and the given $parameters — the
// in-memory twin of a list filter, for workflow triggers and waits.
func (e *Engine) Match(ctx context.Context, entity string, expr *query.Expr, record json.RawMessage, params query.Params) (bool, error) {
	c, err := e.entity(ctx, e.pool, entity)
	if err != nil {
		return false, err
	}
	var rec map[string]any
	if len(record) > 0 && string(record) != "null" {
		dec := json.NewDecoder(bytes.NewReader(record))
		dec.UseNumber()
		if err := dec.Decode(&rec); err != nil {
			return false, fmt.Errorf("decode %s record: %w", entity, err)
		}
	}
	// The condition is the definition author's, not the actor's: every field counts.
	return expr.Eval(rec, queryFields(c.entity, "t", nil), params)
}
