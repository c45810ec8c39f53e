package workflows

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Journal saves a journal from a local activity (before the run blocks, and at its
// end).
func (a *Activities) Journal(ctx context.Context, j *Journal) error {
	return saveJournal(ctx, a.Pool, j)
}

// saveJournal writes the run row, its timeline entries and, at the end, its result in
// one transaction. Every write is an idempotent upsert, and a timeline entry only
// moves forward (seq grows), so journals retried or arriving out of order from
// parallel branches leave the newest state.
func saveJournal(ctx context.Context, pool *pgxpool.Pool, j *Journal) error {
	h := j.Run
	input, err := nullJSON(h.Input)
	if err != nil {
		return err
	}
	trigger, err := nullJSON(h.Trigger)
	if err != nil {
		return err
	}
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO tessera.workflow_runs (id, workflow, version, actor, parent, input, trigger, started_at, started_by)
		VALUES ($1, $2, $3, NULLIF($4, '')::uuid, NULLIF($5, ''), $6, $7, $8, NULLIF($10, '')::uuid)
		ON CONFLICT (id) DO UPDATE SET updated_at = now(),
			input = COALESCE(EXCLUDED.input, workflow_runs.input),
			trigger = COALESCE(EXCLUDED.trigger, workflow_runs.trigger),
			status = CASE WHEN $9 THEN 'running' ELSE workflow_runs.status END,
			error = CASE WHEN $9 THEN NULL ELSE workflow_runs.error END,
			state = CASE WHEN $9 THEN NULL ELSE workflow_runs.state END,
			ended_at = CASE WHEN $9 THEN NULL ELSE workflow_runs.ended_at END`,
		h.ID, h.Workflow, h.Version, h.Actor, h.Parent, input, trigger, h.StartedAt, h.Reset, h.StartedBy)
	for _, s := range j.Steps {
		batch.Queue(`INSERT INTO tessera.workflow_run_steps (run_id, key, step, type, status, position, seq, started_at, ended_at, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, ''))
			ON CONFLICT (run_id, key) DO UPDATE SET status = EXCLUDED.status, seq = EXCLUDED.seq,
				started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, error = EXCLUDED.error
			WHERE workflow_run_steps.seq < EXCLUDED.seq`,
			h.ID, s.Key, s.Step, s.Type, s.Status, s.Position, s.Seq, s.StartedAt, s.EndedAt, s.Error)
	}
	if f := j.Finish; f != nil {
		output, err := nullJSON(f.Output)
		if err != nil {
			return err
		}
		runErr, err := nullJSON(f.Error)
		if err != nil {
			return err
		}
		state, err := nullJSON(f.State)
		if err != nil {
			return err
		}
		batch.Queue(`UPDATE tessera.workflow_runs SET status = $2, output = $3, error = $4, state = $5,
			compensated = compensated OR $6, ended_at = $7, updated_at = now() WHERE id = $1`,
			h.ID, f.Status, output, runErr, state, f.Compensated, f.EndedAt)
		// Waits and open tasks of a run that ended are no longer anyone's business.
		batch.Queue(`DELETE FROM tessera.workflow_waits WHERE run_id = $1`, h.ID)
		batch.Queue(`UPDATE tessera.workflow_tasks SET status = 'cancelled' WHERE run_id = $1 AND status = 'open'`, h.ID)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, batch).Close() })
	if err != nil {
		return fmt.Errorf("save run journal of %s: %w", h.ID, err)
	}
	return nil
}

// nullJSON encodes v, or SQL NULL for nil.
func nullJSON(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if x == nil {
			return nil, nil
		}
	case *RunError:
		if x == nil {
			return nil, nil
		}
	case *Resume:
		if x == nil {
			return nil, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode journal value: %w", err)
	}
	return b, nil
}
