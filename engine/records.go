package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/dbtx"
	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/store"
)

// txn is one write transaction of the engine: who writes, how deeply hooks have
// nested writes inside it, and the afterSave work to run once it has committed.
type txn struct {
	tx    pgx.Tx
	actor Actor
	// chain lists the entities whose hooks led to this write, outermost first.
	chain []string
	after *[]func(context.Context)
	// id is the caller-chosen id of the record this write creates (CreateWithID);
	// uuid.Nil means a new UUIDv7. Nested writes never inherit it.
	id uuid.UUID
}

// MaxHookDepth bounds how many writes hooks may nest (a hook creating a record whose
// hook creates a record …), so hooks cannot loop through each other forever.
const MaxHookDepth = 4

// byScript tells whether a script makes this write through db (a hook, or a module's
// endpoint script): such writes are nested under the write or call that ran it.
func (t *txn) byScript() bool { return len(t.chain) > 0 }

// nested returns the transaction view for a write a hook makes on entity.
func (t *txn) nested(entity string) (*txn, error) {
	if len(t.chain) >= MaxHookDepth {
		return nil, invalid("", "hook_depth", fmt.Sprintf("hooks nested writes deeper than %d: %s → %s",
			MaxHookDepth, strings.Join(t.chain, " → "), entity))
	}
	return &txn{tx: t.tx, actor: t.actor, chain: append(slices.Clone(t.chain), entity), after: t.after}, nil
}

// write runs fn in a new transaction (a savepoint of the one ctx carries, see dbtx),
// commits, and runs the queued afterSave hooks once the data is committed: at once, or
// when the transaction ctx carries commits.
func (e *Engine) write(ctx context.Context, actor Actor, chain []string, fn func(t *txn) (json.RawMessage, error)) (json.RawMessage, error) {
	tx, err := dbtx.Of(ctx, e.pool).Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	t := &txn{tx: tx, actor: actor, chain: chain, after: &[]func(context.Context){}}
	out, err := fn(t)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	_ = dbtx.AfterCommit(ctx, func(ctx context.Context) error {
		for _, f := range *t.after {
			f(ctx)
		}
		return nil
	})
	return out, nil
}

// Create validates a new record, runs its hooks and writes it, its lines, its history
// row and its outbox row in one transaction. It returns the stored record.
func (e *Engine) Create(ctx context.Context, actor Actor, entity string, body []byte) (json.RawMessage, error) {
	rec, err := decodeBody(body)
	if err != nil {
		return nil, err
	}
	// In a caller's transaction the statement must run in it: take the write path.
	if c, err := e.entity(ctx, e.pool, entity); err == nil && dbtx.From(ctx) == nil && singleStatementCreate(actor, c) {
		// Nothing needs a transaction: the one statement is atomic on its own, unless a
		// hook's script reads or writes through db, which begins one.
		t := &txn{actor: actor, after: &[]func(context.Context){}}
		out, err := e.create(ctx, t, entity, rec)
		if t.tx != nil {
			if err == nil {
				err = t.tx.Commit(ctx)
			}
			_ = t.tx.Rollback(ctx)
		}
		if err != nil {
			return nil, err
		}
		for _, f := range *t.after {
			f(ctx)
		}
		return out, nil
	}
	return e.write(ctx, actor, nil, func(t *txn) (json.RawMessage, error) { return e.create(ctx, t, entity, rec) })
}

// singleStatementCreate tells whether a create can be one statement with no
// transaction around it: no lines, no autonumber, and no row rule to check after the
// insert. Hooks are fine: a script that uses db begins the transaction itself.
func singleStatementCreate(actor Actor, c *compiled) bool {
	if hasLines(c.entity) || c.entity.Autonumber != nil {
		return false
	}
	_, all := actor.access(c.entity).RowRules(auth.Create)
	return all
}

