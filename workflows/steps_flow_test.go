package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
)

func TestSwitch(t *testing.T) {
	b := setup(t)
	def := `{
	  "name": "route", "trigger": {"type": "manual"},
	  "output": {"tier": "$vars.tier", "case": "$steps.pick.case"},
	  "steps": [{"id": "pick", "type": "switch",
	    "cases": [{"when": "$input.amount >= 10000", "steps": [{"id": "gold", "type": "set", "vars": {"tier": "gold"}}]},
	              {"when": "$input.amount >= 1000", "steps": [{"id": "silver", "type": "set", "vars": {"tier": "silver"}}]}],
	    "default": [{"id": "bronze", "type": "set", "vars": {"tier": "bronze"}}]}]}`
	for amount, want := range map[float64]string{20000: `{"case":0,"tier":"gold"}`, 5000: `{"case":1,"tier":"silver"}`, 5: `{"case":"default","tier":"bronze"}`} {
		out, err := b.run("route", def, map[string]any{"amount": amount})
		if err != nil {
			t.Fatal(err)
		}
		if jsonString(out) != want {
			t.Errorf("amount %v: %s, want %s", amount, jsonString(out), want)
		}
	}
}

// TestParallelAll waits for both branches; the timers are skipped, not slept.
func TestParallelAll(t *testing.T) {
	b := setup(t)
	def := `{
	  "name": "both", "trigger": {"type": "manual"},
	  "output": {"a": "$vars.a", "b": "$vars.b"},
	  "steps": [{"id": "fan", "type": "parallel", "branches": [
	    {"name": "slow", "steps": [{"id": "wait_a", "type": "wait", "duration": "2h"}, {"id": "set_a", "type": "set", "vars": {"a": 1}}]},
	    {"name": "fast", "steps": [{"id": "wait_b", "type": "wait", "duration": "1h"}, {"id": "set_b", "type": "set", "vars": {"b": 2}}]}]}]}`
	start := time.Now()
	out, err := b.run("both", def, nil)
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"a":1,"b":2}` {
		t.Fatalf("output %s", jsonString(out))
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("timers were not skipped")
	}
}

// TestParallelFirst completes with the first branch and cancels the other.
func TestParallelFirst(t *testing.T) {
	b := setup(t)
	def := `{
	  "name": "race", "trigger": {"type": "manual"},
	  "output": {"winner": "$steps.race.branch", "late": "$vars.late"},
	  "steps": [{"id": "race", "type": "parallel", "mode": "first", "branches": [
	    {"name": "slow", "steps": [{"id": "wait_slow", "type": "wait", "duration": "3h"}, {"id": "late", "type": "set", "vars": {"late": true}}]},
	    {"name": "fast", "steps": [{"id": "wait_fast", "type": "wait", "duration": "1h"}]}]}]}`
	out, err := b.run("race", def, nil)
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"late":null,"winner":"fast"}` {
		t.Fatalf("output %s", jsonString(out))
	}
	b.expectSteps("race", map[string]string{"race": "completed", "wait_fast": "completed", "wait_slow": "cancelled"})
}

// TestParallelFailure fails the step when a branch fails and cancels the others.
func TestParallelFailure(t *testing.T) {
	b := setup(t)
	def := `{
	  "name": "broken", "trigger": {"type": "manual"},
	  "steps": [{"id": "fan", "type": "parallel", "branches": [
	    {"steps": [{"id": "wait_long", "type": "wait", "duration": "5h"}]},
	    {"steps": [{"id": "boom", "type": "fail", "message": "branch broke"}]}]}]}`
	_, err := b.run("broken", def, nil)
	if err == nil || !strings.Contains(err.Error(), `step "boom" failed: branch broke`) {
		t.Fatalf("error %v", err)
	}
	row := b.runRow("broken")
	if row.Status != StatusFailed || row.Error["step"] != "boom" {
		t.Fatalf("run row %+v", row)
	}
	b.expectSteps("broken", map[string]string{"fan": "failed", "boom": "failed", "wait_long": "cancelled"})
}

// TestForeach runs steps per item with $item, $index and the loop's own name.
func TestForeach(t *testing.T) {
	b := setup(t)
	def := `{
	  "name": "lines", "trigger": {"type": "manual"},
	  "output": {"count": "$steps.each.count", "last": "$vars.last"},
	  "steps": [{"id": "each", "type": "foreach", "items": "$input.names", "as": "name",
	    "steps": [{"id": "make", "type": "create", "entity": "deal", "data": {"name": "{{ $index }}:{{ $name }}"}},
	              {"id": "remember", "type": "set", "vars": {"last": "$item"}}]}]}`
	out, err := b.run("lines", def, map[string]any{"names": []any{"a", "b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if jsonString(out) != `{"count":3,"last":"c"}` {
		t.Fatalf("output %s", jsonString(out))
	}
	if n := b.count(`SELECT count(*) FROM data.deal WHERE name IN ('0:a', '1:b', '2:c')`); n != 3 {
		t.Fatalf("%d deals", n)
	}
	b.expectSteps("lines", map[string]string{"each": "completed", "each.0.make": "completed", "each.2.remember": "completed"})
}

// TestForeachContinuesAsNew: a long loop hands over to a new run with its variables
// and finishes there, with the records of each iteration written once.
func TestForeachContinuesAsNew(t *testing.T) {
	b := setup(t)
	def := `{
	  "name": "long", "trigger": {"type": "manual"},
	  "output": {"count": "$steps.each.count", "seen": "$vars.seen"},
	  "steps": [
	    {"id": "before", "type": "set", "vars": {"seen": "start"}},
	    {"id": "each", "type": "foreach", "items": "$input.names",
	     "steps": [{"id": "make", "type": "create", "entity": "deal", "data": {"name": "$item"}},
	               {"id": "note", "type": "set", "vars": {"seen": "$item"}}]}]}`
	in := b.input(def, map[string]any{"names": []any{"a", "b", "c"}})
	in.HistoryLimit = 1 // every iteration hands over
	runs := 0
	for {
		runs++
		env := b.env("long")
		env.SetCurrentHistoryLength(10) // the test environment keeps no history of its own
		env.ExecuteWorkflow(InterpreterWorkflow, in)
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
				t.Fatal(err)
			}
			if runs > 5 {
				t.Fatal("too many runs")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var out RunOutput
		if err := env.GetWorkflowResult(&out); err != nil {
			t.Fatal(err)
		}
		if jsonString(out.Output) != `{"count":3,"seen":"c"}` {
			t.Fatalf("output %s", jsonString(out.Output))
		}
		break
	}
	if runs != 3 {
		t.Fatalf("%d runs, want 3 (one per iteration after the first)", runs)
	}
	if n := b.count(`SELECT count(*) FROM data.deal`); n != 3 {
		t.Fatalf("%d deals", n)
	}
	b.expectSteps("long", map[string]string{"before": "completed", "each.0.make": "completed", "each.2.note": "completed", "each": "completed"})
}
