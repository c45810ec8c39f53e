package workflows

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/temporal"

	"github.com/tessera/tessera/engine/script"
	"github.com/tessera/tessera/workflows/dsl"
)

// scriptBudget is a workflow script's time budget: more than a record hook gets,
// since nothing waits on it inside a transaction.
const scriptBudget = time.Second

// Script runs a goja script with the run's variables (input, trigger, steps, vars,
// args, item) and db for reading as the run's actor, and returns what it returns.
// Scripts run here, in an activity, never in workflow code: they are not deterministic.
func (a *Activities) Script(ctx context.Context, in ScriptInput) (ScriptOutput, error) {
	actor, err := a.beginAs(ctx, in.Call)
	if err != nil {
		return ScriptOutput{}, err
	}
	source, budget, name := in.Source, scriptBudget, "workflow:"+in.Workflow+"/"+in.Step
	if in.Script != "" {
		s, err := a.Engine.GetScript(ctx, in.Script)
		if err != nil {
			return ScriptOutput{}, appError(err)
		}
		source, name = s.Source, s.Name
		if s.BudgetMS > 0 {
			budget = time.Duration(s.BudgetMS) * time.Millisecond
		}
	}
	res, err := a.Engine.RunScript(ctx, actor, script.Call{
		Name: name, Source: source, Mode: script.ModeHook, Budget: budget, Vars: in.Vars,
		Context: map[string]any{"user": map[string]any{"id": in.Actor}, "workflow": in.Workflow, "run": in.Run, "step": in.Step},
	})
	if err != nil {
		return ScriptOutput{}, appError(err)
	}
	if len(res.Errors) > 0 {
		msgs := make([]string, len(res.Errors))
		for i, e := range res.Errors {
			msgs[i] = strings.TrimPrefix(e.Path+": ", ": ") + e.Message
		}
		return ScriptOutput{}, temporal.NewNonRetryableApplicationError(strings.Join(msgs, "; "), errScript, nil)
	}
	return ScriptOutput{Value: res.Value, Console: res.Console}, nil
}

// maxHTTPBody bounds what an HTTP step keeps of an answer.
const maxHTTPBody = 1 << 20