func (e *Engine) create(ctx context.Context, t *txn, entity string, rec map[string]any) (json.RawMessage, error) {
	c, err := e.entity(ctx, t.tx, entity)
	if err != nil {
		return nil, err
	}
	acc, err := authorize(t.actor, c.entity, auth.Create)
	if err != nil {
		return nil, err
	}
	if err := checkInput(c.entity, rec, t.byScript()); err != nil {
		return nil, err
	}
	if err := checkWritable(acc, c.entity, rec, auth.Create); err != nil {
		return nil, err
	}
	// A new record has no value where null is given, as a merge patch would leave it:
	// a workflow copying an empty field (an opportunity without owner) creates the
	// record without it rather than failing on "null is not a string".
	maps.DeleteFunc(rec, func(_ string, v any) bool { return v == nil })
	for _, f := range c.entity.LiveFields() {
		if _, ok := rec[f.Name]; !ok && f.Default != nil && !f.ReadOnly {
			if rec[f.Name], err = schema.DecodeValue(f.Default); err != nil {
				return nil, err
			}
		}
	}
	if rec, err = e.prepare(ctx, t, c, rec, nil); err != nil {
		return nil, err
	}
	tx := t.tx
	if a := c.entity.Autonumber; a != nil {
		if rec[a.Field], err = nextNumber(ctx, tx, c.entity.Name, a.Pattern, time.Now()); err != nil {
			return nil, err
		}
	}
	id, err := t.recordID()
	if err != nil {
		return nil, err
	}
	cols := []string{"id", "created_by", "updated_by"}
	vals := []string{"$1", "$2", "$2"}
	args := []any{id, nullUUID(t.actor.UserID)}
	for _, f := range c.entity.LiveFields() {
		v, ok := rec[f.Name]
		if !ok || f.Type == schema.TypeChild {
			continue
		}
		arg, ph, err := store.Param(f, v, "$"+strconv.Itoa(len(args)+1))
		if err != nil {
			return nil, invalid("/"+f.Name, "type", err.Error())
		}
		cols = append(cols, store.Ident(f.Name))
		vals = append(vals, ph)
		args = append(args, arg)
	}
	var after json.RawMessage
	if hasLines(c.entity) {
		if err := e.checkRelations(ctx, tx, c.entity, rec); err != nil {
			return nil, err
		}
		insert := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", store.Table(entity), strings.Join(cols, ", "), strings.Join(vals, ", "))
		if _, err := tx.Exec(ctx, insert, args...); err != nil {
			return nil, mapWriteError(entity, err)
		}
		if err := writeLines(ctx, tx, c.entity, id, rec, false); err != nil {
			return nil, err
		}
		if after, err = readRecord(ctx, tx, c.entity, id, false); err != nil {
			return nil, err
		}
		if err := recordChange(ctx, tx, t.actor, c.entity, id, "create", nil, after); err != nil {
			return nil, err
		}
	} else {
		// Without lines, the relation check, the row, its history and outbox rows and
		// the read-back are one statement: one round trip instead of five.
		var db querier = e.pool
		if tx != nil {
			db = tx
		}
		cond := relationCondition(c.entity, rec, cols, vals)
		insert := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s WHERE %s", store.Table(entity), strings.Join(cols, ", "), strings.Join(vals, ", "), cond)
		err := db.QueryRow(ctx, createStatement(c.entity, insert, len(args)), append(args, nullUUID(t.actor.UserID))...).Scan(&after)
		if errors.Is(err, pgx.ErrNoRows) {
			// Nothing was inserted: a referenced record is missing; say which.
			if err := e.checkRelations(ctx, db, c.entity, rec); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("create %s: no row inserted", entity)
		}
		if err != nil {
			return nil, mapWriteError(entity, err)
		}
	}
	if ok, err := rowAllowed(ctx, tx, t.actor, acc, auth.Create, c.entity, id); err != nil || !ok {
		if err == nil {
			err = forbidden("the new record would be outside the rows your roles may create in %s", entity)
		}
		return nil, err
	}
	e.queueAfterSave(t, c, after, nil)
	return after, nil
}

