package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/script"
)

// Hook points of an entity, named in x-entity.hooks.
const (
	HookBeforeValidate = "beforeValidate"
	HookBeforeSave     = "beforeSave"
	HookAfterSave      = "afterSave"
	HookBeforeDelete   = "beforeDelete"
)

// HookEvent is what a Go hook receives.
type HookEvent struct {
	Entity string
	Hook   string
	Actor  Actor
	// Record may be changed by before-hooks; Old is the stored version on updates.
	Record map[string]any
	Old    map[string]any
}

// GoHook is a hook written in Go by a program embedding the engine. It runs before
// the entity's script hook at the same point; an error rejects the write.
type GoHook func(ctx context.Context, ev *HookEvent) error

// OnHook registers a Go hook for an entity's hook point.
func (e *Engine) OnHook(entity, hook string, fn GoHook) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.goHooks[entity+"."+hook] = append(e.goHooks[entity+"."+hook], fn)
}

// prepare runs the before-hooks, validation and computed fields of a write:
// beforeValidate → validate → beforeSave → computed fields → validate again when
// anything ran, so no hook can store what the schema forbids.
func (e *Engine) prepare(ctx context.Context, t *txn, c *compiled, rec, old map[string]any) (map[string]any, error) {
	rec, err := e.hook(ctx, t, c, HookBeforeValidate, rec, old)
	if err != nil {
		return nil, err
	}
	if problems := c.validator.Validate(rec); len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	ran := e.hasHook(c, HookBeforeSave)
	if rec, err = e.hook(ctx, t, c, HookBeforeSave, rec, old); err != nil {
		return nil, err
	}
	computed, err := e.compute(ctx, c, rec)
	if err != nil {
		return nil, err
	}
	if ran || computed {
		if problems := c.validator.Validate(rec); len(problems) > 0 {
			return nil, &ValidationError{Problems: problems}
		}
	}
	return rec, nil
}

func (e *Engine) hasHook(c *compiled, hook string) bool {
	e.mu.RLock()
	n := len(e.goHooks[c.entity.Name+"."+hook])
	e.mu.RUnlock()
	return n > 0 || c.entity.Hooks[hook] != ""
}

// ScriptFailure is a hook or computed-field script that failed (threw, timed out…).
type ScriptFailure struct{ Err *script.Error }

func (f *ScriptFailure) Error() string { return f.Err.Error() }

// Unwrap exposes what the script's db call failed with, so a write its hook made and
// the rules refused answers as that refusal (problems, conflict, forbidden).
func (f *ScriptFailure) Unwrap() error { return f.Err }

// hook runs the Go hooks and the script of one hook point and returns the record as
// they left it. error(path, message) calls in the script become a ValidationError.
func (e *Engine) hook(ctx context.Context, t *txn, c *compiled, hook string, rec, old map[string]any) (map[string]any, error) {
	e.mu.RLock()
	goHooks := e.goHooks[c.entity.Name+"."+hook]
	e.mu.RUnlock()
	for _, h := range goHooks {
		ev := &HookEvent{Entity: c.entity.Name, Hook: hook, Actor: t.actor, Record: rec, Old: old}
		if err := h(ctx, ev); err != nil {
			return nil, err
		}
		rec = ev.Record
	}
	name := c.entity.Hooks[hook]
	if name == "" {
		return rec, nil
	}
	var db querier = e.pool
	if t.tx != nil {
		db = t.tx
	}
	s, err := e.script(ctx, db, name)
	if err != nil {
		return nil, fmt.Errorf("%s hook of %s: %w", hook, c.entity.Name, err)
	}
	res, err := e.scripts.Run(ctx, script.Call{
		Name: s.Name, Source: s.Source, Budget: time.Duration(s.BudgetMS) * time.Millisecond,
		Record: rec, Old: old, DB: &scriptDB{e: e, ctx: ctx, t: t},
		Context: map[string]any{"user": userJSON(t.actor), "entity": c.entity.Name, "hook": hook},
	})
	recordID := old["id"]
	if res != nil {
		e.logScriptCall(s, hook, c.entity.Name, recordID, res.Console, nil, res.Duration)
	}
	if err != nil {
		var se *script.Error
		if errors.As(err, &se) {
			e.logScriptCall(s, hook, c.entity.Name, recordID, se.Console, se, 0)
			return nil, &ScriptFailure{Err: se}
		}
		return nil, err
	}
	if len(res.Errors) > 0 {
		return nil, &ValidationError{Problems: fieldProblems(res.Errors)}
	}
	if res.Record == nil {
		return rec, nil
	}
	return res.Record, nil
}

