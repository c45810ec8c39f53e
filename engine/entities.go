package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/dbtx"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/store"
)

// EntityInfo is what the entities API lists.
type EntityInfo struct {
	Name       string            `json:"name"`
	Module     string            `json:"module,omitempty"`
	Label      map[string]string `json:"label,omitempty"`
	Version    int               `json:"version"`
	Definition json.RawMessage   `json:"definition"`
	Fields     []*schema.Field   `json:"fields"`
}

// PutOptions control how a definition change is applied.
type PutOptions struct {
	// DryRun computes the plan (with its row checks) and changes nothing.
	DryRun bool
	// Confirm allows destructive steps.
	Confirm bool
}

// PlanError refuses a migration: destructive steps without confirmation, or steps that
// would fail on existing rows. The plan says which and how many rows.
type PlanError struct {
	Plan   *store.Plan
	Reason string
}

func (e *PlanError) Error() string { return e.Reason }

// PutEntity creates or migrates an entity. The new definition is validated, diffed
// against the stored version into a plan, checked against existing rows and, unless
// DryRun, applied in one transaction together with the new version row: a failure
// leaves tables and definition exactly as they were. Inside a transaction ctx carries
// (dbtx.Run), that is a savepoint of it, and the change is seen once it commits.
func (e *Engine) PutEntity(ctx context.Context, actor Actor, name string, definition []byte, opts PutOptions) (*store.Plan, error) {
	tx, err := dbtx.Of(ctx, e.pool).Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	// Serialize changes to one entity across nodes.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('tessera.entity'), hashtext($1))", name); err != nil {
		return nil, err
	}
	old, err := loadEntity(ctx, tx, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if old != nil {
		if definition, err = store.MergeRemoved(old.entity, definition); err != nil {
			return nil, &schema.DefinitionError{Problems: []schema.Problem{{Message: err.Error()}}}
		}
	}
	next, err := schema.Parse(definition)
	if err != nil {
		return nil, err
	}
	if next.Name != name {
		return nil, &schema.DefinitionError{Problems: []schema.Problem{{Path: "/x-entity/name",
			Message: fmt.Sprintf("is %q but the URL names %q", next.Name, name)}}}
	}
	if err := e.checkReferences(ctx, tx, next); err != nil {
		return nil, err
	}
	next.Version = 1
	var oldEntity *schema.Entity
	if old != nil {
		oldEntity = old.entity
		next.Version = old.entity.Version + 1
	}
	plan, err := store.PlanMigration(ctx, tx, oldEntity, next)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		return plan, nil
	}
	if plan.Blocked {
		return plan, &PlanError{Plan: plan, Reason: "the migration would fail on existing rows; see failing_rows in the plan"}
	}
	if plan.Destructive && !opts.Confirm {
		return plan, &PlanError{Plan: plan, Reason: "the migration can lose data; review the plan and repeat with ?confirm=1"}
	}
	if old != nil && len(plan.Steps) == 0 && jsonEqual(old.entity.Definition, next.Definition) {
		return plan, nil // nothing changed: no new version
	}
	if err := plan.Apply(ctx, tx); err != nil {
		return plan, err
	}
	planJSON, _ := json.Marshal(plan.Steps)
	if old == nil {
		_, err = tx.Exec(ctx, `INSERT INTO tessera.entities (name, module, current_version) VALUES ($1, $2, $3)`, name, next.Module, next.Version)
	} else {
		_, err = tx.Exec(ctx, `UPDATE tessera.entities SET module = $2, current_version = $3, updated_at = now() WHERE name = $1`, name, next.Module, next.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("store entity: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO tessera.entity_versions (entity, version, definition, plan, created_by) VALUES ($1, $2, $3, $4, $5)`,
		name, next.Version, []byte(next.Definition), planJSON, nullUUID(actor.UserID)); err != nil {
		return nil, fmt.Errorf("store entity version: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", entityChannel, name); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	// This node forgets its copy once the change is committed, as NOTIFY tells the
	// other nodes then: forgotten earlier, a request could cache the old version again.
	_ = dbtx.AfterCommit(ctx, func(context.Context) error { e.forget(name); return nil })
	return plan, nil
}

// checkReferences makes sure related entities exist (or are this entity itself).
func (e *Engine) checkReferences(ctx context.Context, tx pgx.Tx, ent *schema.Entity) error {
	var problems []schema.Problem
	check := func(f *schema.Field, path string) error {
		if f.Relation == nil || f.Relation.Entity == ent.Name || f.Removed {
			return nil
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tessera.entities WHERE name = $1)", f.Relation.Entity).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			problems = append(problems, schema.Problem{Path: path + "/x-relation/entity", Code: "relation",
				Message: fmt.Sprintf("entity %q does not exist; create it first", f.Relation.Entity)})
		}
		return nil
	}
	for _, f := range ent.Fields {
		if err := check(f, "/properties/"+f.Name); err != nil {
			return err
		}
		if f.Child != nil {
			for _, cf := range f.Child.Fields {
				if err := check(cf, "/properties/"+f.Name+"/items/properties/"+cf.Name); err != nil {
					return err
				}
			}
		}
	}
	if len(problems) > 0 {
		return &schema.DefinitionError{Problems: problems}
	}
	return nil
}