// relationCondition requires every referenced record to exist and not be deleted (a
// foreign key alone accepts a soft-deleted target). It reuses the insert's parameters.
func relationCondition(ent *schema.Entity, rec map[string]any, cols, vals []string) string {
	conds := []string{"true"}
	for _, f := range ent.LiveFields() {
		if f.Relation == nil || rec[f.Name] == nil {
			continue
		}
		for i, col := range cols {
			if col == store.Ident(f.Name) {
				conds = append(conds, fmt.Sprintf("EXISTS (SELECT 1 FROM %s WHERE id = %s AND deleted_at IS NULL)", store.Table(f.Relation.Entity), vals[i]))
			}
		}
	}
	return strings.Join(conds, " AND ")
}

func hasLines(ent *schema.Entity) bool {
	for _, f := range ent.LiveFields() {
		if f.Type == schema.TypeChild {
			return true
		}
	}
	return false
}

// createStatement wraps an INSERT (whose parameters are $1…$n) so that the same
// statement writes the history row (every field as new) and the outbox row, and
// returns the record as JSON. $n+1 is the actor.
func createStatement(ent *schema.Entity, insert string, n int) string {
	actor := fmt.Sprintf("$%d::uuid", n+1)
	name := store.Literal(ent.Name)
	var live []string
	for _, f := range ent.LiveFields() {
		live = append(live, store.Literal(f.Name))
	}
	liveList := "ARRAY[" + strings.Join(live, ", ") + "]::text[]"
	if len(live) == 0 {
		liveList = "'{}'::text[]"
	}
	sel := store.RecordSelect{Entity: ent}
	return fmt.Sprintf(`WITH t AS (%s RETURNING *),
	r AS (SELECT t.id, t.version, %s AS rec FROM t),
	h AS (INSERT INTO tessera.record_history (entity, record_id, version, op, changed_by, diff)
		SELECT %s, r.id, r.version, 'create', %s,
			(SELECT coalesce(jsonb_object_agg(f.key, jsonb_build_object('new', f.value)), '{}') FROM jsonb_each(r.rec) f WHERE f.key = ANY(%s))
		FROM r),
	o AS (INSERT INTO tessera.outbox (entity, record_id, event, payload)
		SELECT %s, r.id, 'create', jsonb_build_object('entity', %s::text, 'id', r.id, 'version', r.version, 'event', 'create',
			'record', r.rec, 'old', NULL, 'actor', %s)
		FROM r)
	SELECT rec FROM r`, insert, sel.RecordJSON(), name, actor, liveList, name, name, actor)
}

// Update applies a JSON merge patch (RFC 7386) to a record. ifMatch, when not nil, is
// the version the caller read; a different current version is ErrVersionMismatch.
func (e *Engine) Update(ctx context.Context, actor Actor, entity string, id uuid.UUID, body []byte, ifMatch *int) (json.RawMessage, error) {
	patch, err := decodeBody(body)
	if err != nil {
		return nil, err
	}
	return e.write(ctx, actor, nil, func(t *txn) (json.RawMessage, error) { return e.update(ctx, t, entity, id, patch, nil, ifMatch) })
}

