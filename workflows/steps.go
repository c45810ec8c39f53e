package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/workflows/dsl"
)

// exec runs a list of steps in order.
func (r *run) exec(ctx workflow.Context, steps []*dsl.Step, f frame) error {
	for _, s := range steps {
		if err := r.step(ctx, s, f); err != nil {
			return err
		}
	}
	return nil
}

// step runs one step: its guard, its work, its timeline entries, its result under
// $steps.<id> and, once it completed, its compensation on the saga's stack.
func (r *run) step(ctx workflow.Context, s *dsl.Step, f frame) error {
	key := f.prefix + s.ID
	sc := r.scope(ctx, f)
	if s.If != "" && s.Type != dsl.TypeCondition {
		ok, err := sc.Cond(s.If)
		if err != nil {
			return r.failed(ctx, s, key, err)
		}
		if !ok {
			r.steps[s.ID] = map[string]any{"status": StatusSkipped}
			r.mark(ctx, key, s, StatusSkipped, "")
			return nil
		}
	}
	r.mark(ctx, key, s, StatusRunning, "")
	result, err := r.do(ctx, s, f, key, sc)
	if err != nil {
		var can *continueAsNew
		if errors.As(err, &can) {
			return err
		}
		return r.failed(ctx, s, key, err)
	}
	if result == nil {
		result = map[string]any{}
	}
	result["status"] = StatusCompleted
	r.steps[s.ID] = result
	r.mark(ctx, key, s, StatusCompleted, "")
	if len(s.Compensate) > 0 {
		r.comp = append(r.comp, Compensation{Key: key, Step: s.ID, Frame: f.vars})
	}
	return nil
}

// failed records a failed (or cancelled) step. A failure that started in a nested
// step keeps naming that step.
func (r *run) failed(ctx workflow.Context, s *dsl.Step, key string, err error) error {
	if isCancel(ctx, err) {
		r.mark(ctx, key, s, StatusCancelled, "")
		r.steps[s.ID] = map[string]any{"status": StatusCancelled}
		return err
	}
	var se *stepError
	if !errors.As(err, &se) {
		se = &stepError{Step: s.ID, Key: key, Err: err}
	}
	r.steps[s.ID] = map[string]any{"status": StatusFailed, "error": message(se.Err)}
	msg := message(se.Err)
	if se.Step != s.ID {
		msg = fmt.Sprintf("step %q failed: %s", se.Step, msg)
	}
	r.mark(ctx, key, s, StatusFailed, msg)
	return se
}

// do dispatches on the step type.
func (r *run) do(ctx workflow.Context, s *dsl.Step, f frame, key string, sc dsl.Scope) (map[string]any, error) {
	switch s.Type {
	case dsl.TypeCreate, dsl.TypeUpdate, dsl.TypeGet, dsl.TypeQuery:
		return r.record(ctx, s, key, sc)
	case dsl.TypeSet:
		return r.set(s, sc)
	case dsl.TypeCondition:
		return r.condition(ctx, s, f, sc)
	case dsl.TypeSwitch:
		return r.switchStep(ctx, s, f, sc)
	case dsl.TypeParallel:
		return r.parallel(ctx, s, f)
	case dsl.TypeForeach:
		return r.foreach(ctx, s, f, sc)
	case dsl.TypeWait:
		return r.wait(ctx, s, sc)
	case dsl.TypeWaitEvent:
		return r.waitEvent(ctx, s, key, sc)
	case dsl.TypeTask:
		return r.task(ctx, s, key, sc)
	case dsl.TypeHTTP:
		return r.http(ctx, s, key, sc)
	case dsl.TypeNotify:
		return r.notify(ctx, s, key, sc)
	case dsl.TypeScript:
		return r.script(ctx, s, key, sc)
	case dsl.TypeSubworkflow:
		return r.subworkflow(ctx, s, key, sc)
	case dsl.TypeFail:
		msg, err := sc.Interpolate(s.Message)
		if err != nil {
			return nil, err
		}
		return nil, errors.New(msg)
	}
	return nil, fmt.Errorf("unknown step type %q", s.Type)
}
