package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tessera/tessera/workflows"
)

const dealEntity = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "deal", "titleField": "name"},
  "required": ["name"],
  "properties": {
    "name":   {"type": "string", "x-field-id": "d1"},
    "amount": {"type": "string", "format": "decimal", "x-field-id": "d2"},
    "stage":  {"enum": ["open", "won", "lost"], "default": "open", "x-field-id": "d3"}
  }
}`

const dealLogEntity = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "deal_log", "titleField": "note"},
  "properties": {
    "note": {"type": "string", "x-field-id": "l1"},
    "deal": {"type": "string", "format": "uuid", "x-field-id": "l2"}
  }
}`

// onDeal logs every new deal once: the effect the exactly-once test counts.
const onDeal = `{
  "name": "on_deal", "title": "Log new deals",
  "trigger": {"type": "record", "entity": "deal", "on": ["create"]},
  "steps": [{"id": "log", "type": "create", "entity": "deal_log", "data": {"note": "new deal {{ $trigger.record.name }}", "deal": "$trigger.id"}}]
}`

// approval waits for bob; version 2 changes the output so the run shows which
// version it ran.
const approvalV1 = `{
  "name": "approval", "title": "Approve a deal",
  "trigger": {"type": "manual"},
  "input": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
  "output": {"version": "v1", "outcome": "$steps.approve.outcome", "note": "$steps.approve.data.note"},
  "steps": [
    {"id": "approve", "type": "task", "title": "Approve {{ $input.name }}", "assignee": {"user": "bob@example.com"}, "due": "7d",
     "outcomes": ["approve", "reject"], "form": {"type": "object", "properties": {"note": {"type": "string"}}}},
    {"id": "record", "type": "create", "entity": "deal", "data": {"name": "$input.name", "stage": "won"}, "if": "$steps.approve.outcome == \"approve\""}
  ]
}`

// saga holds on a task after creating a deal whose compensation marks it lost.
const saga = `{
  "name": "saga", "trigger": {"type": "manual"},
  "steps": [
    {"id": "deal", "type": "create", "entity": "deal", "data": {"name": "Saga deal"},
     "compensate": [{"id": "undo", "type": "update", "entity": "deal", "record": "$steps.deal.record.id", "data": {"stage": "lost"}}]},
    {"id": "hold", "type": "task", "title": "Hold", "assignee": {"role": "manager"}, "outcomes": ["go"]}
  ]
}`

// parent starts greet as a child run and returns its output.
const parent = `{
  "name": "parent", "trigger": {"type": "manual"},
  "output": {"greeting": "$steps.call.output.greeting"},
  "steps": [{"id": "call", "type": "subworkflow", "workflow": "greet", "input": {"who": "$input.who"}}]
}`

const greet = `{
  "name": "greet", "trigger": {"type": "manual"},
  "output": {"greeting": "hello {{ $input.who }}"},
  "steps": [{"id": "pause", "type": "wait", "duration": "1s"}, {"id": "mark", "type": "set", "vars": {"done": true}}]
}`

// flaky charges a payment service after creating a deal; while the service refuses
// (409), the run fails at "charge", and a retry continues from there without creating
// the deal again.
const flaky = `{
  "name": "flaky", "trigger": {"type": "manual"},
  "output": {"deal": "$steps.make.record.id", "charged": "$steps.charge.body.ok"},
  "steps": [
    {"id": "make", "type": "create", "entity": "deal", "data": {"name": "Flaky deal"}},
    {"id": "charge", "type": "http", "method": "POST", "url": "{{ $input.payments }}/charge", "body": {"deal": "$steps.make.record.id"}}
  ]
}`

type runView struct {
	ID, Workflow, Status string
	Version              int
	Output               map[string]any
	Error                map[string]any
	Steps                []struct{ ID, Type, Status, Error string }
}