// update applies patch and then adds amounts (see addAmounts; nil for a plain update)
// to the record locked FOR UPDATE.
func (e *Engine) update(ctx context.Context, t *txn, entity string, id uuid.UUID, patch, amounts map[string]any, ifMatch *int) (json.RawMessage, error) {
	c, err := e.entity(ctx, t.tx, entity)
	if err != nil {
		return nil, err
	}
	acc, err := authorize(t.actor, c.entity, auth.Update)
	if err != nil {
		return nil, err
	}
	for _, fields := range []map[string]any{patch, amounts} {
		if err := checkInput(c.entity, fields, t.byScript()); err != nil {
			return nil, err
		}
		if err := checkWritable(acc, c.entity, fields, auth.Update); err != nil {
			return nil, err
		}
	}
	tx := t.tx
	// The rules first: a row the actor may not see answers 404 whatever its version.
	if err := e.checkRow(ctx, tx, t.actor, acc, auth.Update, c.entity, id); err != nil {
		return nil, err
	}
	before, err := lockRecord(ctx, tx, c.entity, id, ifMatch, false)
	if err != nil {
		return nil, err
	}
	current, err := schema.DecodeRecord(before)
	if err != nil {
		return nil, err
	}
	merged := map[string]any{}
	for _, f := range c.entity.LiveFields() {
		if v, ok := current[f.Name]; ok && v != nil {
			if f.Type == schema.TypeChild {
				v = withoutNulls(v)
			}
			merged[f.Name] = v
		}
	}
	mergePatch(merged, patch)
	if err := addAmounts(c.entity, merged, amounts); err != nil {
		return nil, err
	}
	if merged, err = e.prepare(ctx, t, c, merged, current); err != nil {
		return nil, err
	}
	// Whatever differs from the stored record is written, whether the patch or a hook
	// changed it; an update that changes nothing writes nothing.
	changed := changedFields(c.entity, current, merged)
	if len(changed) == 0 {
		return before, nil
	}
	if err := e.checkRelations(ctx, tx, c.entity, merged); err != nil {
		return nil, err
	}
	sets := []string{"version = version + 1", "updated_at = now()", "updated_by = $2"}
	args := []any{id, nullUUID(t.actor.UserID)}
	lines := map[string]any{}
	for _, f := range changed {
		if f.Type == schema.TypeChild {
			lines[f.Name] = merged[f.Name]
			continue
		}
		arg, ph, err := store.Param(f, merged[f.Name], "$"+strconv.Itoa(len(args)+1))
		if err != nil {
			return nil, invalid("/"+f.Name, "type", err.Error())
		}
		sets = append(sets, store.Ident(f.Name)+" = "+ph)
		args = append(args, arg)
	}
	sql := fmt.Sprintf("UPDATE %s SET %s WHERE id = $1", store.Table(entity), strings.Join(sets, ", "))
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return nil, mapWriteError(entity, err)
	}
	if err := writeLines(ctx, tx, c.entity, id, lines, true); err != nil {
		return nil, err
	}
	if ok, err := rowAllowed(ctx, tx, t.actor, acc, auth.Update, c.entity, id); err != nil || !ok {
		if err == nil {
			err = forbidden("the change would move the record outside the rows your roles may update in %s", entity)
		}
		return nil, err
	}
	after, err := readRecord(ctx, tx, c.entity, id, false)
	if err != nil {
		return nil, err
	}
	if err := recordChange(ctx, tx, t.actor, c.entity, id, "update", before, after); err != nil {
		return nil, err
	}
	e.queueAfterSave(t, c, after, before)
	return after, nil
}

// checkRow refuses an action on a row outside the actor's rules: 404 when the actor
// cannot even read it (its existence stays hidden), 403 when they can.
func (e *Engine) checkRow(ctx context.Context, tx pgx.Tx, actor Actor, acc *auth.Access, action auth.Action, ent *schema.Entity, id uuid.UUID) error {
	ok, err := rowAllowed(ctx, tx, actor, acc, action, ent, id)
	if err != nil || ok {
		return err
	}
	racc := actor.access(ent)
	if readable, _ := racc.Allowed(auth.Read); readable {
		if visible, err := rowAllowed(ctx, tx, actor, racc, auth.Read, ent, id); err != nil {
			return err
		} else if visible {
			return forbidden("your roles do not allow %s on this %s", action, ent.Name)
		}
	}
	return fmt.Errorf("%s %s: %w", ent.Name, id, ErrRecordNotFound)
}

// withoutNulls drops null members of stored lines: the read renders every line field,
// but an empty optional field must validate as absent, not as a null of the wrong type.
func withoutNulls(v any) any {
	lines, ok := v.([]any)
	if !ok {
		return v
	}
	out := make([]any, len(lines))
	for i, l := range lines {
		line, ok := l.(map[string]any)
		if !ok {
			out[i] = l
			continue
		}
		kept := make(map[string]any, len(line))
		for k, val := range line {
			if val != nil {
				kept[k] = val
			}
		}
		out[i] = kept
	}
	return out
}

