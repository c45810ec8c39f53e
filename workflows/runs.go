package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine"
)

// Run is a run as the API shows it: status, the step-by-step timeline, output or error.
type Run struct {
	ID          string          `json:"id"`
	Workflow    string          `json:"workflow"`
	Version     int             `json:"version"`
	Status      string          `json:"status"`
	Actor       *uuid.UUID      `json:"actor"`
	StartedBy   *uuid.UUID      `json:"startedBy"`
	Parent      *string         `json:"parent,omitempty"`
	Input       json.RawMessage `json:"input,omitempty"`
	Output      json.RawMessage `json:"output"`
	Error       json.RawMessage `json:"error"`
	Compensated bool            `json:"compensated"`
	Retryable   bool            `json:"retryable"`
	StartedAt   time.Time       `json:"startedAt"`
	EndedAt     *time.Time      `json:"endedAt"`
	Steps       []RunStep       `json:"steps,omitempty"`
}

// RunStep is one timeline entry.
type RunStep struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Type      string     `json:"type"`
	Status    string     `json:"status"`
	StartedAt *time.Time `json:"startedAt"`
	EndedAt   *time.Time `json:"endedAt"`
	Error     *string    `json:"error"`
}

const runColumns = `r.id, r.workflow, r.version, r.status, r.actor, r.started_by, r.parent, r.input, r.output, r.error, r.compensated,
	r.state IS NOT NULL AND r.status = 'failed' AND NOT r.compensated, r.started_at, r.ended_at`

func scanRun(row pgx.Row) (*Run, error) {
	r := &Run{}
	err := row.Scan(&r.ID, &r.Workflow, &r.Version, &r.Status, &r.Actor, &r.StartedBy, &r.Parent, &r.Input, &r.Output, &r.Error,
		&r.Compensated, &r.Retryable, &r.StartedAt, &r.EndedAt)
	return r, err
}

// visible is the condition under which a non-administrator sees a run: it acts for
// them or they started it, or it has a task for them or their roles. user and roles
// are placeholders.
func visible(user, roles string) string {
	return fmt.Sprintf(`(r.actor = %[1]s OR r.started_by = %[1]s OR EXISTS (SELECT 1 FROM tessera.workflow_tasks t WHERE t.run_id = r.id
	AND (t.assignee_user = %[1]s OR t.claimed_by = %[1]s OR t.completed_by = %[1]s OR t.assignee_role = ANY (%[2]s))))`, user, roles)
}

// GetRun reads a run with its timeline.
func (s *Service) GetRun(ctx context.Context, actor engine.Actor, id string) (*Run, error) {
	where, args := "r.id = $1", []any{id}
	if !actor.IsAdmin {
		where += " AND " + visible("$2", "$3")
		args = append(args, actor.UserID, roles(actor))
	}
	run, err := scanRun(s.Pool.QueryRow(ctx, `SELECT `+runColumns+` FROM tessera.workflow_runs r WHERE `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load run %s: %w", id, err)
	}
	rows, err := s.Pool.Query(ctx, `SELECT step, key, type, status, started_at, ended_at, error FROM tessera.workflow_run_steps
		WHERE run_id = $1 ORDER BY position, key`, id)
	if err != nil {
		return nil, err
	}
	run.Steps, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (RunStep, error) {
		var st RunStep
		err := row.Scan(&st.ID, &st.Key, &st.Type, &st.Status, &st.StartedAt, &st.EndedAt, &st.Error)
		return st, err
	})
	if run.Steps == nil {
		run.Steps = []RunStep{}
	}
	return run, err
}

func roles(a engine.Actor) []string {
	if a.Roles == nil {
		return []string{}
	}
	return a.Roles
}

// RunFilter selects runs for the list.
type RunFilter struct {
	Workflow string
	Status   string
	Limit    int
	// Cursor is the id of the last run of the previous page.
	Cursor string
}

// RunPage is one page of runs, newest first.
type RunPage struct {
	Items      []*Run  `json:"items"`
	NextCursor *string `json:"next_cursor"`
	Total      int64   `json:"total"`
	// TotalIsEstimate is always false: totals are counted.
	TotalIsEstimate bool `json:"total_is_estimate"`
}

// ListRuns lists runs (without timelines), newest first.
func (s *Service) ListRuns(ctx context.Context, actor engine.Actor, f RunFilter) (*RunPage, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	var args []any
	var where []string
	if !actor.IsAdmin {
		args = append(args, actor.UserID, roles(actor))
		where = append(where, visible("$1", "$2"))
	}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Workflow != "" {
		add("r.workflow = ?", f.Workflow)
	}
	if f.Status != "" {
		add("r.status = ?", f.Status)
	}
	cond := "true"
	if len(where) > 0 {
		cond = strings.Join(where, " AND ")
	}
	page := &RunPage{Items: []*Run{}}
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM tessera.workflow_runs r WHERE `+cond, args...).Scan(&page.Total); err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	if f.Cursor != "" {
		add("(r.started_at, r.id) < (SELECT started_at, id FROM tessera.workflow_runs WHERE id = ?)", f.Cursor)
		cond = strings.Join(where, " AND ")
	}
	rows, err := s.Pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM tessera.workflow_runs r WHERE %s ORDER BY r.started_at DESC, r.id DESC LIMIT %d`,
		runColumns, cond, f.Limit+1), args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		if len(page.Items) == f.Limit {
			next := page.Items[len(page.Items)-1].ID
			page.NextCursor = &next
			break
		}
		page.Items = append(page.Items, r)
	}
	return page, rows.Err()
}
