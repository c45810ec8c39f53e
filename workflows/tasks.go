package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/workflows/dsl"
)

// Task is a human task in the inbox.
type Task struct {
	ID          uuid.UUID       `json:"id"`
	Run         string          `json:"run"`
	Step        string          `json:"step"`
	Title       string          `json:"title"`
	Description string          `json:"description,omitempty"`
	Assignee    TaskOwner       `json:"assignee"`
	ClaimedBy   *uuid.UUID      `json:"claimedBy"`
	Outcomes    []string        `json:"outcomes"`
	Form        json.RawMessage `json:"form"`
	Status      string          `json:"status"`
	Outcome     *string         `json:"outcome"`
	Data        json.RawMessage `json:"data"`
	CompletedBy *uuid.UUID      `json:"completedBy"`
	DueAt       *time.Time      `json:"dueAt"`
	CreatedAt   time.Time       `json:"createdAt"`
	CompletedAt *time.Time      `json:"completedAt"`
}

// TaskOwner is a task's assignee as the DSL writes it: a user (email) or a role.
type TaskOwner struct {
	User   string     `json:"user,omitempty"`
	UserID *uuid.UUID `json:"userId,omitempty"`
	Role   string     `json:"role,omitempty"`
}

const taskColumns = `t.id, t.run_id, t.step, t.title, t.description, coalesce(u.email, ''), t.assignee_user, coalesce(t.assignee_role, ''),
	t.claimed_by, t.outcomes, t.form, t.status, t.outcome, t.data, t.completed_by, t.due_at, t.created_at, t.completed_at`

func scanTask(row pgx.Row) (*Task, error) {
	t := &Task{}
	err := row.Scan(&t.ID, &t.Run, &t.Step, &t.Title, &t.Description, &t.Assignee.User, &t.Assignee.UserID, &t.Assignee.Role,
		&t.ClaimedBy, &t.Outcomes, &t.Form, &t.Status, &t.Outcome, &t.Data, &t.CompletedBy, &t.DueAt, &t.CreatedAt, &t.CompletedAt)
	return t, err
}

// TaskFilter selects tasks. Mine limits to tasks the actor may act on (their own,
// their roles' unclaimed or claimed by them); administrators may list all.
type TaskFilter struct {
	Mine   bool
	Status string
	Run    string
	Limit  int
}

// ListTasks lists tasks, oldest first (an inbox is worked from the top).
func (s *Service) ListTasks(ctx context.Context, actor engine.Actor, f TaskFilter) ([]*Task, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	sql := `SELECT ` + taskColumns + ` FROM tessera.workflow_tasks t LEFT JOIN tessera.users u ON u.id = t.assignee_user
		WHERE ($1 = '' OR t.status = $1) AND ($2 = '' OR t.run_id = $2)`
	args := []any{f.Status, f.Run}
	if f.Mine || !actor.IsAdmin {
		sql += ` AND (t.assignee_user = $3 OR t.claimed_by = $3 OR (t.assignee_role = ANY ($4) AND (t.claimed_by IS NULL OR t.claimed_by = $3)))`
		args = append(args, actor.UserID, roles(actor))
	}
	sql += fmt.Sprintf(` ORDER BY t.created_at, t.id LIMIT %d`, f.Limit)
	rows, err := s.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	tasks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Task, error) { return scanTask(row) })
	if tasks == nil {
		tasks = []*Task{}
	}
	return tasks, err
}

