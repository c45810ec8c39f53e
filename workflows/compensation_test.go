package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

// sagaDef creates a deal and an order-like second deal, each with an undo, then waits
// on a task (for the cancellation test) and fails when told to.
const sagaDef = `{
  "name": "saga", "trigger": {"type": "manual"},
  "steps": [
    {"id": "deal", "type": "create", "entity": "deal", "data": {"name": "$input.name"},
     "compensate": [{"id": "undo_deal", "type": "update", "entity": "deal", "record": "$steps.deal.record.id", "data": {"stage": "cancelled", "note": "undone"}}]},
    {"id": "copy", "type": "create", "entity": "deal", "data": {"name": "{{ $input.name }} copy"},
     "compensate": [{"id": "undo_copy", "type": "update", "entity": "deal", "record": "$steps.copy.record.id", "data": {"stage": "lost"}},
                    {"id": "tell", "type": "notify", "to": {"user": "bob@example.com"}, "title": "{{ $steps.copy.record.name }} was undone"}]},
    {"id": "plain", "type": "set", "vars": {"x": 1}},
    {"id": "hold", "type": "task", "title": "Hold", "assignee": {"user": "bob@example.com"}, "outcomes": ["go"], "if": "$input.hold == true"},
    {"id": "stop", "type": "fail", "message": "cannot ship {{ $input.name }}", "if": "$input.fail == true"}
  ]}`

// TestCompensationOnFailure: a later step fails, and the completed steps' compensations
// run newest first; the run fails naming the failing step and cannot be retried.
func TestCompensationOnFailure(t *testing.T) {
	b := setup(t)
	_, err := b.run("saga-1", sagaDef, map[string]any{"name": "Acme", "fail": true})
	if err == nil || !strings.Contains(err.Error(), `step "stop" failed: cannot ship Acme`) {
		t.Fatalf("error %v", err)
	}
	if n := b.count(`SELECT count(*) FROM data.deal WHERE name = 'Acme' AND stage = 'cancelled' AND note = 'undone'`); n != 1 {
		t.Fatal("the first deal was not compensated")
	}
	if n := b.count(`SELECT count(*) FROM data.deal WHERE name = 'Acme copy' AND stage = 'lost'`); n != 1 {
		t.Fatal("the copy was not compensated")
	}
	if n := b.count(`SELECT count(*) FROM tessera.notifications WHERE title = 'Acme copy was undone'`); n != 1 {
		t.Fatal("the compensation's notification is missing")
	}
	row := b.runRow("saga-1")
	if row.Status != StatusFailed || row.Error["step"] != "stop" || row.Error["message"] != "cannot ship Acme" {
		t.Fatalf("run row %+v", row)
	}
	b.expectSteps("saga-1", map[string]string{"stop": "failed", "compensate.copy.undo_copy": "completed", "compensate.deal.undo_deal": "completed", "hold": "skipped"})
	var compensated bool
	var state []byte
	if err := b.pool.QueryRow(t.Context(), `SELECT compensated, state FROM tessera.workflow_runs WHERE id = 'saga-1'`).Scan(&compensated, &state); err != nil || !compensated || state != nil {
		t.Fatalf("compensated %v state %s (%v): a compensated run keeps no retry state", compensated, state, err)
	}
	// The undo of the copy ran before the undo of the deal.
	if b.count(`SELECT ((SELECT position FROM tessera.workflow_run_steps WHERE run_id = 'saga-1' AND key = 'compensate.copy.undo_copy') <
		(SELECT position FROM tessera.workflow_run_steps WHERE run_id = 'saga-1' AND key = 'compensate.deal.undo_deal'))::int`) != 1 {
		t.Fatal("compensations did not run newest first")
	}
}

// TestCancellation cancels a run waiting on a task: the task leaves the inbox, the
// compensations run, and the run ends cancelled.
func TestCancellation(t *testing.T) {
	b := setup(t)
	_, err := b.run("saga-2", sagaDef, map[string]any{"name": "Beta", "hold": true}, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(env.CancelWorkflow, 2*time.Hour)
	})
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("error %v", err)
	}
	if n := b.count(`SELECT count(*) FROM data.deal WHERE name = 'Beta' AND stage = 'cancelled'`); n != 1 {
		t.Fatal("the deal was not compensated")
	}
	if n := b.count(`SELECT count(*) FROM tessera.workflow_tasks WHERE run_id = 'saga-2' AND status = 'cancelled'`); n != 1 {
		t.Fatal("the task is still open")
	}
	row := b.runRow("saga-2")
	if row.Status != StatusCancelled {
		t.Fatalf("run row %+v", row)
	}
	b.expectSteps("saga-2", map[string]string{"hold": "cancelled", "compensate.deal.undo_deal": "completed"})
}

// TestFailWithoutCompensationKeepsRetryState: nothing to undo, so the run keeps the
// state a retry continues from.
func TestFailWithoutCompensationKeepsRetryState(t *testing.T) {
	b := setup(t)
	def := `{"name": "retryable", "trigger": {"type": "manual"},
	  "steps": [{"id": "one", "type": "set", "vars": {"a": 1}}, {"id": "two", "type": "fail", "message": "not yet", "if": "$vars.ok == nil"}]}`
	if _, err := b.run("retry-1", def, nil); err == nil {
		t.Fatal("no failure")
	}
	var next int
	if err := b.pool.QueryRow(t.Context(), `SELECT (state ->> 'next')::int FROM tessera.workflow_runs WHERE id = 'retry-1'`).Scan(&next); err != nil || next != 1 {
		t.Fatalf("state.next = %d (%v), want 1", next, err)
	}
}
