package workflows

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/dbtx"
	"github.com/tessera/tessera/workflows/dsl"
)

// ErrNotFound is engine.ErrNotFound, so the API answers 404 for unknown workflows,
// runs and tasks as it does for records.
var ErrNotFound = engine.ErrNotFound

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Version is one stored version of a definition.
type Version struct {
	Name       string          `json:"name"`
	Version    int             `json:"version"`
	Definition json.RawMessage `json:"definition"`
	CreatedAt  time.Time       `json:"created_at"`
	CreatedBy  *uuid.UUID      `json:"created_by"`
}

// Summary is a workflow in the list.
type Summary struct {
	Name      string          `json:"name"`
	Title     string          `json:"title"`
	Version   int             `json:"version"`
	Trigger   json.RawMessage `json:"trigger"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// loadVersion reads a version of a definition; version 0 is the current one.
func loadVersion(ctx context.Context, db querier, name string, version int) (*Version, error) {
	v := &Version{Name: name}
	var def []byte
	err := db.QueryRow(ctx, `SELECT v.version, v.definition, v.created_at, v.created_by
		FROM tessera.workflow_versions v JOIN tessera.workflows w ON w.name = v.name
		WHERE v.name = $1 AND v.version = CASE WHEN $2 = 0 THEN w.current_version ELSE $2 END`, name, version).
		Scan(&v.Version, &def, &v.CreatedAt, &v.CreatedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		if version > 0 {
			return nil, fmt.Errorf("workflow %s version %d: %w", name, version, ErrNotFound)
		}
		return nil, fmt.Errorf("workflow %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load workflow %s: %w", name, err)
	}
	v.Definition = def
	return v, nil
}

// putVersion stores a definition as the next version unless it equals the current
// one. Versions are never changed afterwards: running instances keep theirs. It joins
// the transaction ctx carries, if any (a module install, see dbtx).
func putVersion(ctx context.Context, pool *pgxpool.Pool, def *dsl.Definition, raw []byte, by uuid.UUID) (*Version, bool, error) {
	var out *Version
	created := false
	err := pgx.BeginFunc(ctx, dbtx.Of(ctx, pool), func(tx pgx.Tx) error {
		// Serializes two saves of the same workflow so versions stay dense.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('workflow:' || $1, 0))`, def.Name); err != nil {
			return err
		}
		// Also when the definition is unchanged: a save repairs the identity's roles.
		if err := putServiceUser(ctx, tx, def); err != nil {
			return err
		}
		cur, err := loadVersion(ctx, tx, def.Name, 0)
		switch {
		case err == nil && jsonEqual(cur.Definition, raw):
			out = cur
			return nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return err
		}
		next := 1
		if cur != nil {
			next = cur.Version + 1
		}
		trigger, err := json.Marshal(def.Trigger)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tessera.workflows (name, title, current_version, trigger) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET title = EXCLUDED.title, current_version = EXCLUDED.current_version,
			trigger = EXCLUDED.trigger, updated_at = now()`, def.Name, def.Title, next, trigger); err != nil {
			return fmt.Errorf("save workflow: %w", err)
		}
		out = &Version{Name: def.Name, Version: next, Definition: raw}
		if by != uuid.Nil {
			out.CreatedBy = &by
		}
		if err := tx.QueryRow(ctx, `INSERT INTO tessera.workflow_versions (name, version, definition, created_by) VALUES ($1, $2, $3, $4)
			RETURNING created_at`, def.Name, next, raw, out.CreatedBy).Scan(&out.CreatedAt); err != nil {
			return fmt.Errorf("save workflow version: %w", err)
		}
		created = true
		return nil
	})
	return out, created, err
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

func listDefinitions(ctx context.Context, db querier) ([]Summary, error) {
	rows, err := db.Query(ctx, `SELECT name, title, current_version, trigger, updated_at FROM tessera.workflows ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Summary, error) {
		var s Summary
		err := row.Scan(&s.Name, &s.Title, &s.Version, &s.Trigger, &s.UpdatedAt)
		return s, err
	})
}

// recordTriggers are the current definitions listening to an entity's changes.
func recordTriggers(ctx context.Context, db querier, entity string) ([]*Version, error) {
	rows, err := db.Query(ctx, `SELECT w.name, v.version, v.definition FROM tessera.workflows w
		JOIN tessera.workflow_versions v ON v.name = w.name AND v.version = w.current_version
		WHERE w.trigger ->> 'type' = 'record' AND w.trigger ->> 'entity' = $1 ORDER BY w.name`, entity)
	if err != nil {
		return nil, fmt.Errorf("load record triggers: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Version, error) {
		v := &Version{}
		var def []byte
		err := row.Scan(&v.Name, &v.Version, &def)
		v.Definition = def
		return v, err
	})
}

// insertRun creates the run row when a run is started, so it is visible before its
// first journal arrives. A duplicate start leaves the existing row alone.
func insertRun(ctx context.Context, db execer, id string, run RunInput) error {
	in, err := nullJSON(run.Input)
	if err != nil {
		return err
	}
	tr, err := nullJSON(run.Trigger)
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, `INSERT INTO tessera.workflow_runs (id, workflow, version, actor, started_by, input, trigger)
		VALUES ($1, $2, $3, NULLIF($4, '')::uuid, NULLIF($5, '')::uuid, $6, $7) ON CONFLICT (id) DO NOTHING`,
		id, run.Workflow, run.Version, run.Actor, run.startedBy(), in, tr)
	if err != nil {
		return fmt.Errorf("record run %s: %w", id, err)
	}
	return nil
}
