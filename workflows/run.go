package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/workflows/dsl"
)

// run is one execution of the interpreter: definition, variables, timeline and the
// saga's compensation stack. It is workflow code: no I/O, no wall clock, and no map
// iteration decides the order of commands.
type run struct {
	in    RunInput
	def   *dsl.Definition
	id    string // the Temporal workflow id, which is the run's public id
	epoch time.Time
	steps map[string]any
	vars  map[string]any
	comp  []Compensation
	byID  map[string]*dsl.Step

	seq        int64
	timeline   map[string]*StepState
	pending    []string
	headerSent bool

	tasks map[string]*openTask

	// resume position: the top-level step and foreach iteration to continue at.
	next      int
	loop      int
	loopItems []any
	// failedTop is the top-level step a failure happened in, for a retry.
	failedTop int
}

// frame is what a step list runs in: its key prefix and foreach variables.
type frame struct {
	prefix string
	vars   map[string]any
	// top is set for the definition's own step list, where a long foreach may
	// continue as new.
	top      bool
	topIndex int
}

func (f frame) nested() frame { return frame{prefix: f.prefix, vars: f.vars} }

// stepError is a failed step: the innermost step that failed names the run's error.
type stepError struct {
	Step string
	Key  string
	Err  error
}

func (e *stepError) Error() string { return fmt.Sprintf("step %q failed: %s", e.Step, message(e.Err)) }
func (e *stepError) Unwrap() error { return e.Err }

// continueAsNew unwinds to the top when a long foreach should continue in a new run.
type continueAsNew struct{ loop int }

func (*continueAsNew) Error() string { return "continue as new" }

func newRun(ctx workflow.Context, in RunInput) (*run, error) {
	def, err := dsl.Decode(in.Definition)
	if err != nil {
		return nil, err
	}
	r := &run{
		in: in, def: def, id: workflow.GetInfo(ctx).WorkflowExecution.ID,
		steps: map[string]any{}, vars: map[string]any{}, byID: map[string]*dsl.Step{},
		timeline: map[string]*StepState{}, tasks: map[string]*openTask{},
		// workflow.Now, not WorkflowStartTime: only the former is guaranteed to be
		// the same when the history is replayed, and ids derive from the epoch.
		epoch: workflow.Now(ctx).UTC(), failedTop: -1,
	}
	index(def.Steps, r.byID)
	if res := in.Resume; res != nil {
		r.next, r.loop, r.loopItems, r.seq, r.comp = res.Next, res.Loop, res.Items, res.Seq, res.Comp
		if res.Steps != nil {
			r.steps = res.Steps
		}
		if res.Vars != nil {
			r.vars = res.Vars
		}
		if !res.Epoch.IsZero() {
			r.epoch = res.Epoch
		}
		for _, st := range res.Pending {
			r.timeline[st.Key] = &st
			r.pending = append(r.pending, st.Key)
		}
		r.headerSent = !res.Retry
	}
	return r, nil
}

// index maps every step id (nested and compensation steps too) to its step.
func index(steps []*dsl.Step, out map[string]*dsl.Step) {
	for _, s := range steps {
		out[s.ID] = s
		index(s.Then, out)
		index(s.Else, out)
		index(s.Default, out)
		index(s.Steps, out)
		index(s.Compensate, out)
		for _, c := range s.Cases {
			index(c.Steps, out)
		}
		for _, b := range s.Branches {
			index(b.Steps, out)
		}
	}
}

// scope is what the step's conditions and mappings read.
func (r *run) scope(ctx workflow.Context, f frame) dsl.Scope {
	input, trigger := r.in.Input, r.in.Trigger
	if input == nil {
		input = map[string]any{}
	}
	if trigger == nil {
		trigger = map[string]any{}
	}
	s := dsl.Scope{
		"input": input, "trigger": trigger, "steps": r.steps, "vars": r.vars,
		// actor is who triggered or started the run; as whom its steps act (the
		// workflow's service identity under runAs).
		"run": map[string]any{"id": r.id, "workflow": r.in.Workflow, "version": r.in.Version, "actor": r.in.startedBy(), "as": r.in.Actor, "attempt": r.in.Attempt},
		"now": workflow.Now(ctx).UTC().Format(time.RFC3339),
	}
	for _, k := range slices.Sorted(maps.Keys(f.vars)) {
		s[k] = f.vars[k]
	}
	return s
}

