package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/tessera/tessera/engine"
)

// stepDuration is how long a step took in workflow time, from the timeline.
func (b *bundle) stepDuration(run, key string) time.Duration {
	b.t.Helper()
	var d time.Duration
	if err := b.pool.QueryRow(context.Background(), `SELECT ended_at - started_at FROM tessera.workflow_run_steps WHERE run_id = $1 AND key = $2`, run, key).Scan(&d); err != nil {
		b.t.Fatal(err)
	}
	return d
}

// TestWait sleeps for a duration and until a date, on skipped time.
func TestWait(t *testing.T) {
	b := setup(t)
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	def := `{
	  "name": "pause", "trigger": {"type": "manual"},
	  "steps": [{"id": "nap", "type": "wait", "duration": "1d2h"},
	            {"id": "until", "type": "wait", "until": "$input.until"}]}`
	_, err := b.run("pause", def, map[string]any{"until": "2026-03-05T08:00:00Z"}, func(env *testsuite.TestWorkflowEnvironment) { env.SetStartTime(start) })
	if err != nil {
		t.Fatal(err)
	}
	if d := b.stepDuration("pause", "nap"); d != 26*time.Hour {
		t.Fatalf("nap took %s", d)
	}
	// 2026-03-02 10:00 → 2026-03-05 08:00
	if d := b.stepDuration("pause", "until"); d != 70*time.Hour {
		t.Fatalf("until took %s", d)
	}
}

// TestWaitEventSignal waits for a named signal and gets its data; without the signal
// the wait times out and continues.
func TestWaitEventSignal(t *testing.T) {
	b := setup(t)
	def := `{
	  "name": "shipping", "trigger": {"type": "manual"},
	  "output": {"tracking": "$steps.shipped.data.tracking", "timedOut": "$steps.shipped.timedOut"},
	  "steps": [{"id": "shipped", "type": "wait_event", "signal": "shipped", "timeout": "2d", "onTimeout": "continue"}]}`
	out, err := b.run("ship-1", def, nil, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow("shipped", map[string]any{"tracking": "TR-1"}) }, 5*time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"timedOut":null,"tracking":"TR-1"}` {
		t.Fatalf("output %s", jsonString(out))
	}
	if d := b.stepDuration("ship-1", "shipped"); d != 5*time.Hour {
		t.Fatalf("waited %s", d)
	}
	out, err = b.run("ship-2", def, nil)
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"timedOut":true,"tracking":null}` {
		t.Fatalf("output after timeout %s", jsonString(out))
	}
	strict := strings.Replace(def, `"onTimeout": "continue"`, `"onTimeout": "fail"`, 1)
	if _, err := b.run("ship-3", strict, nil); err == nil || !strings.Contains(err.Error(), "no event within 2d") {
		t.Fatalf("strict timeout: %v", err)
	}
}

// TestWaitEventRecord waits for a record to reach a condition: registered in the
// waits table for the dispatcher, and answered at once when it already holds.
func TestWaitEventRecord(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	rec, err := b.eng.Create(ctx, engine.ActorFor(b.admin), "deal", []byte(`{"name": "Acme", "amount": "50"}`))
	if err != nil {
		t.Fatal(err)
	}
	deal, _ := decodeRecord(rec)
	def := `{
	  "name": "await_win", "trigger": {"type": "manual"},
	  "output": {"stage": "$steps.won.record.stage"},
	  "steps": [{"id": "won", "type": "wait_event", "entity": "deal", "record": "$input.deal", "until": "stage == \"won\" && amount >= $input.min"}]}`
	out, err := b.run("await-1", def, map[string]any{"deal": deal["id"], "min": "10"}, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() {
			if n := b.count(`SELECT count(*) FROM tessera.workflow_waits WHERE run_id = 'await-1' AND entity = 'deal' AND signal = 'tessera.record:won'`); n != 1 {
				t.Errorf("%d waits registered", n)
			}
			// What the dispatcher does when the record changes and matches.
			env.SignalWorkflow(recordSignalPrefix+"won", map[string]any{"id": deal["id"], "stage": "won"})
		}, time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"stage":"won"}` {
		t.Fatalf("output %s", jsonString(out))
	}
	if _, err := b.eng.Update(ctx, engine.ActorFor(b.admin), "deal", mustUUID(deal["id"]), []byte(`{"stage": "won"}`), nil); err != nil {
		t.Fatal(err)
	}
	out, err = b.run("await-2", def, map[string]any{"deal": deal["id"], "min": "10"})
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"stage":"won"}` {
		t.Fatalf("already matching: %s", jsonString(out))
	}
	if n := b.count(`SELECT count(*) FROM tessera.workflow_waits`); n != 0 {
		t.Fatalf("%d waits left", n)
	}
}
