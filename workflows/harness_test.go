package workflows

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/internal/testpool"
	"github.com/tessera/tessera/workflows/dsl"
)

// dealEntity is the entity the interpreter tests write.
const dealEntity = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "deal", "titleField": "name"},
  "required": ["name"],
  "properties": {
    "name":   {"type": "string", "x-field-id": "d1"},
    "amount": {"type": "string", "format": "decimal", "x-field-id": "d2"},
    "stage":  {"enum": ["open", "won", "lost", "cancelled"], "default": "open", "x-field-id": "d3"},
    "note":   {"type": "string", "x-field-id": "d4"}
  }
}`

// bundle is what an interpreter test works with: a real database with the deal entity,
// the real activities, and users.
type bundle struct {
	t     testing.TB
	pool  *pgxpool.Pool
	eng   *engine.Engine
	users *auth.Service
	acts  *Activities
	admin auth.User
	// bob is a sales rep, carol a manager.
	bob, carol auth.User
}

func setup(t *testing.T) *bundle { return setupTB(t) }

// setupTB is setup for tests and benchmarks.
func setupTB(t testing.TB) *bundle {
	t.Helper()
	ctx := context.Background()
	pool := testpool.New(t)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	users := auth.NewService(pool)
	if _, _, err := users.Bootstrap(ctx, "admin@example.com", "a long admin password"); err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, pool: pool, eng: engine.New(pool, log), users: users}
	var err error
	if b.admin, err = users.UserByEmail(ctx, "admin@example.com"); err != nil {
		t.Fatal(err)
	}
	b.bob = b.user("bob@example.com", "sales_rep")
	b.carol = b.user("carol@example.com", "manager")
	if _, err := b.eng.PutEntity(ctx, engine.ActorFor(b.admin), "deal", []byte(dealEntity), engine.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	b.acts = &Activities{Engine: b.eng, Users: users, Pool: pool, Log: log}
	return b
}

func (b *bundle) user(email string, roles ...string) auth.User {
	b.t.Helper()
	ctx := context.Background()
	if _, err := b.users.CreateUser(ctx, auth.NewUser{Email: email, Password: "a long test password", Roles: roles}); err != nil {
		b.t.Fatal(err)
	}
	u, err := b.users.UserByEmail(ctx, email)
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// env is a fresh test environment with the interpreter and the real activities.
func (b *bundle) env(id string) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(nopLogger{})
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Interpret, workflow.RegisterOptions{Name: InterpreterWorkflow})
	b.acts.Register(env)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id})
	env.SetTestTimeout(2 * time.Minute)
	return env
}

// input builds a run input from a definition, checking the definition is valid.
func (b *bundle) input(def string, input map[string]any) RunInput {
	b.t.Helper()
	d, err := dsl.Parse([]byte(def))
	if err != nil {
		b.t.Fatalf("definition: %v", err)
	}
	return RunInput{Workflow: d.Name, Version: 1, Definition: json.RawMessage(def), Input: input, Actor: b.admin.ID.String()}
}

// run executes a definition to its end and returns the output (or the error).
func (b *bundle) run(id, def string, input map[string]any, setup ...func(*testsuite.TestWorkflowEnvironment)) (any, error) {
	b.t.Helper()
	return b.runInput(id, b.input(def, input), setup...)
}

// runInput executes a run input to its end and returns the output (or the error).
func (b *bundle) runInput(id string, in RunInput, setup ...func(*testsuite.TestWorkflowEnvironment)) (any, error) {
	b.t.Helper()
	env := b.env(id)
	for _, f := range setup {
		f(env)
	}
	env.ExecuteWorkflow(InterpreterWorkflow, in)
	if !env.IsWorkflowCompleted() {
		b.t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		return nil, err
	}
	var out RunOutput
	if err := env.GetWorkflowResult(&out); err != nil {
		b.t.Fatal(err)
	}
	return out.Output, nil
}

// runRow is what the runs table says about a run.
type runRow struct {
	Status string
	Error  map[string]any
	Output any
	Steps  map[string]string // key → status
}

func (b *bundle) runRow(id string) runRow {
	b.t.Helper()
	ctx := context.Background()
	var r runRow
	if err := b.pool.QueryRow(ctx, `SELECT status, error, output FROM tessera.workflow_runs WHERE id = $1`, id).Scan(&r.Status, &r.Error, &r.Output); err != nil {
		b.t.Fatalf("run %s: %v", id, err)
	}
	rows, err := b.pool.Query(ctx, `SELECT key, status FROM tessera.workflow_run_steps WHERE run_id = $1`, id)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	r.Steps = map[string]string{}
	for rows.Next() {
		var k, s string
		if err := rows.Scan(&k, &s); err != nil {
			b.t.Fatal(err)
		}
		r.Steps[k] = s
	}
	return r
}

func (b *bundle) count(sql string, args ...any) int {
	b.t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		b.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// expectSteps checks timeline statuses.
func (b *bundle) expectSteps(id string, want map[string]string) {
	b.t.Helper()
	got := b.runRow(id).Steps
	for k, v := range want {
		if got[k] != v {
			b.t.Errorf("run %s step %s: status %q, want %q (timeline %v)", id, k, got[k], v, got)
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// nopLogger keeps the SDK's per-event debug lines out of test output.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

func mustUUID(v any) uuid.UUID {
	return uuid.MustParse(v.(string))
}
