package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Interpret is the one workflow that runs any DSL definition. The definition and its
// version come with the input, so what a run does is fixed when it starts.
func Interpret(ctx workflow.Context, in RunInput) (RunOutput, error) {
	r, err := newRun(ctx, in)
	if err != nil {
		return RunOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), errConfig, err)
	}
	if err := r.registerHandlers(ctx); err != nil {
		return RunOutput{}, err
	}
	err = r.top(ctx)
	var can *continueAsNew
	if errors.As(err, &can) {
		return RunOutput{}, r.continueAsNew(ctx, can.loop)
	}
	return r.finish(ctx, err)
}

// top runs the definition's steps from the resume point.
func (r *run) top(ctx workflow.Context) error {
	for i := r.next; i < len(r.def.Steps); i++ {
		r.next = i
		if err := r.step(ctx, r.def.Steps[i], frame{top: true, topIndex: i}); err != nil {
			if !isCancel(ctx, err) {
				r.failedTop = i
			}
			return err
		}
		r.loop, r.loopItems = 0, nil
	}
	return nil
}

// state is the run's variables as a resume point at top-level step next.
func (r *run) state(next, loop int) *Resume {
	return &Resume{Next: next, Loop: loop, Steps: r.steps, Vars: r.vars, Comp: r.comp, Seq: r.seq, Epoch: r.epoch, Attempt: r.in.Attempt}
}

// continueAsNew starts a fresh history for the rest of a long foreach: same workflow
// id, same variables, the timeline not yet saved carried along.
func (r *run) continueAsNew(ctx workflow.Context, loop int) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	next := r.in
	next.Resume = r.state(r.next, loop)
	next.Resume.Items = r.loopItems
	for _, k := range r.pending {
		next.Resume.Pending = append(next.Resume.Pending, *r.timeline[k])
	}
	return workflow.NewContinueAsNewError(ctx, InterpreterWorkflow, next)
}

// finish ends the run: output or error, compensation when it failed or was
// cancelled, and the final journal with the status.
func (r *run) finish(ctx workflow.Context, runErr error) (RunOutput, error) {
	fin := &RunFinish{Status: StatusCompleted}
	var out RunOutput
	cancelled := runErr != nil && isCancel(ctx, runErr)
	if runErr == nil {
		if r.def.Output != nil {
			v, err := r.scope(ctx, frame{}).ResolveMap(r.def.Output)
			if err != nil {
				runErr = &stepError{Step: "output", Key: "output", Err: err}
			} else {
				out.Output, fin.Output = v, v
			}
		}
	}
	// Compensation and the last journal must run even when the run was cancelled.
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if runErr != nil {
		fin.Status = StatusFailed
		if cancelled {
			fin.Status = StatusCancelled
		}
		var se *stepError
		if errors.As(runErr, &se) {
			fin.Error = &RunError{Step: se.Step, Message: message(se.Err)}
		} else if !cancelled {
			fin.Error = &RunError{Message: message(runErr)}
		}
		if len(r.comp) > 0 {
			fin.Compensated = true
			if err := r.compensate(dctx); err != nil {
				workflow.GetLogger(ctx).Error("compensation failed", "err", err)
				if fin.Error != nil {
					fin.Error.Message += "; compensation failed: " + message(err)
				}
			}
		} else if !cancelled && r.failedTop >= 0 {
			// Nothing was undone, so a retry may continue from the failed step.
			fin.State = r.state(r.failedTop, 0)
		}
	}
	if err := workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) }); err != nil {
		return out, err
	}
	fin.EndedAt = workflow.Now(ctx).UTC()
	j := r.drain()
	j.Finish = fin
	if err := r.journal(dctx, j); err != nil {
		workflow.GetLogger(ctx).Error("save run result", "err", err)
	}
	switch {
	case cancelled:
		return out, temporal.NewCanceledError()
	case runErr != nil:
		return out, temporal.NewNonRetryableApplicationError(runErr.Error(), errStepFailed, nil, fin.Error)
	}
	return out, nil
}