// compute evaluates the x-computed expressions (JavaScript, with `record` in scope).
func (e *Engine) compute(ctx context.Context, c *compiled, rec map[string]any) (bool, error) {
	ran := false
	for _, f := range c.entity.LiveFields() {
		if f.Computed == "" {
			continue
		}
		ran = true
		res, err := e.scripts.Run(ctx, script.Call{Name: c.entity.Name + "." + f.Name, Source: f.Computed, Mode: script.ModeExpression, Record: rec})
		if err != nil {
			var se *script.Error
			if errors.As(err, &se) {
				return false, &ScriptFailure{Err: se}
			}
			return false, err
		}
		if res.Value == nil {
			delete(rec, f.Name)
		} else {
			rec[f.Name] = res.Value
		}
	}
	return ran, nil
}

// queueAfterSave schedules the afterSave hook to run once the transaction commits, in
// a transaction of its own; a failure is logged (the save it follows stands).
func (e *Engine) queueAfterSave(t *txn, c *compiled, after, before []byte) {
	if !e.hasHook(c, HookAfterSave) {
		return
	}
	chain := t.chain
	actor := t.actor
	*t.after = append(*t.after, func(ctx context.Context) {
		rec, err := schema.DecodeRecord(after)
		if err != nil {
			return
		}
		var old map[string]any
		if before != nil {
			old, _ = schema.DecodeRecord(before)
		}
		_, err = e.write(ctx, actor, chain, func(t *txn) (json.RawMessage, error) {
			_, err := e.hook(ctx, t, c, HookAfterSave, rec, old)
			return nil, err
		})
		if err != nil {
			e.log.Error("afterSave hook failed", "entity", c.entity.Name, "id", rec["id"], "err", err)
		}
	})
}

func userJSON(a Actor) map[string]any {
	roles := make([]any, len(a.Roles))
	for i, r := range a.Roles {
		roles[i] = r
	}
	return map[string]any{"id": a.UserID.String(), "is_admin": a.IsAdmin, "roles": roles}
}

// scriptDB is what db.* in a script reaches: the engine, inside the transaction of the
// write that ran the hook, as the same actor.
type scriptDB struct {
	e   *Engine
	ctx context.Context
	t   *txn
}

var _ script.DB = (*scriptDB)(nil)

func asMap(raw json.RawMessage, err error) (map[string]any, error) {
	if err != nil {
		return nil, err
	}
	return schema.DecodeRecord(raw)
}

func (d *scriptDB) Get(entity, id string) (map[string]any, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return nil, nil
	}
	tx, err := d.tx()
	if err != nil {
		return nil, err
	}
	rec, err := asMap(d.e.get(d.ctx, tx, d.t.actor, entity, uid, GetOptions{}))
	if errors.Is(err, ErrRecordNotFound) {
		return nil, nil
	}
	return rec, err
}

func (d *scriptDB) Find(entity, filter string) (map[string]any, error) {
	recs, err := d.List(entity, filter, "", 1)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[0], nil
}

func (d *scriptDB) List(entity, filter, sort string, limit int) ([]map[string]any, error) {
	tx, err := d.tx()
	if err != nil {
		return nil, err
	}
	res, err := d.e.list(d.ctx, tx, d.t.actor, entity, ListOptions{Filter: filter, Sort: sort, Limit: limit}, false)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(res.Items))
	for i, raw := range res.Items {
		if out[i], err = schema.DecodeRecord(raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tx is the transaction of the write that runs the hook. A create that needed none
// (see singleStatementCreate) gets one here, the first time its script touches db;
// Create commits it with the record.
func (d *scriptDB) tx() (pgx.Tx, error) {
	if d.t.tx == nil {
		tx, err := d.e.pool.Begin(d.ctx)
		if err != nil {
			return nil, err
		}
		d.t.tx = tx
	}
	return d.t.tx, nil
}

func (d *scriptDB) Create(entity string, rec map[string]any) (map[string]any, error) {
	if _, err := d.tx(); err != nil {
		return nil, err
	}
	nested, err := d.t.nested(entity)
	if err != nil {
		return nil, err
	}
	return asMap(d.e.create(d.ctx, nested, entity, rec))
}

func (d *scriptDB) Update(entity, id string, patch map[string]any) (map[string]any, error) {
	return d.update(entity, id, patch, nil)
}

// Adjust adds amounts to number fields of a record under its row lock (addAmounts).
func (d *scriptDB) Adjust(entity, id string, amounts map[string]any) (map[string]any, error) {
	return d.update(entity, id, nil, amounts)
}

func (d *scriptDB) update(entity, id string, patch, amounts map[string]any) (map[string]any, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", entity, id, ErrNotFound)
	}
	if _, err := d.tx(); err != nil {
		return nil, err
	}
	nested, err := d.t.nested(entity)
	if err != nil {
		return nil, err
	}
	return asMap(d.e.update(d.ctx, nested, entity, uid, patch, amounts, nil))
}

// fieldProblems turns error(path, message) calls into validation details.
func fieldProblems(errs []script.FieldError) []schema.Problem {
	problems := make([]schema.Problem, len(errs))
	for i, fe := range errs {
		problems[i] = schema.Problem{Path: fe.Path, Code: "rule", Message: fe.Message}
	}
	return problems
}