// HTTPCall calls an external system. 5xx, 429 and network errors are retried (the
// step's retry policy); other 4xx answers fail the step at once. Credentials are
// looked up by name here, so they never enter the workflow history.
func (a *Activities) HTTPCall(ctx context.Context, in HTTPInput) (HTTPOutput, error) {
	if err := a.begin(ctx, in.Call); err != nil {
		return HTTPOutput{}, err
	}
	var body io.Reader
	contentType := ""
	switch b := in.Body.(type) {
	case nil:
	case string:
		body, contentType = strings.NewReader(b), "text/plain; charset=utf-8"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return HTTPOutput{}, configError("http body: %v", err)
		}
		body, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, in.Method, in.URL, body)
	if err != nil {
		return HTTPOutput{}, configError("http request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, k := range slices.Sorted(maps.Keys(in.Headers)) {
		req.Header.Set(k, in.Headers[k])
	}
	// Lets the receiver drop a repeated delivery of the same step.
	req.Header.Set("Idempotency-Key", in.Run+"/"+in.Key)
	if in.Credential != "" {
		if err := a.authorize(ctx, req, in.Credential); err != nil {
			return HTTPOutput{}, err
		}
	}
	client := a.HTTP
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return HTTPOutput{}, fmt.Errorf("%s %s: %w", in.Method, in.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if err != nil {
		return HTTPOutput{}, fmt.Errorf("read answer of %s: %w", in.URL, err)
	}
	out := HTTPOutput{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: string(data)}
	if mt, _, _ := mime.ParseMediaType(out.ContentType); strings.HasSuffix(mt, "json") && len(data) > 0 {
		var v any
		if json.Unmarshal(data, &v) == nil {
			out.Body = v
		}
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return HTTPOutput{}, fmt.Errorf("%s %s answered %d", in.Method, in.URL, resp.StatusCode)
	case resp.StatusCode >= 400:
		return HTTPOutput{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s %s answered %d: %.200s", in.Method, in.URL, resp.StatusCode, data), errHTTPClient, nil)
	}
	return out, nil
}

// Credential types stored in tessera.credentials.
const (
	CredentialBearer = "bearer"
	CredentialBasic  = "basic"
	CredentialHeader = "header"
)

// authorize adds a named credential to a request: from tessera.credentials, else from
// the environment variable TESSERA_CREDENTIAL_<NAME> (a bearer token).
func (a *Activities) authorize(ctx context.Context, req *http.Request, name string) error {
	var (
		typ    string
		secret map[string]string
	)
	err := a.Pool.QueryRow(ctx, `SELECT type, secret FROM tessera.credentials WHERE name = $1`, name).Scan(&typ, &secret)
	if errors.Is(err, pgx.ErrNoRows) {
		token := os.Getenv("TESSERA_CREDENTIAL_" + strings.ToUpper(name))
		if token == "" {
			return configError("no credential named %q", name)
		}
		typ, secret = CredentialBearer, map[string]string{"token": token}
	} else if err != nil {
		return fmt.Errorf("load credential %q: %w", name, err)
	}
	switch typ {
	case CredentialBearer:
		req.Header.Set("Authorization", "Bearer "+secret["token"])
	case CredentialBasic:
		req.SetBasicAuth(secret["username"], secret["password"])
	case CredentialHeader:
		req.Header.Set(secret["header"], secret["value"])
	default:
		return configError("credential %q has unknown type %q", name, typ)
	}
	return nil
}

// WaitRegister records that the run waits for a record to match a condition, then
// checks the record as it is now: registering first means a change committed in
// between is either seen here or signalled by the dispatcher.
func (a *Activities) WaitRegister(ctx context.Context, in WaitInput) (WaitOutput, error) {
	if err := a.begin(ctx, in.Call); err != nil {
		return WaitOutput{}, err
	}
	id, err := parseRecordID(in.ID)
	if err != nil {
		return WaitOutput{}, err
	}
	params, err := json.Marshal(in.Params)
	if err != nil {
		return WaitOutput{}, err
	}
	if _, err := a.Pool.Exec(ctx, `INSERT INTO tessera.workflow_waits (run_id, signal, entity, record_id, condition, params)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, signal) DO NOTHING`, in.Run, in.Signal, in.Entity, id, in.Condition, params); err != nil {
		return WaitOutput{}, fmt.Errorf("register wait: %w", err)
	}
	actor, err := a.actor(ctx, in.Actor)
	if err != nil {
		return WaitOutput{}, err
	}
	rec, err := a.Engine.Get(ctx, actor, in.Entity, id, engineGetOptions)
	if err != nil {
		return WaitOutput{}, appError(err)
	}
	ok, err := matchRecord(ctx, a.Engine, in.Entity, in.Condition, rec, in.Params)
	if err != nil {
		return WaitOutput{}, configError("wait condition: %v", err)
	}
	if !ok {
		return WaitOutput{}, nil
	}
	if _, err := a.Pool.Exec(ctx, `DELETE FROM tessera.workflow_waits WHERE run_id = $1 AND signal = $2`, in.Run, in.Signal); err != nil {
		return WaitOutput{}, err
	}
	out, err := decodeRecord(rec)
	return WaitOutput{Matched: true, Record: out}, err
}

// WaitClear forgets a wait that timed out.
func (a *Activities) WaitClear(ctx context.Context, in WaitInput) error {
	if err := a.begin(ctx, in.Call); err != nil {
		return err
	}
	_, err := a.Pool.Exec(ctx, `DELETE FROM tessera.workflow_waits WHERE run_id = $1 AND signal = $2`, in.Run, in.Signal)
	return err
}

// LoadWorkflow reads the current version of a definition for a subworkflow step.
func (a *Activities) LoadWorkflow(ctx context.Context, in LoadInput) (LoadOutput, error) {
	if err := a.begin(ctx, in.Call); err != nil {
		return LoadOutput{}, err
	}
	v, err := loadVersion(ctx, a.Pool, in.Workflow, 0)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return LoadOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), errNotFound, nil)
		}
		return LoadOutput{}, err
	}
	out := LoadOutput{Version: v.Version, Definition: v.Definition}
	if def, err := dsl.Decode(v.Definition); err == nil && def.RunAs != nil {
		out.Actor = ServiceUserID(in.Workflow).String()
	}
	return out, nil
}
