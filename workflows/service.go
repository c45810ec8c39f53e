package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/dbtx"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/workflows/dsl"
)

// Service is what the API does with workflows: definitions, runs, tasks,
// notifications and credentials. Temporal may be nil (tests of the API without a
// server): then only what needs no Temporal works.
type Service struct {
	Pool     *pgxpool.Pool
	Engine   *engine.Engine
	Temporal client.Client
	Log      *slog.Logger
}

// ErrNoTemporal answers operations that need Temporal when the node has none.
var ErrNoTemporal = errors.New("workflows are not available: this node has no Temporal connection")

// Forbidden refuses an operation on a run or task.
type Forbidden struct{ Message string }

func (e *Forbidden) Error() string { return e.Message }

// Conflict refuses an operation the run's or task's state does not allow.
type Conflict struct{ Message string }

func (e *Conflict) Error() string { return e.Message }

// TaskError is a task action the workflow (or its projection) refused.
type TaskError struct {
	Kind     string
	Message  string
	Problems []schema.Problem
}

func (e *TaskError) Error() string { return e.Message }

// PutDefinition validates a definition and stores it as a new version (unless it
// equals the current one: created is then false). A schedule trigger is synced to a
// Temporal schedule.
func (s *Service) PutDefinition(ctx context.Context, actor engine.Actor, name string, raw []byte) (*Version, bool, error) {
	def, err := dsl.Parse(raw)
	if err != nil {
		return nil, false, err
	}
	if def.Name != name {
		return nil, false, &schema.DefinitionError{Problems: []schema.Problem{{Path: "/name", Code: "const", Message: fmt.Sprintf("must be %q, the name in the URL", name)}}}
	}
	// runAs hands the rights of its roles to whoever can trigger or start a run, so
	// only an administrator may declare it (whatever door the definition came through).
	if def.RunAs != nil && !actor.IsAdmin {
		return nil, false, &Forbidden{Message: "only an administrator may save a workflow with runAs: it gives every run the rights of its roles"}
	}
	if def.Trigger.Type == dsl.TriggerRecord {
		if _, err := s.Engine.GetEntity(ctx, def.Trigger.Entity); err != nil {
			if errors.Is(err, engine.ErrNotFound) {
				return nil, false, &schema.DefinitionError{Problems: []schema.Problem{{Path: "/trigger/entity", Code: "relation", Message: fmt.Sprintf("no entity %q", def.Trigger.Entity)}}}
			}
			return nil, false, err
		}
	}
	v, created, err := putVersion(ctx, s.Pool, def, raw, actor.UserID)
	if err != nil || !created {
		return v, created, err
	}
	if s.Temporal != nil {
		// Temporal is outside the database: in a caller's transaction (a module
		// install) the schedule follows its commit, so a rollback leaves none behind.
		if err := dbtx.AfterCommit(ctx, func(ctx context.Context) error {
			if err := s.syncSchedule(ctx, def, v, actor); err != nil {
				return fmt.Errorf("schedule %s: %w", name, err)
			}
			return nil
		}); err != nil {
			return v, created, err
		}
	}
	return v, created, nil
}

// PutWorkflow saves a module's definition for the module installer, as an
// administrator: only administrators install modules.
func (s *Service) PutWorkflow(ctx context.Context, name string, def []byte) error {
	_, _, err := s.PutDefinition(ctx, engine.Actor{IsAdmin: true}, name, def)
	return err
}

// GetWorkflow returns a workflow's current definition as saved, for the module
// exporter; the error wraps ErrNotFound when there is no such workflow.
func (s *Service) GetWorkflow(ctx context.Context, name string) ([]byte, error) {
	v, err := loadVersion(ctx, s.Pool, name, 0)
	if err != nil {
		return nil, err
	}
	return v.Definition, nil
}

// GetDefinition returns a version (0: the current one).
func (s *Service) GetDefinition(ctx context.Context, name string, version int) (*Version, error) {
	return loadVersion(ctx, s.Pool, name, version)
}

// ListDefinitions lists workflows with their current version.
func (s *Service) ListDefinitions(ctx context.Context) ([]Summary, error) {
	return listDefinitions(ctx, s.Pool)
}

// StartRun starts a run of the current version with input validated against the
// definition's input schema; problems point into the request ({"input": …}).
func (s *Service) StartRun(ctx context.Context, actor engine.Actor, name string, input map[string]any) (*Run, error) {
	v, err := loadVersion(ctx, s.Pool, name, 0)
	if err != nil {
		return nil, err
	}
	def, err := dsl.Decode(v.Definition)
	if err != nil {
		return nil, err
	}
	if input == nil {
		input = map[string]any{}
	}
	if len(def.Input) > 0 {
		form, problems := dsl.CompileSchema(def.Input, fmt.Sprintf("mem://tessera/workflows/%s/%d/input.json", name, v.Version))
		if len(problems) > 0 {
			return nil, fmt.Errorf("input schema of %s: %s", name, problems[0].Message)
		}
		doc, err := json.Marshal(input)
		if err != nil {
			return nil, err
		}
		if problems := form.Validate(doc); len(problems) > 0 {
			for i := range problems {
				problems[i].Path = "/input" + problems[i].Path
			}
			return nil, &engine.ValidationError{Problems: problems}
		}
	}
	if s.Temporal == nil {
		return nil, ErrNoTemporal
	}
	id := fmt.Sprintf("%s:%s", name, uuid.Must(uuid.NewV7()))
	in := RunInput{Workflow: name, Version: v.Version, Definition: v.Definition, Input: input}
	in.actAs(def, actorID(actor))
	if err := insertRun(ctx, s.Pool, id, in); err != nil {
		return nil, err
	}
	if _, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: TaskQueue, WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}, InterpreterWorkflow, in); err != nil {
		return nil, fmt.Errorf("start run %s: %w", id, err)
	}
	return s.GetRun(ctx, actor, id)
}