// changedFields are the live fields whose value differs between two records.
func changedFields(ent *schema.Entity, old, next map[string]any) []*schema.Field {
	var out []*schema.Field
	for _, f := range ent.LiveFields() {
		a, _ := json.Marshal(old[f.Name])
		b, _ := json.Marshal(next[f.Name])
		if !bytes.Equal(a, b) {
			out = append(out, f)
		}
	}
	return out
}

// Delete soft-deletes a record: it disappears from lists and reads but can be restored.
// A beforeDelete hook may refuse.
func (e *Engine) Delete(ctx context.Context, actor Actor, entity string, id uuid.UUID, ifMatch *int) error {
	_, err := e.write(ctx, actor, nil, func(t *txn) (json.RawMessage, error) {
		return nil, e.setDeleted(ctx, t, entity, id, ifMatch, true)
	})
	return err
}

// Restore brings back a soft-deleted record.
func (e *Engine) Restore(ctx context.Context, actor Actor, entity string, id uuid.UUID) (json.RawMessage, error) {
	if _, err := e.write(ctx, actor, nil, func(t *txn) (json.RawMessage, error) {
		return nil, e.setDeleted(ctx, t, entity, id, nil, false)
	}); err != nil {
		return nil, err
	}
	return e.Get(ctx, actor, entity, id, GetOptions{})
}

func (e *Engine) setDeleted(ctx context.Context, t *txn, entity string, id uuid.UUID, ifMatch *int, deleted bool) error {
	c, err := e.entity(ctx, t.tx, entity)
	if err != nil {
		return err
	}
	// Restoring is undoing a delete: it needs the delete grant too.
	acc, err := authorize(t.actor, c.entity, auth.Delete)
	if err != nil {
		return err
	}
	if err := e.checkRow(ctx, t.tx, t.actor, acc, auth.Delete, c.entity, id); err != nil {
		return err
	}
	before, err := lockRecord(ctx, t.tx, c.entity, id, ifMatch, !deleted)
	if err != nil {
		return err
	}
	deletedAt, op := "now()", "delete"
	if !deleted {
		deletedAt, op = "NULL", "restore"
	} else {
		current, err := schema.DecodeRecord(before)
		if err != nil {
			return err
		}
		if _, err := e.hook(ctx, t, c, HookBeforeDelete, current, nil); err != nil {
			return err
		}
	}
	if _, err := t.tx.Exec(ctx, fmt.Sprintf("UPDATE %s SET deleted_at = %s, version = version + 1, updated_at = now(), updated_by = $2 WHERE id = $1",
		store.Table(entity), deletedAt), id, nullUUID(t.actor.UserID)); err != nil {
		return mapWriteError(entity, err)
	}
	after, err := readRecord(ctx, t.tx, c.entity, id, true)
	if err != nil {
		return err
	}
	return recordChange(ctx, t.tx, t.actor, c.entity, id, op, before, after)
}

// GetOptions shape a single-record read.
type GetOptions struct {
	Fields      []string
	Expand      []string
	WithDeleted bool
}

// Get reads one record the actor may see; hidden fields are left out.
func (e *Engine) Get(ctx context.Context, actor Actor, entity string, id uuid.UUID, opts GetOptions) (json.RawMessage, error) {
	return e.get(ctx, e.pool, actor, entity, id, opts)
}

func (e *Engine) get(ctx context.Context, db querier, actor Actor, entity string, id uuid.UUID, opts GetOptions) (json.RawMessage, error) {
	c, err := e.entity(ctx, db, entity)
	if err != nil {
		return nil, err
	}
	acc, err := authorize(actor, c.entity, auth.Read)
	if err != nil {
		return nil, err
	}
	args := &query.Args{Values: []any{id}}
	sel, err := e.recordSelect(ctx, db, actor, acc, c.entity, opts.Fields, opts.Expand, args)
	if err != nil {
		return nil, err
	}
	where := "t.id = $1"
	if !opts.WithDeleted {
		where += " AND t.deleted_at IS NULL"
	}
	pred, err := rowPredicate(actor, acc, auth.Read, c.entity, "t", args)
	if err != nil {
		return nil, err
	}
	if pred != "" {
		// A row outside the rules is "not found": its existence is not revealed.
		where += " AND " + pred
	}
	var out json.RawMessage
	err = db.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s t WHERE %s", sel.RecordJSON(), store.Table(entity), where), args.Values...).Scan(&out)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s %s: %w", entity, id, ErrRecordNotFound)
	}
	return out, err
}

