package workflows

import (
	"context"
	"testing"
)

// TestRecordSteps creates, updates, reads and queries records through the engine,
// with set, condition and the output mapping around them.
func TestRecordSteps(t *testing.T) {
	b := setup(t)
	def := `{
	  "name": "records", "trigger": {"type": "manual"},
	  "input": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "amount": {"type": "string"}}},
	  "output": {"id": "$steps.make.record.id", "stage": "$steps.read.record.stage", "found": "$steps.find.count", "big": "$vars.big", "branch": "$steps.check.branch"},
	  "steps": [
	    {"id": "make", "type": "create", "entity": "deal", "data": {"name": "$input.name", "amount": "$input.amount"}},
	    {"id": "check", "type": "condition", "if": "$steps.make.record.amount > 1000",
	     "then": [{"id": "mark_big", "type": "set", "vars": {"big": true}}],
	     "else": [{"id": "mark_small", "type": "set", "vars": {"big": false}}]},
	    {"id": "win", "type": "update", "entity": "deal", "record": "$steps.make.record.id", "data": {"stage": "won", "note": "big={{ $vars.big }}"}},
	    {"id": "read", "type": "get", "entity": "deal", "record": "$steps.make.record.id"},
	    {"id": "find", "type": "query", "entity": "deal", "filter": "stage == \"won\" && name == $input.name", "limit": 10},
	    {"id": "never", "type": "fail", "message": "skipped", "if": "$steps.find.count == 0"}
	  ]}`
	out, err := b.run("records:1", def, map[string]any{"name": "Acme", "amount": "1500.00"})
	if err != nil {
		t.Fatal(err)
	}
	res := out.(map[string]any)
	if res["stage"] != "won" || res["big"] != true || res["branch"] != "then" || jsonString(res["found"]) != "1" {
		t.Fatalf("output %v", res)
	}
	if n := b.count(`SELECT count(*) FROM data.deal WHERE id = $1 AND note = 'big=true'`, res["id"]); n != 1 {
		t.Fatalf("deal rows: %d", n)
	}
	row := b.runRow("records:1")
	if row.Status != StatusCompleted || jsonString(row.Output) != jsonString(res) {
		t.Fatalf("run row %+v", row)
	}
	b.expectSteps("records:1", map[string]string{"make": "completed", "check": "completed", "mark_big": "completed",
		"win": "completed", "read": "completed", "find": "completed", "never": "skipped"})
	if _, ok := row.Steps["mark_small"]; ok {
		t.Fatal("the else branch ran")
	}
}

// TestCreateIsIdempotent runs the create activity twice with the same call, as a
// retry would: one record.
func TestCreateIsIdempotent(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	id := recordID(b.admin.CreatedAt, "run-1", "make").String()
	in := RecordInput{Call: Call{Run: "run-1", Key: "make", Actor: b.admin.ID.String()}, Entity: "deal", ID: id, Data: map[string]any{"name": "Once"}}
	first, err := b.acts.CreateRecord(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.acts.CreateRecord(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || second.Created || first.Record["id"] != id || second.Record["id"] != id {
		t.Fatalf("first %+v second %+v", first, second)
	}
	if n := b.count(`SELECT count(*) FROM data.deal`); n != 1 {
		t.Fatalf("%d deals after a retried create", n)
	}
	if n := b.count(`SELECT count(*) FROM tessera.outbox WHERE entity = 'deal'`); n != 1 {
		t.Fatalf("%d outbox rows after a retried create", n)
	}
}