// waitRun polls a run until it leaves running.
func (c *apiClient) waitRun(id string) runView {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var r runView
		if st := c.do("GET", "/api/v1/runs/"+id, nil, &r); st == 200 && r.Status != "running" {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("run %s still running after 2 minutes", id)
	return runView{}
}

func (c *apiClient) expect(method, path string, body any, want int, out any) {
	c.t.Helper()
	var raw json.RawMessage
	if st := c.do(method, path, body, &raw); st != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// TestWorkflowsEndToEnd runs workflows on the embedded Temporal server through the
// built binary and its HTTP API.
func TestWorkflowsEndToEnd(t *testing.T) {
	dir := dataDir(t)
	httpAddr, temporalAddr := freeAddr(t), freeAddr(t)
	args := []string{"serve", "--data-dir", dir, "--addr", httpAddr, "--temporal-listen", temporalAddr}

	// 1. A record change committed while nothing dispatches, then a crash.
	apiOnly := start(t, "serve-no-worker", adminEnv(), append(args, "--no-worker")...)
	apiOnly.waitReady(httpAddr)
	admin := newClient(t, httpAddr)
	admin.login(adminEmail, adminPassword)
	for _, u := range []map[string]any{
		{"email": "bob@example.com", "password": "a long password", "roles": []string{"manager"}},
		{"email": "carol@example.com", "password": "a long password", "roles": []string{"sales_rep"}},
	} {
		admin.expect("POST", "/api/v1/users", u, 201, nil)
	}
	admin.expect("PUT", "/api/v1/entities/deal", rawJSON(dealEntity), 201, nil)
	admin.expect("PUT", "/api/v1/entities/deal_log", rawJSON(dealLogEntity), 201, nil)
	admin.expect("PUT", "/api/v1/workflows/on_deal", rawJSON(onDeal), 201, nil)
	admin.expect("PUT", "/api/v1/workflows/approval", rawJSON(approvalV1), 201, nil)
	admin.expect("PUT", "/api/v1/workflows/saga", rawJSON(saga), 201, nil)
	admin.expect("PUT", "/api/v1/workflows/parent", rawJSON(parent), 201, nil)
	admin.expect("PUT", "/api/v1/workflows/greet", rawJSON(greet), 201, nil)
	admin.expect("PUT", "/api/v1/workflows/flaky", rawJSON(flaky), 201, nil)
	var deal struct{ ID string }
	admin.expect("POST", "/api/v1/data/deal", map[string]any{"name": "Acme"}, 201, &deal)
	if err := apiOnly.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-apiOnly.done

	// 2. Started again with its worker, the change starts its workflow exactly once.
	// The killed process's PostgreSQL stops on its own (parent-death signal); wait
	// for it as a supervisor restarting the service would.
	waitFree(t, httpAddr)
	for deadline := time.Now().Add(time.Minute); len(postgresFor(dir)) > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("postgres of the killed process still running: %v", postgresFor(dir))
		}
	}
	serve := start(t, "serve", adminEnv(), args...)
	serve.waitReady(httpAddr)
	admin.login(adminEmail, adminPassword)
	runID := fmt.Sprintf("on_deal:deal:%s:create:1", deal.ID)
	run := admin.waitRun(runID)
	if run.Status != "completed" || run.Version != 1 || len(run.Steps) != 1 || run.Steps[0].Status != "completed" {
		t.Fatalf("triggered run %+v", run)
	}
	time.Sleep(2 * time.Second) // a second start would have happened by now
	var runs struct {
		Items []struct{ ID string }
		Total int
	}
	admin.expect("GET", "/api/v1/runs?workflow=on_deal", nil, 200, &runs)
	var logs struct{ Items []map[string]any }
	admin.expect("GET", "/api/v1/data/deal_log", nil, 200, &logs)
	if runs.Total != 1 || len(logs.Items) != 1 || logs.Items[0]["note"] != "new deal Acme" {
		t.Fatalf("after the crash: %d runs, logs %v", runs.Total, logs.Items)
	}

	// 3. A human task: refused for the wrong user, completed by the right one, once;
	//    the definition edited meanwhile does not touch the running instance.
	bob, carol := newClient(t, httpAddr), newClient(t, httpAddr)
	bob.login("bob@example.com", "a long password")
	carol.login("carol@example.com", "a long password")
	var started struct {
		ID      string
		Version int
	}
	admin.expect("POST", "/api/v1/workflows/approval/runs", map[string]any{"input": map[string]any{"name": "Globex"}}, 201, &started)
	if started.Version != 1 {
		t.Fatalf("started %+v", started)
	}
	admin.expect("POST", "/api/v1/workflows/approval/runs", map[string]any{"input": map[string]any{"name": 5}}, 422, nil)
	task := bob.waitTask(started.ID, "")
	approvalV2 := strings.Replace(approvalV1, `"version": "v1"`, `"version": "v2"`, 1)
	var put struct{ Version int }
	admin.expect("PUT", "/api/v1/workflows/approval", rawJSON(approvalV2), 201, &put)
	if put.Version != 2 {
		t.Fatalf("edit: %+v", put)
	}
	complete := "/api/v1/tasks/" + task + "/complete"
	carol.expect("POST", complete, map[string]any{"outcome": "approve"}, 403, nil)
	bob.expect("POST", complete, map[string]any{"outcome": "perhaps"}, 422, nil)
	bob.expect("POST", complete, map[string]any{"outcome": "approve", "data": map[string]any{"note": 7}}, 422, nil)
	var done struct{ Status, Outcome string }
	bob.expect("POST", complete, map[string]any{"outcome": "approve", "data": map[string]any{"note": "go"}}, 200, &done)
	if done.Status != "completed" || done.Outcome != "approve" {
		t.Fatalf("completed task %+v", done)
	}
	bob.expect("POST", complete, map[string]any{"outcome": "reject"}, 409, nil)
	run = admin.waitRun(started.ID)
	if run.Status != "completed" || run.Version != 1 || run.Output["version"] != "v1" || run.Output["note"] != "go" {
		t.Fatalf("approval run %+v", run)
	}
	var second struct {
		ID      string
		Version int
	}
	admin.expect("POST", "/api/v1/workflows/approval/runs", map[string]any{"input": map[string]any{"name": "Initech"}}, 201, &second)
	if second.Version != 2 {
		t.Fatalf("a new run starts the new version: %+v", second)
	}
	admin.expect("POST", "/api/v1/runs/"+second.ID+"/terminate", map[string]any{"reason": "test over"}, 200, nil)

	// 4. Cancelling runs the compensation.
	var sagaRun struct{ ID string }
	admin.expect("POST", "/api/v1/workflows/saga/runs", nil, 201, &sagaRun)
	bob.waitTask(sagaRun.ID, "")
	admin.expect("POST", "/api/v1/runs/"+sagaRun.ID+"/cancel", nil, 202, nil)
	run = admin.waitRun(sagaRun.ID)
	if run.Status != "cancelled" {
		t.Fatalf("cancelled run %+v", run)
	}
	var lost struct{ Items []map[string]any }
	admin.expect("GET", "/api/v1/data/deal?filter="+urlEscape(`name == "Saga deal" && stage == "lost"`), nil, 200, &lost)
	if len(lost.Items) != 1 {
		t.Fatalf("compensation did not mark the deal lost: %v", lost.Items)
	}

	// 5. A child run.
	var parentRun struct{ ID string }
	admin.expect("POST", "/api/v1/workflows/parent/runs", map[string]any{"input": map[string]any{"who": "Ann"}}, 201, &parentRun)
	run = admin.waitRun(parentRun.ID)
	if run.Status != "completed" || run.Output["greeting"] != "hello Ann" {
		t.Fatalf("parent run %+v", run)
	}
	child := admin.waitRun(parentRun.ID + ".call")
	if child.Status != "completed" || child.Workflow != "greet" {
		t.Fatalf("child run %+v", child)
	}

	// 6. A failed run is retried from its failed step once the cause is fixed; the
	//    record its first step created is not created again.
	var accept atomic.Bool
	payments := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !accept.Load() {
			http.Error(w, "card declined", http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok": true}`))
	}))
	defer payments.Close()
	var flakyRun struct{ ID string }
	admin.expect("POST", "/api/v1/workflows/flaky/runs", map[string]any{"input": map[string]any{"payments": payments.URL}}, 201, &flakyRun)
	run = admin.waitRun(flakyRun.ID)
	if run.Status != "failed" || run.Error["step"] != "charge" || !strings.Contains(fmt.Sprint(run.Error["message"]), "answered 409") {
		t.Fatalf("flaky run %+v", run)
	}
	accept.Store(true)
	admin.expect("POST", "/api/v1/runs/"+flakyRun.ID+"/retry", nil, 202, nil)
	run = admin.waitRun(flakyRun.ID)
	var flakyDeals struct{ Items []struct{ ID string } }
	admin.expect("GET", "/api/v1/data/deal?filter="+urlEscape(`name == "Flaky deal"`), nil, 200, &flakyDeals)
	if run.Status != "completed" || run.Output["charged"] != true || len(flakyDeals.Items) != 1 || run.Output["deal"] != flakyDeals.Items[0].ID {
		t.Fatalf("retried run %+v, deals %+v", run, flakyDeals)
	}
	admin.expect("POST", "/api/v1/runs/"+flakyRun.ID+"/retry", nil, 409, nil)

	// 7. The histories of these runs replay against the interpreter as built now.
	for name, id := range map[string]string{"record_trigger": runID, "human_task": started.ID, "cancelled_saga": sagaRun.ID,
		"subworkflow_parent": parentRun.ID, "subworkflow_child": parentRun.ID + ".call"} {
		replay(t, temporalAddr, name, id)
	}
	serve.stop()
}

