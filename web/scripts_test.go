package web

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

const invoiceDef = `{"type": "object", "x-entity": {"name": "invoice",
    "hooks": {"beforeSave": "invoice_totals", "afterSave": "invoice_follow_up", "beforeDelete": "invoice_keep_paid"}},
  "required": ["customer"],
  "properties": {
    "customer": {"type": "string", "x-field-id": "v1"},
    "discount": {"type": "string", "format": "percent", "x-field-id": "v2"},
    "status":   {"enum": ["open", "paid"], "default": "open", "x-field-id": "v3"},
    "total":    {"type": "string", "format": "money", "readOnly": true, "x-field-id": "v4"},
    "lines_count": {"type": "integer", "x-computed": "record.lines ? record.lines.length : 0", "x-field-id": "v6"},
    "lines":    {"type": "array", "x-child": {"entity": "invoice_line"}, "x-field-id": "v5",
      "items": {"type": "object", "required": ["qty", "price"], "properties": {
        "qty":   {"type": "integer", "x-field-id": "w1"},
        "price": {"type": "string", "format": "money", "x-field-id": "w2"}}}}
  }}`

const taskDef = `{"type": "object", "x-entity": {"name": "task"}, "required": ["title"], "properties": {
    "title": {"type": "string", "x-field-id": "t1"},
    "ref":   {"type": "string", "x-field-id": "t2"}}}`

func (b *testBundle) putScript(name, source string, extra ...map[string]any) {
	b.t.Helper()
	body := map[string]any{"source": source}
	for _, e := range extra {
		for k, v := range e {
			body[k] = v
		}
	}
	resp := b.request("PUT", "/api/v1/scripts/"+name, body)
	if resp.Status != 200 && resp.Status != 201 {
		b.t.Fatalf("put script %s: %d %s", name, resp.Status, resp.Body)
	}
}

func setupInvoices(t *testing.T) *testBundle {
	b := setup(t)
	b.putEntity(taskDef)
	b.putScript("invoice_totals", `
		let total = decimal(0);
		for (const l of record.lines || []) total = total.add(decimal(l.price).mul(l.qty));
		if (record.discount) {
			if (decimal(record.discount).gt(30)) error("/discount", "discounts above 30% need a manager");
			total = total.mul(decimal(100).sub(record.discount)).div(100, 2);
		}
		record.total = total.toFixed(2);
		console.log("total for", record.customer, "is", record.total);`)
	b.putScript("invoice_follow_up", `
		if (!old) db.create("task", {title: "Send invoice to " + record.customer, ref: record.id});`)
	b.putScript("invoice_keep_paid", `if (record.status === "paid") error("/status", "paid invoices are kept");`)
	b.putEntity(invoiceDef)
	return b
}

func TestHooksThroughAPI(t *testing.T) {
	b := setupInvoices(t)
	inv := b.create("invoice", map[string]any{"customer": "ACME", "discount": "10", "lines": []any{
		map[string]any{"qty": 3, "price": "0.10"}, map[string]any{"qty": 1, "price": "19.99"},
	}})
	if inv["total"] != "18.26" || inv["lines_count"] != float64(2) {
		t.Fatalf("beforeSave total / computed: %v %v", inv["total"], inv["lines_count"])
	}
	// A client may not set what the hook computes.
	b.expect("POST", "/api/v1/data/invoice", map[string]any{"customer": "X", "total": "1.00"}, 422, nil)

	var e apiError
	b.expect("POST", "/api/v1/data/invoice", map[string]any{"customer": "ACME", "discount": "45"}, 422, &e)
	if !e.hasPath("/discount") || !strings.Contains(e.Error.Details[0].Message, "manager") {
		t.Fatalf("rejection: %+v", e)
	}

	// afterSave created a follow-up task, once (not again on update).
	b.expect("PATCH", "/api/v1/data/invoice/"+inv["id"].(string), map[string]any{"status": "paid"}, 200, nil)
	var tasks struct {
		Items []map[string]any
		Total int
	}
	b.expect("GET", "/api/v1/data/task", nil, 200, &tasks)
	if tasks.Total != 1 || tasks.Items[0]["ref"] != inv["id"] {
		t.Fatalf("follow-up tasks: %+v", tasks)
	}
	// beforeDelete refuses.
	b.expect("DELETE", "/api/v1/data/invoice/"+inv["id"].(string), nil, 422, &e)
	if !e.hasPath("/status") {
		t.Fatalf("beforeDelete: %+v", e)
	}
	// console.log output is kept per call and readable.
	var logs struct {
		Items []struct{ Console []string }
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(logs.Items) == 0 && time.Now().Before(deadline) {
		b.expect("GET", "/api/v1/scripts/invoice_totals/logs", nil, 200, &logs)
		time.Sleep(20 * time.Millisecond)
	}
	if len(logs.Items) == 0 || !strings.Contains(strings.Join(logs.Items[len(logs.Items)-1].Console, ""), "total for ACME is 18.26") {
		t.Fatalf("logs: %+v", logs)
	}
}

func TestHookRecursionIsStopped(t *testing.T) {
	b := setup(t)
	b.putScript("ping_hook", `db.create("pong", {n: (record.n || 0) + 1})`)
	b.putScript("pong_hook", `db.create("ping", {n: record.n + 1})`)
	b.putEntity(`{"type": "object", "x-entity": {"name": "ping", "hooks": {"beforeSave": "ping_hook"}}, "properties": {"n": {"type": "integer", "x-field-id": "p1"}}}`)
	b.putEntity(`{"type": "object", "x-entity": {"name": "pong", "hooks": {"beforeSave": "pong_hook"}}, "properties": {"n": {"type": "integer", "x-field-id": "p1"}}}`)
	var e apiError
	b.expect("POST", "/api/v1/data/ping", map[string]any{"n": 0}, 422, &e)
	if len(e.Error.Details) != 1 || e.Error.Details[0].Code != "hook_depth" || !strings.Contains(e.Error.Details[0].Message, "deeper than 4") {
		t.Fatalf("recursion error: %+v", e.Error)
	}
	var n int
	if err := b.pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM data.ping) + (SELECT count(*) FROM data.pong)").Scan(&n); err != nil || n != 0 {
		t.Fatalf("recursion left %d rows (%v)", n, err)
	}
}

