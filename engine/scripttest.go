package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tessera/tessera/engine/script"
)

// ScriptTest is a dry run of a script against a fixture record.
type ScriptTest struct {
	// Source, or Name of a saved script.
	Source string         `json:"source"`
	Name   string         `json:"name"`
	Entity string         `json:"entity"`
	Hook   string         `json:"hook"`
	Record map[string]any `json:"record"`
	Old    map[string]any `json:"old"`
}

// ScriptTestResult is what the dry run produced.
type ScriptTestResult struct {
	Record  map[string]any      `json:"record"`
	Errors  []script.FieldError `json:"errors"`
	Console []string            `json:"console"`
	Error   *script.Error       `json:"error"`
	// DurationUS is how long the script ran, in microseconds.
	DurationUS int64 `json:"duration_us"`
}

// TestScript runs a script as its hook would run, inside a transaction that is always
// rolled back: db.create/update work and are visible to the script, then vanish.
func (e *Engine) TestScript(ctx context.Context, actor Actor, in ScriptTest) (*ScriptTestResult, error) {
	name, source, budget := "test", in.Source, script.DefaultBudget
	if in.Name != "" {
		s, err := e.GetScript(ctx, in.Name)
		if err != nil {
			return nil, err
		}
		name, source, budget = s.Name, s.Source, time.Duration(s.BudgetMS)*time.Millisecond
	}
	if source == "" {
		return nil, invalid("/source", "required", "send the script as source, or the name of a saved script")
	}
	if in.Entity != "" {
		if _, err := e.entity(ctx, e.pool, in.Entity); err != nil {
			return nil, err
		}
	}
	if in.Record == nil {
		in.Record = map[string]any{}
	}
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	t := &txn{tx: tx, actor: actor, after: &[]func(context.Context){}}
	res, err := e.scripts.Run(ctx, script.Call{
		Name: name, Source: source, Budget: budget, Record: in.Record, Old: in.Old,
		DB:      &scriptDB{e: e, ctx: ctx, t: t},
		Context: map[string]any{"user": userJSON(actor), "entity": in.Entity, "hook": in.Hook, "dryRun": true},
	})
	out := &ScriptTestResult{Errors: []script.FieldError{}, Console: []string{}}
	var se *script.Error
	switch {
	case errors.As(err, &se):
		out.Error, out.Console = se, se.Console
		if out.Console == nil {
			out.Console = []string{}
		}
	case err != nil:
		return nil, err
	default:
		out.Record, out.Errors, out.Console, out.DurationUS = res.Record, res.Errors, res.Console, res.Duration.Microseconds()
	}
	return out, nil
}

// EndpointRequest is what an endpoint script sees as `request`.
type EndpointRequest struct {
	Method string         `json:"method"`
	Query  map[string]any `json:"query"`
	Body   any            `json:"body"`
}

// RunEndpoint serves /api/v1/x/{module}/{name}: the module's script runs as the caller,
// in a transaction committed when it succeeds (read-only for GET).
func (e *Engine) RunEndpoint(ctx context.Context, actor Actor, module, name string, req EndpointRequest) (any, error) {
	s, err := e.endpointScript(ctx, module, name, req.Method)
	if err != nil {
		return nil, err
	}
	var value any
	run := func(t *txn) error {
		res, err := e.scripts.Run(ctx, script.Call{
			Name: s.Name, Source: s.Source, Budget: time.Duration(s.BudgetMS) * time.Millisecond,
			DB:      &scriptDB{e: e, ctx: ctx, t: t},
			Context: map[string]any{"user": userJSON(actor), "module": module},
			Vars:    map[string]any{"request": map[string]any{"method": req.Method, "query": req.Query, "body": req.Body}},
		})
		if err != nil {
			var se *script.Error
			if errors.As(err, &se) {
				e.logScriptCall(s, "endpoint", "", nil, se.Console, se, 0)
				return &ScriptFailure{Err: se}
			}
			return err
		}
		e.logScriptCall(s, "endpoint", "", nil, res.Console, nil, res.Duration)
		if len(res.Errors) > 0 {
			return &ValidationError{Problems: fieldProblems(res.Errors)}
		}
		value = res.Value
		return nil
	}
	if req.Method == "GET" {
		err = e.readOnly(ctx, actor, fmt.Sprintf("GET %s/%s may not write; declare POST for endpoints that change data", module, name), run)
	} else {
		_, err = e.write(ctx, actor, nil, func(t *txn) (json.RawMessage, error) { return nil, run(t) })
	}
	if err != nil {
		return nil, err
	}
	return value, nil
}

// RunScript runs a script as actor with db bound read-only: what a workflow's script
// step runs. A workflow writes through its record steps, which are idempotent when
// Temporal retries an activity; a write from the script would be repeated.
func (e *Engine) RunScript(ctx context.Context, actor Actor, call script.Call) (*script.Result, error) {
	var res *script.Result
	err := e.readOnly(ctx, actor, "a workflow script may not write; use create and update steps", func(t *txn) error {
		call.DB = &scriptDB{e: e, ctx: ctx, t: t}
		var err error
		res, err = e.scripts.Run(ctx, call)
		return err
	})
	return res, err
}

// readOnly runs fn in a transaction PostgreSQL refuses writes in; a write attempt
// answers refusal as a validation error.
func (e *Engine) readOnly(ctx context.Context, actor Actor, refusal string, fn func(t *txn) error) error {
	_, err := e.write(ctx, actor, nil, func(t *txn) (json.RawMessage, error) {
		if _, err := t.tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			return nil, err
		}
		return nil, fn(t)
	})
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && pgErr.SQLState() == "25006" {
		return invalid("", "read_only", refusal)
	}
	return err
}