// replay fetches a run's history, replays it, and writes it to workflows/testdata when
// TESSERA_RECORD_HISTORIES=1 so workflows' replay test keeps it.
func replay(t *testing.T, addr, name, id string) {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		hist.Events = append(hist.Events, ev)
	}
	if os.Getenv("TESSERA_RECORD_HISTORIES") != "" {
		record(t, name, id, hist)
	}
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Interpret, workflow.RegisterOptions{Name: workflows.InterpreterWorkflow})
	// The run's own id: the interpreter derives record and task ids from it.
	opts := worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: id}}
	if err := r.ReplayWorkflowHistoryWithOptions(nil, hist, opts); err != nil {
		t.Errorf("replay %s (%s): %v", name, id, err)
	}
}

// record writes a history (and its workflow id, beside it) to workflows/testdata for
// the replay test there.
func record(t *testing.T, name, id string, hist *historypb.History) {
	t.Helper()
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "workflows", "testdata", "history_"+name+".json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(path, ".json")+".id", []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", path)
}

// waitFree waits until nothing listens on addr (the killed process's port).
func waitFree(t *testing.T, addr string) {
	t.Helper()
	for range 100 {
		if c, err := netDial(addr); err != nil {
			return
		} else {
			c.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s still in use", addr)
}

// rawJSON is a body sent as is.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func urlEscape(s string) string { return url.QueryEscape(s) }

func netDial(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, 200*time.Millisecond)
}
