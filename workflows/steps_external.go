package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/workflows/dsl"
)

// HTTPInput is one call to an external system.
type HTTPInput struct {
	Call
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       any               `json:"body,omitempty"`
	Credential string            `json:"credential,omitempty"`
}

// HTTPOutput is the answer: status, body (JSON when it is JSON) and content type.
type HTTPOutput struct {
	Status      int    `json:"status"`
	Body        any    `json:"body,omitempty"`
	ContentType string `json:"contentType,omitempty"`
}

func (r *run) http(ctx workflow.Context, s *dsl.Step, key string, sc dsl.Scope) (map[string]any, error) {
	in := HTTPInput{Method: s.Method, Credential: s.Credential, Headers: map[string]string{}}
	if in.Method == "" {
		in.Method = "GET"
	}
	var err error
	if in.URL, err = sc.String(s.URL); err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(s.Headers)) {
		if in.Headers[k], err = sc.String(s.Headers[k]); err != nil {
			return nil, err
		}
	}
	if s.Body != nil {
		if in.Body, err = sc.Resolve(s.Body); err != nil {
			return nil, err
		}
	}
	in.Call = r.call(key)
	var out HTTPOutput
	if err := r.activity(ctx, s, ActHTTP, in, &out); err != nil {
		return nil, err
	}
	// "statusCode", because every step's "status" is its own (completed, skipped…).
	return map[string]any{"statusCode": out.Status, "body": out.Body, "contentType": out.ContentType}, nil
}

// NotifyInput is an in-app notification to a user (by email or id) or a role.
type NotifyInput struct {
	Call
	User   string `json:"user,omitempty"`
	UserID string `json:"userId,omitempty"`
	Role   string `json:"role,omitempty"`
	Title  string `json:"title"`
	Body   string `json:"body,omitempty"`
	Link   string `json:"link,omitempty"`
	Round  int    `json:"round,omitempty"`
	// Attempt keeps a retried run's notifications apart from the first attempt's.
	Attempt int `json:"attempt,omitempty"`
}

// NotifyOutput says how many people were notified.
type NotifyOutput struct {
	Notified int `json:"notified"`
}

func (r *run) notify(ctx workflow.Context, s *dsl.Step, key string, sc dsl.Scope) (map[string]any, error) {
	in := NotifyInput{Attempt: r.in.Attempt}
	var err error
	if in.User, in.Role, err = r.assignee(s.To, sc); err != nil {
		return nil, err
	}
	if in.Title, err = sc.Interpolate(s.Title); err != nil {
		return nil, err
	}
	if in.Body, err = sc.Interpolate(s.Message); err != nil {
		return nil, err
	}
	if in.Link, err = sc.Interpolate(s.Link); err != nil {
		return nil, err
	}
	in.Call = r.call(key)
	var out NotifyOutput
	if err := r.activity(ctx, s, ActNotify, in, &out); err != nil {
		return nil, err
	}
	return map[string]any{"notified": out.Notified}, nil
}

// ScriptInput runs a goja script as an activity: never inside workflow code.
type ScriptInput struct {
	Call
	Workflow string         `json:"workflow"`
	Step     string         `json:"step"`
	Source   string         `json:"source,omitempty"`
	Script   string         `json:"script,omitempty"`
	Vars     map[string]any `json:"vars"`
}

// ScriptOutput is the script's return value and console.
type ScriptOutput struct {
	Value   any      `json:"value,omitempty"`
	Console []string `json:"console,omitempty"`
}

func (r *run) script(ctx workflow.Context, s *dsl.Step, key string, sc dsl.Scope) (map[string]any, error) {
	args, err := sc.ResolveMap(s.With)
	if err != nil {
		return nil, err
	}
	vars := map[string]any{"input": sc["input"], "trigger": sc["trigger"], "steps": sc["steps"], "vars": sc["vars"], "args": args}
	if item, ok := sc["item"]; ok {
		vars["item"], vars["index"] = item, sc["index"]
	}
	in := ScriptInput{Call: r.call(key), Workflow: r.in.Workflow, Step: s.ID, Source: s.Source, Script: s.Script, Vars: vars}
	var out ScriptOutput
	if err := r.activity(ctx, s, ActScript, in, &out); err != nil {
		return nil, err
	}
	return map[string]any{"value": out.Value, "console": out.Console}, nil
}

// LoadInput names the workflow a subworkflow step starts.
type LoadInput struct {
	Call
	Workflow string `json:"workflow"`
}

// LoadOutput is the current version of a definition.
type LoadOutput struct {
	Version    int    `json:"version"`
	Definition []byte `json:"definition"`
	// Actor is the service identity the definition declares with runAs, if any.
	Actor string `json:"actor,omitempty"`
}

// subworkflow starts the current version of another workflow as a child run, and
// waits for it unless wait is false.
func (r *run) subworkflow(ctx workflow.Context, s *dsl.Step, key string, sc dsl.Scope) (map[string]any, error) {
	input, err := sc.ResolveMap(s.Input)
	if err != nil {
		return nil, err
	}
	var def LoadOutput
	if err := r.activity(ctx, s, ActLoadWorkflow, LoadInput{Call: r.call(key), Workflow: s.Workflow}, &def); err != nil {
		return nil, err
	}
	wait := s.Wait == nil || *s.Wait
	childID := r.id + "." + key
	opts := workflow.ChildWorkflowOptions{WorkflowID: childID}
	if !wait {
		opts.ParentClosePolicy = enums.PARENT_CLOSE_POLICY_ABANDON
	}
	cctx := workflow.WithChildOptions(ctx, opts)
	// A child acts as its parent does, unless it declares an identity of its own.
	childIn := RunInput{
		Workflow: s.Workflow, Version: def.Version, Definition: def.Definition, Input: input,
		Actor: r.in.Actor, Parent: r.id, HistoryLimit: r.in.HistoryLimit,
		StartedBy: r.in.StartedBy, RunAs: r.in.RunAs,
	}
	if def.Actor != "" {
		childIn.Actor, childIn.StartedBy, childIn.RunAs = def.Actor, r.in.startedBy(), true
	}
	child := workflow.ExecuteChildWorkflow(cctx, InterpreterWorkflow, childIn)
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Workflow, err)
	}
	if !wait {
		return map[string]any{"run": childID}, nil
	}
	var out RunOutput
	if err := child.Get(ctx, &out); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return nil, fmt.Errorf("%s failed: %s", s.Workflow, appErr.Message())
		}
		return nil, err
	}
	return map[string]any{"run": childID, "output": out.Output}, nil
}
