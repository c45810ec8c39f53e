package web

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/workflows"
)

// These tests cover what the workflow API does without a Temporal server:
// definitions, input validation, the inbox's early refusals, runs as stored,
// notifications and credentials. Starting runs and completing tasks on a real server
// is internal/e2e's workflow_test.go.

const approvalWorkflow = `{
  "name": "approval", "title": "Approve a deal",
  "trigger": {"type": "manual"},
  "input": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number", "minimum": 0}}},
  "steps": [{"id": "approve", "type": "task", "title": "Approve", "assignee": {"role": "manager"}, "outcomes": ["approve", "reject"]}]
}`

// setupWorkflows is setup with the workflow routes mounted (and no Temporal).
func setupWorkflows(t *testing.T) *testBundle {
	b := setup(t)
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	eng := engine.New(b.pool, log)
	b.app = New(Deps{Pool: b.pool, Auth: auth.NewService(b.pool), Engine: eng, Logger: log, Registry: prometheus.NewRegistry(),
		Workflows: &workflows.Service{Pool: b.pool, Engine: eng, Log: log}})
	return b
}

// as returns a copy of the bundle signed in as a new user with roles.
func (b *testBundle) signedIn(email string, roles ...string) *testBundle {
	b.t.Helper()
	b.expect("POST", "/api/v1/users", map[string]any{"email": email, "password": testPassword, "roles": roles}, 201, nil)
	other := *b
	var out struct{ Token string }
	other.token = ""
	other.expect("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": testPassword}, 200, &out)
	other.token = out.Token
	return &other
}

func (b *testBundle) userID(email string) string {
	b.t.Helper()
	var id string
	if err := b.pool.QueryRow(context.Background(), `SELECT id FROM tessera.users WHERE email = $1`, email).Scan(&id); err != nil {
		b.t.Fatal(err)
	}
	return id
}

func TestWorkflowDefinitionVersions(t *testing.T) {
	b := setupWorkflows(t)
	var put struct {
		Version int
		Created bool
	}
	b.expect("PUT", "/api/v1/workflows/approval", approvalWorkflow, 201, &put)
	if put.Version != 1 || !put.Created {
		t.Fatalf("first put %+v", put)
	}
	b.expect("PUT", "/api/v1/workflows/approval", approvalWorkflow, 200, &put)
	if put.Version != 1 || put.Created {
		t.Fatalf("unchanged put %+v", put)
	}
	edited := strings.Replace(approvalWorkflow, `"Approve a deal"`, `"Approve a big deal"`, 1)
	b.expect("PUT", "/api/v1/workflows/approval", edited, 201, &put)
	if put.Version != 2 {
		t.Fatalf("edited put %+v", put)
	}
	var got struct {
		Version    int
		Definition struct{ Title string }
	}
	b.expect("GET", "/api/v1/workflows/approval", nil, 200, &got)
	if got.Version != 2 || got.Definition.Title != "Approve a big deal" {
		t.Fatalf("current %+v", got)
	}
	b.expect("GET", "/api/v1/workflows/approval?version=1", nil, 200, &got)
	if got.Version != 1 || got.Definition.Title != "Approve a deal" {
		t.Fatalf("version 1 %+v", got)
	}
	var list struct{ Items []workflows.Summary }
	b.expect("GET", "/api/v1/workflows", nil, 200, &list)
	if len(list.Items) != 1 || list.Items[0].Version != 2 {
		t.Fatalf("list %+v", list)
	}
	b.expect("GET", "/api/v1/workflows/nope", nil, 404, nil)
	b.signedIn("rep@example.com", "sales_rep").expect("PUT", "/api/v1/workflows/approval", approvalWorkflow, 403, nil)
}

func TestWorkflowDefinitionProblems(t *testing.T) {
	b := setupWorkflows(t)
	tests := []struct {
		name, url, body, path string
	}{
		{"unknown step type", "/api/v1/workflows/a", `{"name": "a", "trigger": {"type": "manual"}, "steps": [{"id": "x", "type": "teleport"}]}`, "/steps/0/type"},
		{"name differs from url", "/api/v1/workflows/b", `{"name": "a", "trigger": {"type": "manual"}, "steps": [{"id": "x", "type": "fail", "message": "m"}]}`, "/name"},
		{"unknown trigger entity", "/api/v1/workflows/a", `{"name": "a", "trigger": {"type": "record", "entity": "ghost", "on": ["create"]}, "steps": [{"id": "x", "type": "fail", "message": "m"}]}`, "/trigger/entity"},
		{"bad condition", "/api/v1/workflows/a", `{"name": "a", "trigger": {"type": "manual"}, "steps": [{"id": "x", "type": "fail", "message": "m", "if": "$input.a ="}]}`, "/steps/0/if"},
		{"task without outcomes", "/api/v1/workflows/a", `{"name": "a", "trigger": {"type": "manual"}, "steps": [{"id": "t", "type": "task", "title": "T", "assignee": {"user": "x@example.com"}}]}`, "/steps/0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e apiError
			b.expect("PUT", tc.url, tc.body, 422, &e)
			if !e.hasPath(tc.path) {
				t.Fatalf("no detail at %s: %+v", tc.path, e.Error.Details)
			}
		})
	}
}

