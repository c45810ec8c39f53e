package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/workflows/dsl"
)

// wait sleeps for a duration or until a date-time, on a durable timer.
func (r *run) wait(ctx workflow.Context, s *dsl.Step, sc dsl.Scope) (map[string]any, error) {
	var d time.Duration
	var err error
	if s.Duration != "" {
		if d, err = dsl.ParseDuration(s.Duration); err != nil {
			return nil, err
		}
	} else {
		text, err := sc.String(s.Until)
		if err != nil {
			return nil, err
		}
		until, err := dsl.ParseTime(text)
		if err != nil {
			return nil, err
		}
		d = until.Sub(workflow.Now(ctx))
	}
	if err := r.flush(ctx); err != nil {
		return nil, err
	}
	if d > 0 {
		if err := workflow.Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
	return map[string]any{"waited": d.String()}, nil
}

// WaitInput registers a record wait.
type WaitInput struct {
	Call
	Signal    string         `json:"signal"`
	Entity    string         `json:"entity"`
	ID        string         `json:"id"`
	Condition string         `json:"condition"`
	Params    map[string]any `json:"params,omitempty"`
}

// WaitOutput says whether the record already matched.
type WaitOutput struct {
	Matched bool           `json:"matched"`
	Record  map[string]any `json:"record,omitempty"`
}

// waitEvent waits for a named signal (POST /runs/{id}/signal) or for a record to
// reach a condition, optionally giving up after timeout.
func (r *run) waitEvent(ctx workflow.Context, s *dsl.Step, key string, sc dsl.Scope) (map[string]any, error) {
	signal := s.Signal
	if s.Signal == "" {
		signal = recordSignalPrefix + key
		in := WaitInput{Signal: signal, Entity: s.Entity, Condition: s.Until, Params: paramsFor(s.Until, sc)}
		var err error
		if in.ID, err = sc.String(s.Record); err != nil {
			return nil, err
		}
		in.Call = r.call(key)
		var reg WaitOutput
		if err := r.activity(ctx, s, ActWaitRegister, in, &reg); err != nil {
			return nil, err
		}
		if reg.Matched {
			return map[string]any{"record": reg.Record}, nil
		}
	}
	if err := r.flush(ctx); err != nil {
		return nil, err
	}
	var data any
	received, timedOut := false, false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, signal), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, &data)
		received = true
	})
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	if s.Timeout != "" {
		d, err := dsl.ParseDuration(s.Timeout)
		if err != nil {
			return nil, err
		}
		tctx, cancel := workflow.WithCancel(ctx)
		defer cancel()
		sel.AddFuture(workflow.NewTimer(tctx, d), func(f workflow.Future) {
			timedOut = f.Get(tctx, nil) == nil
		})
	}
	sel.Select(ctx)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if !received {
		if s.Signal == "" {
			in := WaitInput{Call: r.call(key), Signal: signal}
			if err := r.activity(ctx, s, ActWaitClear, in, nil); err != nil {
				return nil, err
			}
		}
		if timedOut && s.OnTimeout == "continue" {
			return map[string]any{"timedOut": true}, nil
		}
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no event within %s", s.Timeout), errTimeout, nil)
	}
	if s.Signal == "" {
		return map[string]any{"record": data}, nil
	}
	return map[string]any{"data": data}, nil
}

// paramsFor is the part of the scope a condition reads, so a record wait stores only
// what it needs.
func paramsFor(cond string, sc dsl.Scope) map[string]any {
	expr, err := query.Parse(cond)
	if err != nil {
		return nil
	}
	out := map[string]any{}
	for _, path := range expr.ParamPaths() {
		if v, ok := sc[path[0]]; ok {
			out[path[0]] = v
		}
	}
	return out
}