func TestHostileScriptsLeaveServerServing(t *testing.T) {
	b := setup(t)
	b.putEntity(taskDef)
	hostile := map[string]string{
		"loop":      `for (;;) {}`,
		"recursion": `function f() { return f() } f()`,
		"repeat":    `record.title = 'x'.repeat(1e9)`,
		"array":     `const a = []; for (;;) a.push(a.length)`,
		"require":   `require('fs').readFileSync('/etc/passwd')`,
		"escape":    `this.constructor.constructor('return process')().exit()`,
		"pollute":   `Object.prototype.hacked = true`,
	}
	for name, src := range hostile {
		var res struct {
			Error *struct{ Kind, Message string }
		}
		b.expect("POST", "/api/v1/scripts/test", map[string]any{"source": src, "record": map[string]any{"title": "t"}}, 200, &res)
		if res.Error == nil {
			t.Errorf("%s: the script was allowed", name)
		}
	}
	// As a hook, a hostile script fails the write with a located error, nothing else.
	b.putScript("slow", `for (;;) {}`, map[string]any{"budget_ms": 50})
	b.expect("PUT", "/api/v1/entities/slowthing", `{"type": "object", "x-entity": {"name": "slowthing", "hooks": {"beforeSave": "slow"}}, "properties": {"a": {"type": "string", "x-field-id": "a"}}}`, 201, nil)
	var e apiError
	start := time.Now()
	b.expect("POST", "/api/v1/data/slowthing", map[string]any{"a": "x"}, 422, &e)
	if e.Error.Code != "script_failed" || e.Error.Details[0].Code != "timeout" || time.Since(start) > 5*time.Second {
		t.Fatalf("slow hook: %+v after %s", e.Error, time.Since(start))
	}
	// Saving a broken or oversized script is refused with its position.
	b.expect("PUT", "/api/v1/scripts/broken", map[string]any{"source": "let x = ;"}, 422, &e)
	if !strings.Contains(e.Error.Message, ":1:") {
		t.Errorf("syntax error position: %+v", e.Error)
	}
	b.expect("PUT", "/api/v1/scripts/huge", map[string]any{"source": "//" + strings.Repeat("x", 10<<20)}, 422, nil)
	// The server still serves.
	b.create("task", map[string]any{"title": "still here"})
	var probe struct{ Record map[string]any }
	b.expect("POST", "/api/v1/scripts/test", map[string]any{"source": "record.p = ({}).hacked === undefined", "record": map[string]any{}}, 200, &probe)
	if probe.Record["p"] != true {
		t.Fatalf("prototype pollution survived: %v", probe.Record)
	}
}

