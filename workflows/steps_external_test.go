package workflows

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/workflows/dsl"
)

// TestHTTP calls a local server with a named credential: a 503 is retried, the JSON
// answer lands in $steps, and a 4xx fails the step without retrying.
func TestHTTP(t *testing.T) {
	b := setup(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"echo": ` + string(body) + `, "key": "` + r.Header.Get("Idempotency-Key") + `"}`))
	}))
	defer srv.Close()
	if _, err := b.pool.Exec(context.Background(), `INSERT INTO tessera.credentials (name, type, secret) VALUES ('crm', 'bearer', '{"token": "s3cret"}')`); err != nil {
		t.Fatal(err)
	}
	def := `{
	  "name": "call", "trigger": {"type": "manual"},
	  "output": {"status": "$steps.push.statusCode", "echo": "$steps.push.body.echo.name", "key": "$steps.push.body.key"},
	  "steps": [{"id": "push", "type": "http", "method": "POST", "url": "{{ $input.base }}/deals", "credential": "crm",
	    "retry": {"maxAttempts": 3, "initialInterval": "10ms"}, "body": {"name": "$input.name"}}]}`
	out, err := b.run("call-1", def, map[string]any{"base": srv.URL, "name": "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"echo":"Acme","key":"call-1/push","status":200}` || calls.Load() != 2 {
		t.Fatalf("output %s after %d calls", jsonString(out), calls.Load())
	}
	calls.Store(10)
	missing := strings.Replace(def, "/deals", "/missing", 1)
	_, err = b.run("call-2", missing, map[string]any{"base": srv.URL, "name": "Acme"})
	if err == nil || !strings.Contains(err.Error(), "answered 404") || calls.Load() != 11 {
		t.Fatalf("4xx: %v after %d calls", err, calls.Load()-10)
	}
}

// TestNotify writes one in-app notification per user with the role.
func TestNotify(t *testing.T) {
	b := setup(t)
	b.user("erin@example.com", "manager")
	def := `{
	  "name": "tell", "trigger": {"type": "manual"},
	  "output": {"n": "$steps.managers.notified"},
	  "steps": [{"id": "managers", "type": "notify", "to": {"role": "manager"}, "title": "Deal {{ $input.name }} won", "message": "by {{ $run.actor }}"},
	            {"id": "bob", "type": "notify", "to": {"user": "bob@example.com"}, "title": "Well done"}]}`
	out, err := b.run("tell", def, map[string]any{"name": "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"n":2}` {
		t.Fatalf("output %s", jsonString(out))
	}
	if n := b.count(`SELECT count(*) FROM tessera.notifications WHERE title = 'Deal Acme won' AND body = $1`, "by "+b.admin.ID.String()); n != 2 {
		t.Fatalf("%d manager notifications", n)
	}
	if n := b.count(`SELECT count(*) FROM tessera.notifications WHERE user_id = $1 AND title = 'Well done' AND run_id = 'tell'`, b.bob.ID); n != 1 {
		t.Fatalf("%d notifications for bob", n)
	}
}

// TestScript runs goja in an activity with the run's variables; error() fails the step.
func TestScript(t *testing.T) {
	b := setup(t)
	if _, err := b.eng.PutScript(context.Background(), engine.ActorFor(b.admin), "discount", engine.ScriptInput{Source: `return args.amount * 0.9`}); err != nil {
		t.Fatal(err)
	}
	def := `{
	  "name": "calc", "trigger": {"type": "manual"},
	  "output": {"double": "$steps.double.value", "discounted": "$steps.stored.value", "log": "$steps.double.console"},
	  "steps": [{"id": "double", "type": "script", "source": "console.log('n=' + input.n); return {n: input.n * 2, words: input.name.split(' ').length}"},
	            {"id": "stored", "type": "script", "script": "discount", "with": {"amount": "$steps.double.value.n"}},
	            {"id": "check", "type": "script", "source": "if (input.n > 5) error('/n', 'too big')"}]}`
	out, err := b.run("calc-1", def, map[string]any{"n": 4, "name": "a b c"})
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"discounted":7.2,"double":{"n":8,"words":3},"log":["n=4"]}` {
		t.Fatalf("output %s", jsonString(out))
	}
	_, err = b.run("calc-2", def, map[string]any{"n": 6, "name": "x"})
	if err == nil || !strings.Contains(err.Error(), `step "check" failed: /n: too big`) {
		t.Fatalf("error() in a script: %v", err)
	}
}

// TestSubworkflow starts the current version of another workflow as a child run and
// returns its output.
func TestSubworkflow(t *testing.T) {
	b := setup(t)
	child := `{"name": "child", "trigger": {"type": "manual"}, "output": {"greeting": "hello {{ $input.who }}"},
	  "steps": [{"id": "noop", "type": "set", "vars": {"x": 1}}]}`
	d, err := dsl.Parse([]byte(child))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := putVersion(context.Background(), b.pool, d, []byte(child), uuid.Nil); err != nil {
		t.Fatal(err)
	}
	def := `{
	  "name": "parent", "trigger": {"type": "manual"},
	  "output": {"child": "$steps.call.output.greeting", "run": "$steps.call.run"},
	  "steps": [{"id": "call", "type": "subworkflow", "workflow": "child", "input": {"who": "$input.name"}}]}`
	out, err := b.run("parent-1", def, map[string]any{"name": "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"child":"hello Ann","run":"parent-1.call"}` {
		t.Fatalf("output %s", jsonString(out))
	}
	var parent, wf string
	if err := b.pool.QueryRow(context.Background(), `SELECT parent, workflow FROM tessera.workflow_runs WHERE id = 'parent-1.call'`).Scan(&parent, &wf); err != nil || parent != "parent-1" || wf != "child" {
		t.Fatalf("child run row: %v %q %q", err, parent, wf)
	}
}
