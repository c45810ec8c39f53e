package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/workflows/dsl"
)

// Dispatcher turns committed record changes (outbox rows, written in the change's own
// transaction) into workflow starts and record-wait signals. It marks a row dispatched
// only after Temporal accepted the start, and the workflow id is derived from the
// change, with duplicates refused by Temporal: a crash at any point leads to a second
// attempt that is a no-op, so each change starts its workflows exactly once. Rows are
// taken FOR UPDATE SKIP LOCKED, so several dispatchers can run at once.
type Dispatcher struct {
	Pool     *pgxpool.Pool
	Engine   *engine.Engine
	Temporal client.Client
	Log      *slog.Logger
	// Interval is the pause when the outbox is empty; Batch the rows per transaction.
	Interval time.Duration
	Batch    int
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	interval, batch := d.Interval, d.Batch
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	if batch <= 0 {
		batch = 100
	}
	for ctx.Err() == nil {
		n, err := d.DispatchOnce(ctx, batch)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("workflow dispatcher", "err", err)
		}
		if n == batch && err == nil {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// event is one outbox row.
type event struct {
	id       int64
	entity   string
	recordID uuid.UUID
	name     string
	payload  []byte
}

// DispatchOnce handles up to limit pending outbox rows and reports how many it marked
// dispatched. A row whose start failed stays pending and stops the batch, so changes
// of one record start in order.
func (d *Dispatcher) DispatchOnce(ctx context.Context, limit int) (int, error) {
	tx, err := d.Pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `SELECT id, entity, record_id, event, payload FROM tessera.outbox
		WHERE dispatched_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (event, error) {
		var e event
		err := row.Scan(&e.id, &e.entity, &e.recordID, &e.name, &e.payload)
		return e, err
	})
	if err != nil || len(events) == 0 {
		return 0, err
	}
	triggers := map[string][]*Version{}
	var done []int64
	var dispatchErr error
	for _, e := range events {
		if _, ok := triggers[e.entity]; !ok {
			if triggers[e.entity], err = recordTriggers(ctx, tx, e.entity); err != nil {
				return 0, err
			}
		}
		if dispatchErr = d.dispatch(ctx, tx, e, triggers[e.entity]); dispatchErr != nil {
			break
		}
		done = append(done, e.id)
	}
	if len(done) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE tessera.outbox SET dispatched_at = now() WHERE id = ANY ($1)`, done); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return len(done), dispatchErr
}

// payload is the outbox row's document.
type payload struct {
	Entity  string          `json:"entity"`
	ID      string          `json:"id"`
	Version int             `json:"version"`
	Event   string          `json:"event"`
	Record  json.RawMessage `json:"record"`
	Old     json.RawMessage `json:"old"`
	Actor   *string         `json:"actor"`
}

func (d *Dispatcher) dispatch(ctx context.Context, tx pgx.Tx, e event, triggers []*Version) error {
	var p payload
	if err := json.Unmarshal(e.payload, &p); err != nil {
		d.Log.Error("unreadable outbox row", "id", e.id, "err", err)
		return nil
	}
	var trigger map[string]any
	if err := json.Unmarshal(e.payload, &trigger); err != nil {
		return nil
	}
	record, old := jsonObject(p.Record), jsonObject(p.Old)
	params := map[string]any{"record": record, "old": old, "event": p.Event, "actor": p.Actor}
	actor := ""
	if p.Actor != nil {
		actor = *p.Actor
	}
	for _, v := range triggers {
		def, err := dsl.Decode(v.Definition)
		if err != nil || !def.Trigger.Fires(e.entity, e.name) {
			continue
		}
		if def.Trigger.When != "" {
			ok, err := matchRecord(ctx, d.Engine, e.entity, def.Trigger.When, p.Record, params)
			if err != nil {
				// A condition that cannot be evaluated must not block the outbox.
				d.Log.Warn("trigger condition failed", "workflow", v.Name, "outbox", e.id, "err", err)
				continue
			}
			if !ok {
				continue
			}
		}
		id := fmt.Sprintf("%s:%s:%s:%s:%d", v.Name, e.entity, e.recordID, e.name, p.Version)
		in := RunInput{Workflow: v.Name, Version: v.Version, Definition: v.Definition, Trigger: trigger}
		in.actAs(def, actor)
		if err := insertRun(ctx, tx, id, in); err != nil {
			return err
		}
		if err := d.start(ctx, id, in); err != nil {
			return err
		}
	}
	return d.signalWaits(ctx, tx, e, p)
}

// start starts a run whose id was derived from the change. A run with that id that
// already exists (this change was dispatched before a crash) counts as started.
func (d *Dispatcher) start(ctx context.Context, id string, in RunInput) error {
	_, err := d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: TaskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, InterpreterWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		d.Log.Info("workflow already started for this change", "run", id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	d.Log.Info("workflow started by a record change", "run", id)
	return nil
}

// signalWaits wakes the runs waiting for this record to reach a condition.
func (d *Dispatcher) signalWaits(ctx context.Context, tx pgx.Tx, e event, p payload) error {
	rows, err := tx.Query(ctx, `SELECT run_id, signal, condition, params FROM tessera.workflow_waits
		WHERE entity = $1 AND record_id = $2 ORDER BY run_id, signal`, e.entity, e.recordID)
	if err != nil {
		return err
	}
	type wait struct {
		run, signal, condition string
		params                 map[string]any
	}
	waits, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (wait, error) {
		var w wait
		err := row.Scan(&w.run, &w.signal, &w.condition, &w.params)
		return w, err
	})
	if err != nil {
		return err
	}
	for _, w := range waits {
		ok, err := matchRecord(ctx, d.Engine, e.entity, w.condition, p.Record, w.params)
		if err != nil {
			d.Log.Warn("wait condition failed", "run", w.run, "err", err)
			continue
		}
		if !ok {
			continue
		}
		err = d.Temporal.SignalWorkflow(ctx, w.run, "", w.signal, jsonObject(p.Record))
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("signal %s: %w", w.run, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tessera.workflow_waits WHERE run_id = $1 AND signal = $2`, w.run, w.signal); err != nil {
			return err
		}
	}
	return nil
}

// jsonObject decodes a record, or gives an empty object (so $old.stage reads nil on a
// create instead of failing).
func jsonObject(raw json.RawMessage) map[string]any {
	out := map[string]any{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out)
	}
	if out == nil {
		out = map[string]any{}
	}
	return out
}