func TestScriptDryRunAndEndpoint(t *testing.T) {
	b := setup(t)
	b.putEntity(taskDef)
	var res struct {
		Record  map[string]any
		Console []string
		Error   any
	}
	b.expect("POST", "/api/v1/scripts/test", map[string]any{
		"source": `const t = db.create("task", {title: "dry " + record.title}); record.created = t.title; console.log(db.list("task", "", {}).length)`,
		"entity": "task", "hook": "beforeSave", "record": map[string]any{"title": "run"},
	}, 200, &res)
	if res.Error != nil || res.Record["created"] != "dry run" || strings.Join(res.Console, "") != "1" {
		t.Fatalf("dry run: %+v", res)
	}
	var list struct{ Total int }
	b.expect("GET", "/api/v1/data/task", nil, 200, &list)
	if list.Total != 0 {
		t.Fatalf("dry run wrote %d tasks", list.Total)
	}

	b.putScript("open_tasks", `return {count: db.list("task", "title startsWith " + JSON.stringify(request.query.prefix || ""), {}).length, user: ctx.user.id}`,
		map[string]any{"module": "crm", "methods": []string{"GET"}})
	b.putScript("add_task", `return db.create("task", {title: request.body.title})`,
		map[string]any{"module": "crm", "methods": []string{"POST"}})
	var created map[string]any
	b.expect("POST", "/api/v1/x/crm/add_task", map[string]any{"title": "call back"}, 200, &created)
	if created["title"] != "call back" {
		t.Fatalf("endpoint create: %v", created)
	}
	var counted map[string]any
	b.expect("GET", "/api/v1/x/crm/open_tasks?prefix=call", nil, 200, &counted)
	if counted["count"] != float64(1) {
		t.Fatalf("endpoint query: %v", counted)
	}
	b.expect("GET", "/api/v1/x/crm/add_task", nil, 404, nil)
	b.expect("GET", "/api/v1/x/sales/open_tasks", nil, 404, nil)
}

// TestAdjustIsAtomic: db.adjust adds under the row lock, so concurrent writers that
// each add to one record all count, where get-then-update would lose some.
func TestAdjustIsAtomic(t *testing.T) {
	b := setup(t)
	b.putEntity(`{"type": "object", "x-entity": {"name": "counter"}, "properties": {
		"name":  {"type": "string", "x-field-id": "c1"},
		"total": {"type": "string", "format": "decimal", "x-field-id": "c2"},
		"count": {"type": "integer", "x-field-id": "c3"}}}`)
	b.putScript("entry_post", `db.adjust("counter", record.counter, {total: record.amount, count: 1})`)
	b.putEntity(`{"type": "object", "x-entity": {"name": "entry", "hooks": {"beforeSave": "entry_post"}}, "properties": {
		"counter": {"type": "string", "format": "uuid", "x-relation": {"entity": "counter"}, "x-field-id": "e1"},
		"amount":  {"type": "string", "format": "decimal", "x-field-id": "e2"}}}`)
	counter := b.create("counter", map[string]any{"name": "c", "total": "0.10"})
	id := counter["id"].(string)

	const writers = 24
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Alternating signs, exact decimals: 0.10 + 12 × 0.35 − 12 × 0.15 = 2.50.
			amount := "0.35"
			if i%2 == 1 {
				amount = "-0.15"
			}
			if r := b.request("POST", "/api/v1/data/entry", map[string]any{"counter": id, "amount": amount}); r.Status != 201 {
				t.Errorf("entry %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	var got map[string]any
	b.expect("GET", "/api/v1/data/counter/"+id, nil, 200, &got)
	if got["total"] != "2.50" || got["count"] != float64(writers) {
		t.Fatalf("after %d concurrent adjustments: total %v count %v, want 2.50 and %d", writers, got["total"], got["count"], writers)
	}

	// Adjusting what is not a number, or by what is not a number, is refused with the
	// field's path and changes nothing.
	for script, path := range map[string]string{
		`db.adjust("counter", record.counter, {name: "1"})`:     "/name",
		`db.adjust("counter", record.counter, {total: "lots"})`: "/total",
		`db.adjust("counter", record.counter, {count: "0.5"})`:  "/count",
		`db.adjust("counter", record.counter, {missing: "1"})`:  "/missing",
	} {
		b.putScript("entry_post", script)
		var e apiError
		b.expect("POST", "/api/v1/data/entry", map[string]any{"counter": id, "amount": "1"}, 422, &e)
		if raw, _ := json.Marshal(e); !strings.Contains(string(raw), path) {
			t.Errorf("%s: want a problem at %s, got %+v", script, path, e.Error)
		}
	}
	b.expect("GET", "/api/v1/data/counter/"+id, nil, 200, &got)
	if got["total"] != "2.50" || got["count"] != float64(writers) {
		t.Fatalf("a refused adjustment changed the counter: %v", got)
	}
}