// mark records a step's new state in the timeline; it is saved with the next journal.
func (r *run) mark(ctx workflow.Context, key string, s *dsl.Step, status, errMsg string) {
	now := workflow.Now(ctx).UTC()
	st := r.timeline[key]
	if st == nil {
		r.seq++
		st = &StepState{Key: key, Step: s.ID, Type: s.Type, Position: r.seq}
		r.timeline[key] = st
	}
	r.seq++
	st.Seq, st.Status = r.seq, status
	if status == StatusRunning {
		st.StartedAt, st.EndedAt, st.Error = &now, nil, ""
	} else {
		if st.StartedAt == nil {
			st.StartedAt = &now
		}
		st.EndedAt, st.Error = &now, errMsg
	}
	if !slices.Contains(r.pending, key) {
		r.pending = append(r.pending, key)
	}
}

// header identifies the run row; the first journal of an execution also carries the
// input and trigger.
func (r *run) header() RunHeader {
	h := RunHeader{ID: r.id, Workflow: r.in.Workflow, Version: r.in.Version, Actor: r.in.Actor, StartedBy: r.in.startedBy(), Parent: r.in.Parent, StartedAt: r.epoch}
	if !r.headerSent {
		h.Input, h.Trigger = r.in.Input, r.in.Trigger
		h.Reset = r.in.Resume != nil && r.in.Resume.Retry
		r.headerSent = true
	}
	return h
}

// drain takes the unsaved timeline into a journal.
func (r *run) drain() *Journal {
	j := &Journal{Run: r.header()}
	for _, k := range r.pending {
		j.Steps = append(j.Steps, *r.timeline[k])
	}
	r.pending = nil
	return j
}

// call is the common input of an activity for a step: it carries the journal, so the
// timeline is saved by work the run does anyway.
func (r *run) call(key string) Call {
	return Call{Run: r.id, Key: key, Actor: r.in.Actor, Journal: r.drain()}
}

// flush saves the timeline before the run blocks on something that is not an
// activity (a timer, a signal, a person), so the run's page shows where it waits.
func (r *run) flush(ctx workflow.Context) error {
	if len(r.pending) == 0 && r.headerSent {
		return nil
	}
	return r.journal(ctx, r.drain())
}

func (r *run) journal(ctx workflow.Context, j *Journal) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second},
	})
	return workflow.ExecuteLocalActivity(lctx, ActJournal, j).Get(lctx, nil)
}

// Errors an activity reports that retrying cannot fix.
var nonRetryable = []string{errValidation, errForbidden, errNotFound, errScript, errHTTPClient, errConfig}

// activity runs one activity for a step with the step's timeout and retry policy.
func (r *run) activity(ctx workflow.Context, s *dsl.Step, name string, in, out any) error {
	timeout := time.Minute
	if name == ActHTTP {
		timeout = 30 * time.Second
	}
	if s.Timeout != "" && s.Type != dsl.TypeWaitEvent {
		if d, err := dsl.ParseDuration(s.Timeout); err == nil {
			timeout = d
		}
	}
	policy := &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5, NonRetryableErrorTypes: nonRetryable}
	if s.Retry != nil {
		if s.Retry.MaxAttempts > 0 {
			policy.MaximumAttempts = int32(s.Retry.MaxAttempts)
		}
		if d, err := dsl.ParseDuration(s.Retry.InitialInterval); err == nil {
			policy.InitialInterval = d
		}
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: timeout, RetryPolicy: policy})
	return workflow.ExecuteActivity(actx, name, in).Get(actx, out)
}

// isCancel tells a cancelled run (or branch) from a failure: once its context is
// cancelled, whatever a step reports is the cancellation's doing.
func isCancel(ctx workflow.Context, err error) bool {
	return isCancelErr(err) || (ctx.Err() != nil && err != nil)
}

func isCancelErr(err error) bool {
	return temporal.IsCanceledError(err) || errors.Is(err, workflow.ErrCanceled)
}

// message is the text of an error as the run shows it: an activity's own message,
// not Temporal's wrapping.
func message(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var se *stepError
	if errors.As(err, &se) {
		return message(se.Err)
	}
	return err.Error()
}