// recordSelect checks fields and expand against what the actor may see, and adds the
// row rules of each expanded entity, so an expand never shows a hidden field or row.
func (e *Engine) recordSelect(ctx context.Context, db querier, actor Actor, acc *auth.Access, ent *schema.Entity, fields, expand []string, args *query.Args) (store.RecordSelect, error) {
	sel := store.RecordSelect{Entity: ent, Fields: fields}
	for _, name := range fields {
		if ent.Field(name) == nil || acc.Hidden(name) {
			return sel, badQuery("/fields", fmt.Sprintf("%s has no field %q", ent.Name, name))
		}
	}
	if fields == nil && !acc.Admin {
		sel.Fields = visibleFields(acc, ent)
	}
	for _, name := range expand {
		f := ent.Field(name)
		if f == nil || f.Relation == nil || acc.Hidden(name) {
			return sel, badQuery("/expand", fmt.Sprintf("%q is not a relation of %s", name, ent.Name))
		}
		target, err := e.entity(ctx, db, f.Relation.Entity)
		if err != nil {
			return sel, err
		}
		tacc, err := authorize(actor, target.entity, auth.Read)
		if err != nil {
			return sel, err
		}
		x := store.Expansion{Field: name, Target: target.entity}
		if !tacc.Admin {
			x.Fields = visibleFields(tacc, target.entity)
		}
		if x.Where, err = rowPredicate(actor, tacc, auth.Read, target.entity, "x", args); err != nil {
			return sel, err
		}
		sel.Expand = append(sel.Expand, x)
	}
	return sel, nil
}

func decodeBody(body []byte) (map[string]any, error) {
	rec, err := schema.DecodeRecord(body)
	if err != nil {
		return nil, invalid("", "json", "the body must be one JSON object: "+err.Error())
	}
	return rec, nil
}

// checkInput rejects what a write may not set: unknown fields and system columns, and
// read-only fields unless a script makes the write. Read-only fields are the ones
// module rules keep (stock on hand, a project's actual cost): their scripts write them
// through db.update or db.adjust, while no client, workflow step or import can.
func checkInput(ent *schema.Entity, rec map[string]any, byScript bool) error {
	var problems []schema.Problem
	for key := range rec {
		f := ent.Field(key)
		switch {
		case f == nil:
			problems = append(problems, schema.Problem{Path: "/" + key, Code: "unknown_field", Message: fmt.Sprintf("%s has no field %q", ent.Name, key)})
		case f.ReadOnly && !byScript:
			problems = append(problems, schema.Problem{Path: "/" + key, Code: "read_only", Message: "this field is set by the system"})
		}
	}
	if len(problems) > 0 {
		sort.Slice(problems, func(i, j int) bool { return problems[i].Path < problems[j].Path })
		return &ValidationError{Problems: problems}
	}
	return nil
}

// mergePatch applies an RFC 7386 merge patch in place: null removes, objects merge,
// everything else (lines included) replaces.
func mergePatch(target, patch map[string]any) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(target, k)
		case map[string]any:
			tv, ok := target[k].(map[string]any)
			if !ok {
				tv = map[string]any{}
			}
			mergePatch(tv, pv)
			target[k] = tv
		default:
			target[k] = v
		}
	}
}