// GetTask reads one task.
func (s *Service) GetTask(ctx context.Context, id uuid.UUID) (*Task, error) {
	t, err := scanTask(s.Pool.QueryRow(ctx, `SELECT `+taskColumns+` FROM tessera.workflow_tasks t
		LEFT JOIN tessera.users u ON u.id = t.assignee_user WHERE t.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	return t, err
}

// mayAct is the inbox's view of who may complete a task; the workflow's validator
// decides, this answers early without a round trip.
func (t *Task) mayAct(actor engine.Actor) bool {
	if t.Assignee.UserID != nil {
		return *t.Assignee.UserID == actor.UserID
	}
	return slices.Contains(actor.Roles, t.Assignee.Role) && (t.ClaimedBy == nil || *t.ClaimedBy == actor.UserID)
}

// ActOnTask completes, claims or reassigns a task through the run's update: the run
// accepts or rejects it at once, and has written the inbox when this returns.
func (s *Service) ActOnTask(ctx context.Context, actor engine.Actor, id uuid.UUID, a TaskAction) (*Task, error) {
	t, err := s.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case t.Status != "open":
		return nil, &TaskError{Kind: ErrTaskClosed, Message: "the task is " + t.Status}
	case a.Action == TaskReassign && actor.IsAdmin:
	case a.Action == TaskClaim:
		if !slices.Contains(actor.Roles, t.Assignee.Role) {
			return nil, &TaskError{Kind: ErrTaskForbidden, Message: "only someone with the task's role may claim it"}
		}
	case !t.mayAct(actor):
		return nil, &TaskError{Kind: ErrTaskForbidden, Message: "only the task's assignee may do this"}
	}
	if a.Action == TaskComplete {
		if problems := checkOutcome(t, a); len(problems) > 0 {
			return nil, &TaskError{Kind: ErrTaskInvalid, Message: "the task cannot be completed with this data", Problems: problems}
		}
	}
	if s.Temporal == nil {
		return nil, ErrNoTemporal
	}
	a.Task = id.String()
	a.By = TaskUser{ID: actor.UserID.String(), Roles: actor.Roles, IsAdmin: actor.IsAdmin}
	if err := s.updateTask(ctx, t.Run, a); err != nil {
		return nil, err
	}
	return s.GetTask(ctx, id)
}

// updateTask asks the run to take a task action and waits for its answer. While the
// run is running, an update the server could not hand to a worker (the worker that had
// the run cached just died; a new one has not picked it up yet) is asked again under
// the same update id, so it is applied once: the person completing a task during a
// worker restart waits a little instead of being told the run is gone.
func (s *Service) updateTask(ctx context.Context, run string, a TaskAction) error {
	opts := client.UpdateWorkflowOptions{
		UpdateID: uuid.NewString(), WorkflowID: run, UpdateName: UpdateTask, Args: []any{a},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		h, err := s.Temporal.UpdateWorkflow(ctx, opts)
		if err == nil {
			var res TaskResult
			if err = h.Get(ctx, &res); err == nil {
				return nil
			}
		}
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) || attempt == 8 || !s.running(ctx, run) {
			return taskUpdateError(err)
		}
		select {
		case <-ctx.Done():
			return taskUpdateError(err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 4*time.Second)
	}
}

// running tells whether Temporal still runs the workflow.
func (s *Service) running(ctx context.Context, run string) bool {
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, run, "")
	return err == nil && d.WorkflowExecutionInfo.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// checkOutcome validates outcome and data before asking the run, for errors with
// pointers into the request.
func checkOutcome(t *Task, a TaskAction) []schema.Problem {
	if !slices.Contains(t.Outcomes, a.Outcome) {
		return []schema.Problem{{Path: "/outcome", Code: "enum", Message: "must be one of " + dsl.Text(t.Outcomes)}}
	}
	if len(t.Form) == 0 || string(t.Form) == "null" {
		return nil
	}
	form, problems := dsl.CompileSchema(t.Form, "mem://tessera/tasks/"+t.ID.String()+"/form.json")
	if len(problems) > 0 {
		return nil // the run's validator reports it
	}
	data := a.Data
	if data == nil {
		data = map[string]any{}
	}
	doc, err := json.Marshal(data)
	if err != nil {
		return []schema.Problem{{Path: "/data", Message: err.Error()}}
	}
	problems = form.Validate(doc)
	for i := range problems {
		problems[i].Path = "/data" + problems[i].Path
	}
	return problems
}

// taskUpdateError turns the run's rejection into a TaskError.
func taskUpdateError(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		te := &TaskError{Kind: appErr.Type(), Message: appErr.Message()}
		if appErr.HasDetails() {
			_ = appErr.Details(&te.Problems)
		}
		switch te.Kind {
		case ErrTaskClosed, ErrTaskForbidden, ErrTaskInvalid, ErrTaskUnknown:
			return te
		}
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return &TaskError{Kind: ErrTaskClosed, Message: "the run of this task is not running any more"}
	}
	return fmt.Errorf("task update: %w", err)
}