// entity returns the current version of an entity, compiled; cached until any node
// changes the definition.
//
// db is the pool, or the transaction of the caller: a write that holds a connection
// must not wait for a second one, or concurrent writes deadlock on the pool.
func (e *Engine) entity(ctx context.Context, db querier, name string) (*compiled, error) {
	if tx := dbtx.From(ctx); tx != nil {
		// A caller's transaction (a module install) may hold definitions that no
		// other request may see yet, or ever if it rolls back: read them there, and
		// neither from nor into the shared cache.
		return loadEntity(ctx, tx, name)
	}
	e.mu.RLock()
	c := e.entities[name]
	e.mu.RUnlock()
	if c != nil {
		return c, nil
	}
	c, err := loadEntity(ctx, db, name)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.entities[name] = c
	e.mu.Unlock()
	return c, nil
}

func loadEntity(ctx context.Context, db querier, name string) (*compiled, error) {
	var (
		version int
		def     []byte
	)
	err := db.QueryRow(ctx, `SELECT v.version, v.definition FROM tessera.entities e
		JOIN tessera.entity_versions v ON v.entity = e.name AND v.version = e.current_version
		WHERE e.name = $1`, name).Scan(&version, &def)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("entity %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load entity %q: %w", name, err)
	}
	ent, err := schema.Parse(def)
	if err != nil {
		return nil, fmt.Errorf("stored entity %q v%d no longer parses: %w", name, version, err)
	}
	ent.Version = version
	v, err := ent.Compile()
	if err != nil {
		return nil, err
	}
	return &compiled{entity: ent, validator: v}, nil
}

// GetEntity returns an entity's current definition.
func (e *Engine) GetEntity(ctx context.Context, name string) (*EntityInfo, error) {
	c, err := e.entity(ctx, e.pool, name)
	if err != nil {
		return nil, err
	}
	return info(c.entity), nil
}

func info(ent *schema.Entity) *EntityInfo {
	return &EntityInfo{Name: ent.Name, Module: ent.Module, Label: ent.Label, Version: ent.Version,
		Definition: ent.Definition, Fields: ent.LiveFields()}
}

// ListEntities returns every entity's current definition, by name.
func (e *Engine) ListEntities(ctx context.Context) ([]*EntityInfo, error) {
	rows, err := e.pool.Query(ctx, "SELECT name FROM tessera.entities ORDER BY name")
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make([]*EntityInfo, 0, len(names))
	for _, n := range names {
		c, err := e.entity(ctx, e.pool, n)
		if err != nil {
			return nil, err
		}
		out = append(out, info(c.entity))
	}
	return out, nil
}

// jsonEqual compares two JSON documents by value, ignoring formatting and key order.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