// lockRecord reads the record FOR UPDATE and checks it may be changed.
func lockRecord(ctx context.Context, tx pgx.Tx, ent *schema.Entity, id uuid.UUID, ifMatch *int, wantDeleted bool) (json.RawMessage, error) {
	var (
		rec       json.RawMessage
		version   int
		isDeleted bool
	)
	sel := store.RecordSelect{Entity: ent}
	err := tx.QueryRow(ctx, fmt.Sprintf("SELECT %s, t.version, t.deleted_at IS NOT NULL FROM %s t WHERE t.id = $1 FOR UPDATE OF t",
		sel.RecordJSON(), store.Table(ent.Name)), id).Scan(&rec, &version, &isDeleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s %s: %w", ent.Name, id, ErrRecordNotFound)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case isDeleted && !wantDeleted:
		return nil, ErrDeleted
	case !isDeleted && wantDeleted:
		return nil, invalid("", "not_deleted", "the record is not deleted")
	case ifMatch != nil && *ifMatch != version:
		return nil, ErrVersionMismatch
	}
	return rec, nil
}

func readRecord(ctx context.Context, tx pgx.Tx, ent *schema.Entity, id uuid.UUID, withDeleted bool) (json.RawMessage, error) {
	sel := store.RecordSelect{Entity: ent}
	var out json.RawMessage
	err := tx.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s t WHERE t.id = $1", sel.RecordJSON(), store.Table(ent.Name)), id).Scan(&out)
	return out, err
}

// writeLines stores the lines of every child field present in rec; on update the
// submitted list replaces the stored one, keeping the ids of lines that carry theirs.
func writeLines(ctx context.Context, tx pgx.Tx, ent *schema.Entity, parent uuid.UUID, rec map[string]any, replace bool) error {
	for _, f := range ent.LiveFields() {
		v, present := rec[f.Name]
		if f.Type != schema.TypeChild || !present {
			continue
		}
		lines, _ := v.([]any)
		table := store.Table(f.Child.Table)
		if replace {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE parent_id = $1", parent); err != nil {
				return err
			}
		}
		batch := &pgx.Batch{}
		for pos, item := range lines {
			line, _ := item.(map[string]any)
			lineID, err := uuid.NewV7()
			if err != nil {
				return err
			}
			if s, ok := line["id"].(string); ok {
				if parsed, err := uuid.Parse(s); err == nil {
					lineID = parsed
				}
			}
			cols := []string{"id", "parent_id", "position"}
			vals := []string{"$1", "$2", "$3"}
			args := []any{lineID, parent, pos}
			for _, cf := range f.Child.Fields {
				v, ok := line[cf.Name]
				if !ok || cf.Removed {
					continue
				}
				arg, ph, err := store.Param(cf, v, "$"+strconv.Itoa(len(args)+1))
				if err != nil {
					return invalid(fmt.Sprintf("/%s/%d/%s", f.Name, pos, cf.Name), "type", err.Error())
				}
				cols = append(cols, store.Ident(cf.Name))
				vals = append(vals, ph)
				args = append(args, arg)
			}
			batch.Queue(fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", table, strings.Join(cols, ", "), strings.Join(vals, ", ")), args...)
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return mapWriteError(f.Child.Table, err)
		}
	}
	return nil
}

