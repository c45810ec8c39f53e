package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/schema"
)

// Step operations of a migration plan.
const (
	OpCreateTable      = "create_table"
	OpAddColumn        = "add_column"
	OpRenameColumn     = "rename_column"
	OpAlterType        = "alter_type"
	OpAddIndex         = "add_index"
	OpDropIndex        = "drop_index"
	OpAddConstraint    = "add_constraint"
	OpDropConstraint   = "drop_constraint"
	OpSoftRemoveColumn = "soft_remove_column"
	OpRestoreColumn    = "restore_column"
	OpSetComment       = "set_comment"
	OpRebuildSearch    = "rebuild_search"
)

// Step is one change of a migration plan.
type Step struct {
	Op          string `json:"op"`
	Target      string `json:"target"`
	Description string `json:"description"`
	// Destructive steps can lose data (a narrowing type change); they are applied only
	// when the caller confirms.
	Destructive bool `json:"destructive,omitempty"`
	// Check, when set, counts existing rows the step would fail on; FailingRows is its
	// result, and a plan with failing rows is not applied.
	Check       string   `json:"-"`
	FailingRows int64    `json:"failing_rows,omitempty"`
	Problem     string   `json:"problem,omitempty"`
	SQL         []string `json:"sql"`
}

// Plan is the ordered list of steps that migrates an entity's tables from one
// definition version to the next.
type Plan struct {
	Entity      string `json:"entity"`
	FromVersion int    `json:"from_version"`
	ToVersion   int    `json:"to_version"`
	Steps       []Step `json:"steps"`
	// Destructive is true when any step is; Blocked when any step has failing rows.
	Destructive bool `json:"destructive"`
	Blocked     bool `json:"blocked"`
}

// PlanMigration computes the steps from old (nil for a new entity) to next and runs
// every step's check against the current rows inside tx, so a dry run reports the
// offending row counts and changes nothing.
func PlanMigration(ctx context.Context, tx pgx.Tx, old, next *schema.Entity) (*Plan, error) {
	p := &Plan{Entity: next.Name, ToVersion: next.Version}
	if old == nil {
		p.Steps = createTable(next)
	} else {
		p.FromVersion = old.Version
		p.Steps = diff(old, next)
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.Check != "" {
			if err := tx.QueryRow(ctx, s.Check).Scan(&s.FailingRows); err != nil {
				return nil, fmt.Errorf("check step %s %s: %w", s.Op, s.Target, err)
			}
		}
		p.Destructive = p.Destructive || s.Destructive
		p.Blocked = p.Blocked || s.FailingRows > 0
	}
	return p, nil
}

// Apply runs the plan's SQL in tx. The caller owns the transaction: on any error it
// rolls back, leaving tables and definition exactly as before.
func (p *Plan) Apply(ctx context.Context, tx pgx.Tx) error {
	for _, s := range p.Steps {
		for _, sql := range s.SQL {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%s %s: %w", s.Op, s.Target, err)
			}
		}
	}
	return nil
}