func actorID(a engine.Actor) string {
	if a.UserID == uuid.Nil {
		return ""
	}
	return a.UserID.String()
}

// CancelRun asks a run to stop; it runs its compensations and ends cancelled.
func (s *Service) CancelRun(ctx context.Context, actor engine.Actor, id string) (*Run, error) {
	run, err := s.runFor(ctx, actor, id, true)
	if err != nil {
		return nil, err
	}
	if run.Status != StatusRunning {
		return nil, &Conflict{Message: "the run is " + run.Status}
	}
	if err := s.Temporal.CancelWorkflow(ctx, id, ""); err != nil {
		return nil, temporalError(err)
	}
	return run, nil
}

// TerminateRun stops a run at once: no compensation, no further step.
func (s *Service) TerminateRun(ctx context.Context, actor engine.Actor, id, reason string) (*Run, error) {
	run, err := s.runFor(ctx, actor, id, true)
	if err != nil {
		return nil, err
	}
	if run.Status != StatusRunning {
		return nil, &Conflict{Message: "the run is " + run.Status}
	}
	if reason == "" {
		reason = "terminated by " + actorID(actor)
	}
	if err := s.Temporal.TerminateWorkflow(ctx, id, "", reason); err != nil {
		return nil, temporalError(err)
	}
	msg, _ := json.Marshal(RunError{Message: "terminated: " + reason})
	if _, err := s.Pool.Exec(ctx, `UPDATE tessera.workflow_runs SET status = 'cancelled', error = $2, ended_at = now(), updated_at = now() WHERE id = $1`, id, msg); err != nil {
		return nil, err
	}
	if _, err := s.Pool.Exec(ctx, `UPDATE tessera.workflow_tasks SET status = 'cancelled' WHERE run_id = $1 AND status = 'open'`, id); err != nil {
		return nil, err
	}
	return s.GetRun(ctx, actor, id)
}

// RetryRun starts a failed run again from the top-level step that failed, with the
// variables it had. It is refused when compensation already undid earlier steps, or
// the failure happened where no retry state was kept. Record ids derive from the run
// and step, so steps that already wrote are not written twice.
func (s *Service) RetryRun(ctx context.Context, actor engine.Actor, id string) (*Run, error) {
	run, err := s.runFor(ctx, actor, id, true)
	if err != nil {
		return nil, err
	}
	var (
		state     *Resume
		input     map[string]any
		trigger   map[string]any
		actorStr  *uuid.UUID
		startedBy *uuid.UUID
		parent    *string
	)
	if err := s.Pool.QueryRow(ctx, `SELECT state, input, trigger, actor, started_by, parent FROM tessera.workflow_runs WHERE id = $1`, id).
		Scan(&state, &input, &trigger, &actorStr, &startedBy, &parent); err != nil {
		return nil, err
	}
	switch {
	case run.Status != StatusFailed:
		return nil, &Conflict{Message: "only a failed run can be retried; this one is " + run.Status}
	case run.Compensated:
		return nil, &Conflict{Message: "the run's compensation already undid its steps; start a new run instead"}
	case state == nil:
		return nil, &Conflict{Message: "the run kept no state to continue from; start a new run instead"}
	}
	v, err := loadVersion(ctx, s.Pool, run.Workflow, run.Version)
	if err != nil {
		return nil, err
	}
	state.Retry = true
	in := RunInput{Workflow: run.Workflow, Version: run.Version, Definition: v.Definition, Input: input, Trigger: trigger,
		Attempt: state.Attempt + 1, Resume: state}
	if actorStr != nil {
		in.Actor = actorStr.String()
	}
	if startedBy != nil {
		in.StartedBy = startedBy.String()
	}
	if def, err := dsl.Decode(v.Definition); err == nil && def.RunAs != nil {
		in.RunAs = true
	}
	if parent != nil {
		in.Parent = *parent
	}
	if _, err := s.Pool.Exec(ctx, `UPDATE tessera.workflow_runs SET status = 'running', error = NULL, ended_at = NULL, updated_at = now() WHERE id = $1`, id); err != nil {
		return nil, err
	}
	if _, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: TaskQueue, WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
	}, InterpreterWorkflow, in); err != nil {
		return nil, temporalError(err)
	}
	return s.GetRun(ctx, actor, id)
}

// Signal sends a named event to a run (a wait_event step with "signal").
func (s *Service) Signal(ctx context.Context, actor engine.Actor, id, name string, data any) error {
	run, err := s.runFor(ctx, actor, id, true)
	if err != nil {
		return err
	}
	if run.Status != StatusRunning {
		return &Conflict{Message: "the run is " + run.Status}
	}
	return temporalError(s.Temporal.SignalWorkflow(ctx, id, "", name, data))
}

// runFor loads a run the actor may see (and, with manage, change): administrators,
// and the user the run acts for or who started it.
func (s *Service) runFor(ctx context.Context, actor engine.Actor, id string, manage bool) (*Run, error) {
	run, err := s.GetRun(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	if manage && s.Temporal == nil {
		return nil, ErrNoTemporal
	}
	mine := (run.Actor != nil && *run.Actor == actor.UserID) || (run.StartedBy != nil && *run.StartedBy == actor.UserID)
	if manage && !actor.IsAdmin && !mine {
		return nil, &Forbidden{Message: "only an administrator or the user who started the run may do this"}
	}
	return run, nil
}

// temporalError maps Temporal's answers for runs that are gone or over.
func temporalError(err error) error {
	if err == nil {
		return nil
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return &Conflict{Message: "the run is not running any more"}
	}
	return err
}
