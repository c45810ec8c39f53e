package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/script"
)

// Activities are the interpreter's side effects: record operations through the
// engine's one write path, scripts, HTTP calls, notifications, the task inbox and the
// run timeline. Each is idempotent, because Temporal may run an activity again.
type Activities struct {
	Engine *engine.Engine
	Users  *auth.Service
	Pool   *pgxpool.Pool
	HTTP   *http.Client
	Log    *slog.Logger
}

// activityRegistry is a worker or a test environment.
type activityRegistry interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register adds the activities to a worker (or a test environment) under their names.
func (a *Activities) Register(w activityRegistry) {
	reg := func(name string, fn any) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(ActJournal, a.Journal)
	reg(ActCreate, a.CreateRecord)
	reg(ActUpdate, a.UpdateRecord)
	reg(ActGet, a.GetRecord)
	reg(ActQuery, a.QueryRecords)
	reg(ActScript, a.Script)
	reg(ActHTTP, a.HTTPCall)
	reg(ActNotify, a.Notify)
	reg(ActTaskOpen, a.TaskOpen)
	reg(ActTaskUpdate, a.TaskUpdate)
	reg(ActWaitRegister, a.WaitRegister)
	reg(ActWaitClear, a.WaitClear)
	reg(ActLoadWorkflow, a.LoadWorkflow)
}

// begin saves the journal the call carries; every activity starts with it.
func (a *Activities) begin(ctx context.Context, c Call) error {
	if c.Journal == nil {
		return nil
	}
	return saveJournal(ctx, a.Pool, c.Journal)
}

// beginAs is begin, then the run's actor: how every record activity starts.
func (a *Activities) beginAs(ctx context.Context, c Call) (engine.Actor, error) {
	if err := a.begin(ctx, c); err != nil {
		return engine.Actor{}, err
	}
	return a.actor(ctx, c.Actor)
}

// actor is the user a run acts as, with their current roles and policy: a run never
// has more rights than the person it acts for has now, or, under runAs, than the
// workflow's service identity has now. No actor means no rights.
func (a *Activities) actor(ctx context.Context, userID string) (engine.Actor, error) {
	if userID == "" {
		return engine.Actor{}, nil
	}
	id, err := uuid.Parse(userID)
	if err != nil {
		return engine.Actor{}, temporal.NewNonRetryableApplicationError("the run's actor is not a user id", errConfig, nil)
	}
	u, err := a.Users.UserByID(ctx, id)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			return engine.Actor{}, temporal.NewNonRetryableApplicationError("the user this run acts for is disabled or gone", errForbidden, nil)
		}
		return engine.Actor{}, err
	}
	return engine.ActorFor(u), nil
}

// appError turns engine errors into activity errors: the ones a retry cannot fix are
// non-retryable and keep their problems as details.
func appError(err error) error {
	if err == nil {
		return nil
	}
	var (
		val      *engine.ValidationError
		conflict *engine.ConflictError
		denied   *engine.ForbiddenError
		failure  *engine.ScriptFailure
		query    *engine.QueryError
	)
	switch {
	case errors.As(err, &val):
		return temporal.NewNonRetryableApplicationError(err.Error(), errValidation, err, val.Problems)
	case errors.As(err, &conflict):
		return temporal.NewNonRetryableApplicationError(err.Error(), errValidation, err)
	case errors.As(err, &denied):
		return temporal.NewNonRetryableApplicationError(err.Error(), errForbidden, err)
	case errors.As(err, &failure):
		return temporal.NewNonRetryableApplicationError(err.Error(), errScript, err)
	case errors.As(err, &query):
		return temporal.NewNonRetryableApplicationError(err.Error(), errValidation, err)
	case errors.Is(err, engine.ErrNotFound):
		return temporal.NewNonRetryableApplicationError(err.Error(), errNotFound, err)
	}
	var se *script.Error
	if errors.As(err, &se) {
		return temporal.NewNonRetryableApplicationError(err.Error(), errScript, err)
	}
	return err
}

func configError(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errConfig, nil)
}