// checkRelations verifies that every referenced record exists and is not deleted; the
// foreign key alone would accept a soft-deleted target.
func (e *Engine) checkRelations(ctx context.Context, tx querier, ent *schema.Entity, rec map[string]any) error {
	var problems []schema.Problem
	check := func(f *schema.Field, v any, path string) error {
		s, ok := v.(string)
		if !ok || f.Relation == nil {
			return nil
		}
		var exists bool
		err := tx.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1::text::uuid AND deleted_at IS NULL)", store.Table(f.Relation.Entity)), s).Scan(&exists)
		if err != nil {
			return err
		}
		if !exists {
			problems = append(problems, schema.Problem{Path: path, Code: "relation", Message: fmt.Sprintf("no %s with id %s", f.Relation.Entity, s)})
		}
		return nil
	}
	for _, f := range ent.LiveFields() {
		v, ok := rec[f.Name]
		if !ok {
			continue
		}
		if err := check(f, v, "/"+f.Name); err != nil {
			return err
		}
		if f.Child == nil {
			continue
		}
		lines, _ := v.([]any)
		for i, item := range lines {
			line, _ := item.(map[string]any)
			for _, cf := range f.Child.Fields {
				if err := check(cf, line[cf.Name], fmt.Sprintf("/%s/%d/%s", f.Name, i, cf.Name)); err != nil {
					return err
				}
			}
		}
	}
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// recordChange writes the history row (field-level diff) and the outbox row of a
// change, in the change's own transaction.
func recordChange(ctx context.Context, tx pgx.Tx, actor Actor, ent *schema.Entity, id uuid.UUID, op string, before, after json.RawMessage) error {
	diff, err := fieldDiff(ent, before, after)
	if err != nil {
		return err
	}
	var version int
	if err := tx.QueryRow(ctx, `INSERT INTO tessera.record_history (entity, record_id, version, op, changed_by, diff)
		VALUES ($1, $2, ($3::jsonb ->> 'version')::int, $4, $5, $6) RETURNING version`,
		ent.Name, id, []byte(after), op, nullUUID(actor.UserID), diff).Scan(&version); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	payload, err := json.Marshal(map[string]any{"entity": ent.Name, "id": id, "version": version, "event": op,
		"record": after, "old": before, "actor": nullUUID(actor.UserID)})
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO tessera.outbox (entity, record_id, event, payload) VALUES ($1, $2, $3, $4)`,
		ent.Name, id, op, payload); err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	return nil
}

// fieldDiff lists {field: {old, new}} for every live field whose value changed.
func fieldDiff(ent *schema.Entity, before, after json.RawMessage) ([]byte, error) {
	var oldRec, newRec map[string]json.RawMessage
	if before != nil {
		if err := json.Unmarshal(before, &oldRec); err != nil {
			return nil, err
		}
	}
	if err := json.Unmarshal(after, &newRec); err != nil {
		return nil, err
	}
	diff := map[string]map[string]json.RawMessage{}
	for _, f := range ent.LiveFields() {
		o, n := oldRec[f.Name], newRec[f.Name]
		if bytes.Equal(o, n) {
			continue
		}
		change := map[string]json.RawMessage{"new": n}
		if o != nil {
			change["old"] = o
		}
		diff[f.Name] = change
	}
	return json.Marshal(diff)
}

func nullUUID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id
}

// HistoryEntry is one change of a record.
type HistoryEntry struct {
	Version   int             `json:"version"`
	Op        string          `json:"op"`
	ChangedBy *uuid.UUID      `json:"changed_by"`
	ChangedAt time.Time       `json:"changed_at"`
	Diff      json.RawMessage `json:"diff"`
}

// History lists every change of a record the actor may read, oldest first, without
// the fields hidden from them.
func (e *Engine) History(ctx context.Context, actor Actor, entity string, id uuid.UUID) ([]HistoryEntry, error) {
	c, err := e.entity(ctx, e.pool, entity)
	if err != nil {
		return nil, err
	}
	acc, err := authorize(actor, c.entity, auth.Read)
	if err != nil {
		return nil, err
	}
	if ok, err := rowAllowed(ctx, e.pool, actor, acc, auth.Read, c.entity, id); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%s %s: %w", entity, id, ErrRecordNotFound)
		}
		return nil, err
	}
	rows, err := e.pool.Query(ctx, `SELECT version, op, changed_by, changed_at, diff FROM tessera.record_history
		WHERE entity = $1 AND record_id = $2 ORDER BY id`, entity, id)
	if err != nil {
		return nil, err
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (HistoryEntry, error) {
		var (
			h    HistoryEntry
			diff map[string]json.RawMessage
		)
		if err := row.Scan(&h.Version, &h.Op, &h.ChangedBy, &h.ChangedAt, &diff); err != nil {
			return h, err
		}
		for field := range diff {
			if acc.Hidden(field) {
				delete(diff, field)
			}
		}
		h.Diff, err = json.Marshal(diff)
		return h, err
	})
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s %s: %w", entity, id, ErrRecordNotFound)
	}
	return entries, nil
}