func TestStartRunValidatesInput(t *testing.T) {
	b := setupWorkflows(t)
	b.expect("PUT", "/api/v1/workflows/approval", approvalWorkflow, 201, nil)
	var e apiError
	b.expect("POST", "/api/v1/workflows/approval/runs", map[string]any{"input": map[string]any{"amount": -5}}, 422, &e)
	if !e.hasPath("/input/amount") {
		t.Fatalf("details %+v", e.Error.Details)
	}
	b.expect("POST", "/api/v1/workflows/approval/runs", map[string]any{"input": map[string]any{}}, 422, &e)
	if !e.hasPath("/input") {
		t.Fatalf("details %+v", e.Error.Details)
	}
	// Valid input reaches the point where Temporal is needed.
	b.expect("POST", "/api/v1/workflows/approval/runs", map[string]any{"input": map[string]any{"amount": 5}}, 503, nil)
	b.expect("POST", "/api/v1/workflows/nope/runs", map[string]any{"input": map[string]any{}}, 404, nil)
}

// TestTaskInbox checks the inbox and the refusals the API gives before asking the run.
func TestTaskInbox(t *testing.T) {
	b := setupWorkflows(t)
	bob := b.signedIn("bob@example.com", "manager")
	carol := b.signedIn("carol@example.com", "sales_rep")
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO tessera.workflow_runs (id, workflow, version, actor) VALUES ('approval:1', 'approval', 1, NULL)`,
		`INSERT INTO tessera.workflow_tasks (id, run_id, step, title, assignee_role, outcomes, form) VALUES
		 ('0190a3c4-0000-7000-8000-000000000001', 'approval:1', 'approve', 'Approve Acme', 'manager', '{approve,reject}',
		  '{"type": "object", "required": ["note"], "properties": {"note": {"type": "string"}}}')`,
		`INSERT INTO tessera.workflow_tasks (id, run_id, step, title, assignee_role, outcomes, status) VALUES
		 ('0190a3c4-0000-7000-8000-000000000002', 'approval:1', 'done', 'Old', 'manager', '{ok}', 'completed')`,
	} {
		if _, err := b.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var inbox struct {
		Items []map[string]any
	}
	bob.expect("GET", "/api/v1/tasks?assignee=me&status=open", nil, 200, &inbox)
	if len(inbox.Items) != 1 {
		t.Fatalf("bob's inbox %+v", inbox)
	}
	item := inbox.Items[0]
	for _, k := range []string{"id", "run", "step", "title", "assignee", "outcomes", "form"} {
		if _, ok := item[k]; !ok {
			t.Errorf("inbox item lacks %q: %v", k, item)
		}
	}
	if item["run"] != "approval:1" || item["assignee"].(map[string]any)["role"] != "manager" {
		t.Fatalf("item %v", item)
	}
	carol.expect("GET", "/api/v1/tasks?assignee=me&status=open", nil, 200, &inbox)
	if len(inbox.Items) != 0 {
		t.Fatalf("carol sees %+v", inbox)
	}
	carol.expect("GET", "/api/v1/tasks?assignee=all", nil, 200, &inbox)
	if len(inbox.Items) != 0 {
		t.Fatalf("carol sees other people's tasks %+v", inbox)
	}
	b.expect("GET", "/api/v1/tasks?assignee=all", nil, 200, &inbox)
	if len(inbox.Items) != 2 {
		t.Fatalf("the admin sees %d tasks", len(inbox.Items))
	}
	open := "/api/v1/tasks/0190a3c4-0000-7000-8000-000000000001/complete"
	carol.expect("POST", open, map[string]any{"outcome": "approve", "data": map[string]any{"note": "x"}}, 403, nil)
	var e apiError
	bob.expect("POST", open, map[string]any{"outcome": "maybe", "data": map[string]any{"note": "x"}}, 422, &e)
	if !e.hasPath("/outcome") {
		t.Fatalf("details %+v", e.Error.Details)
	}
	bob.expect("POST", open, map[string]any{"outcome": "approve", "data": map[string]any{"note": 5}}, 422, &e)
	if !e.hasPath("/data/note") {
		t.Fatalf("details %+v", e.Error.Details)
	}
	bob.expect("POST", "/api/v1/tasks/0190a3c4-0000-7000-8000-000000000002/complete", map[string]any{"outcome": "ok"}, 409, nil)
	bob.expect("POST", "/api/v1/tasks/0190a3c4-0000-7000-8000-0000000000ff/complete", map[string]any{"outcome": "ok"}, 404, nil)
	carol.expect("POST", "/api/v1/tasks/0190a3c4-0000-7000-8000-000000000001/claim", nil, 403, nil)
	// The run itself is visible to bob through his task, not to carol.
	bob.expect("GET", "/api/v1/runs/approval:1", nil, 200, nil)
	carol.expect("GET", "/api/v1/runs/approval:1", nil, 404, nil)
}

func TestRunTimeline(t *testing.T) {
	b := setupWorkflows(t)
	ctx := context.Background()
	admin := b.userID(testAdmin)
	for _, q := range []string{
		`INSERT INTO tessera.workflow_runs (id, workflow, version, actor, status, error, ended_at) VALUES
		 ('w:1', 'w', 3, '` + admin + `', 'failed', '{"step": "charge", "message": "card declined"}', now())`,
		`INSERT INTO tessera.workflow_run_steps (run_id, key, step, type, status, position, seq, started_at, ended_at) VALUES
		 ('w:1', 'make', 'make', 'create', 'completed', 1, 2, now(), now())`,
		`INSERT INTO tessera.workflow_run_steps (run_id, key, step, type, status, position, seq, started_at, ended_at, error) VALUES
		 ('w:1', 'charge', 'charge', 'http', 'failed', 3, 4, now(), now(), 'card declined')`,
	} {
		if _, err := b.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var run struct {
		ID, Workflow, Status string
		Version              int
		Error                struct{ Step, Message string }
		Steps                []struct {
			ID, Type, Status, StartedAt, EndedAt string
			Error                                *string
		}
	}
	b.expect("GET", "/api/v1/runs/w:1", nil, 200, &run)
	if run.Workflow != "w" || run.Version != 3 || run.Status != "failed" || run.Error.Step != "charge" || len(run.Steps) != 2 ||
		run.Steps[1].ID != "charge" || run.Steps[1].Error == nil || *run.Steps[1].Error != "card declined" || run.Steps[0].StartedAt == "" {
		t.Fatalf("run %+v", run)
	}
	var page struct {
		Items []struct{ ID string }
		Total int
	}
	b.expect("GET", "/api/v1/runs?workflow=w&status=failed", nil, 200, &page)
	if page.Total != 1 || page.Items[0].ID != "w:1" {
		t.Fatalf("list %+v", page)
	}
	b.signedIn("x@example.com").expect("GET", "/api/v1/runs/w:1", nil, 404, nil)
}

func TestNotificationsAndCredentials(t *testing.T) {
	b := setupWorkflows(t)
	bob := b.signedIn("bob@example.com")
	if _, err := b.pool.Exec(context.Background(), `INSERT INTO tessera.notifications (id, user_id, title) VALUES
		('0190a3c4-0000-7000-8000-0000000000aa', $1, 'Deal won')`, b.userID("bob@example.com")); err != nil {
		t.Fatal(err)
	}
	var list struct{ Items []map[string]any }
	bob.expect("GET", "/api/v1/notifications?unread=1", nil, 200, &list)
	if len(list.Items) != 1 || list.Items[0]["title"] != "Deal won" {
		t.Fatalf("notifications %+v", list)
	}
	b.expect("POST", "/api/v1/notifications/0190a3c4-0000-7000-8000-0000000000aa/read", nil, 404, nil)
	bob.expect("POST", "/api/v1/notifications/0190a3c4-0000-7000-8000-0000000000aa/read", nil, 204, nil)
	bob.expect("GET", "/api/v1/notifications?unread=1", nil, 200, &list)
	if len(list.Items) != 0 {
		t.Fatalf("still unread %+v", list)
	}

	var e apiError
	b.expect("PUT", "/api/v1/credentials/crm", map[string]any{"type": "bearer", "secret": map[string]string{}}, 422, &e)
	if !e.hasPath("/secret/token") {
		t.Fatalf("details %+v", e.Error.Details)
	}
	b.expect("PUT", "/api/v1/credentials/crm", map[string]any{"type": "bearer", "secret": map[string]string{"token": "s3cret"}}, 200, nil)
	resp := b.expect("GET", "/api/v1/credentials", nil, 200, nil)
	if !strings.Contains(string(resp.Body), `"crm"`) || strings.Contains(string(resp.Body), "s3cret") {
		t.Fatalf("credentials %s", resp.Body)
	}
	bob.expect("GET", "/api/v1/credentials", nil, 403, nil)
}
