package script

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func run(t *testing.T, r *Runner, src string, rec map[string]any) (*Result, *Error) {
	t.Helper()
	res, err := r.Run(context.Background(), Call{Name: "test.js", Source: src, Record: rec})
	if err == nil {
		return res, nil
	}
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	return nil, se
}

func TestHookChangesRecordExactly(t *testing.T) {
	r := NewRunner(2)
	res, err := run(t, r, `
		let total = decimal(0);
		for (const l of record.lines) total = total.add(decimal(l.price).mul(l.qty));
		record.total = total.toFixed(2);
		record.count = record.lines.length;
		console.log("total", total, {n: record.count});
	`, map[string]any{"lines": []any{
		map[string]any{"price": "0.10", "qty": json.Number("3")},
		map[string]any{"price": "19.99", "qty": json.Number("1")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Record["total"] != "20.29" || res.Record["count"] != json.Number("2") {
		t.Fatalf("record %v", res.Record)
	}
	if len(res.Console) != 1 || res.Console[0] != `total 20.29 {"n":2}` {
		t.Fatalf("console %q", res.Console)
	}
}

func TestFieldErrors(t *testing.T) {
	r := NewRunner(1)
	res, err := run(t, r, `if (!record.email) error("email", "an email is required for customers"); error("/lines/0/qty", "too many")`, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 2 || res.Errors[0].Path != "/email" || res.Errors[1].Path != "/lines/0/qty" {
		t.Fatalf("errors %+v", res.Errors)
	}
}

func TestErrorsNameLineAndColumn(t *testing.T) {
	r := NewRunner(1)
	_, err := run(t, r, "let a = 1;\nlet b = a +;\n", nil)
	if err == nil || err.Kind != "syntax" || err.Line != 2 {
		t.Fatalf("syntax error: %+v", err)
	}
	_, err = run(t, r, "function f() {\n  return record.x.y;\n}\nf();", map[string]any{})
	if err == nil || err.Kind != "runtime" || err.Line != 2 || err.Column != 19 || !strings.Contains(err.Stack, "at f (test.js:2:19)") {
		t.Fatalf("runtime error: %+v", err)
	}
	_, err = run(t, r, `throw new Error("no discount above 30%")`, map[string]any{})
	if err == nil || !strings.Contains(err.Message, "no discount above 30%") || err.Line != 1 || err.Column != 7 {
		t.Fatalf("thrown error: %+v", err)
	}
}

// TestAbuse runs hostile scripts; each must fail with a clear error and leave the
// runner serving.
func TestAbuse(t *testing.T) {
	r := NewRunner(2)
	cases := []struct {
		name, src, kind, message string
	}{
		{"infinite loop", `for (;;) {}`, "timeout", "budget"},
		{"deep recursion", `function f(n) { return f(n + 1) + 1 } f(0)`, "stack_overflow", "call stack"},
		{"huge string", `'x'.repeat(1e9)`, "limit", "string too long"},
		{"huge padStart", `''.padStart(1e9, 'ab')`, "limit", "string too long"},
		{"string doubling", `let s = 'x'; for (let i = 0; i < 40; i++) s += s;`, "timeout", "budget"},
		{"huge array", `const a = []; for (;;) a.push({x: 1});`, "timeout", "budget"},
		{"require", `require('fs')`, "runtime", "require is not defined"},
		{"process", `process.exit(1)`, "runtime", "process is not defined"},
		{"constructor escape", `this.constructor.constructor('return process')()`, "runtime", "undefined"},
		{"function escape", `(function(){}).constructor('return process')()`, "runtime", "process is not defined"},
		{"global write", `globalThis.leak = 1`, "runtime", "TypeError"},
		{"prototype pollution", `Object.prototype.polluted = true`, "runtime", "TypeError"},
		{"array prototype", `Array.prototype.push = function () {}`, "runtime", "TypeError"},
		{"fetch", `fetch("http://example.com")`, "runtime", "fetch is not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := run(t, r, tc.src, map[string]any{})
			if err == nil {
				t.Fatal("the script was allowed")
			}
			if err.Kind != tc.kind || !strings.Contains(err.Message, tc.message) {
				t.Fatalf("got %s %q, want %s containing %q", err.Kind, err.Message, tc.kind, tc.message)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
	big := "// " + strings.Repeat("x", 10<<20)
	if _, err := run(t, r, big, nil); err == nil || err.Kind != "limit" {
		t.Fatalf("10 MB source: %+v", err)
	}
	// The runner still serves, on the same pooled runtimes.
	for range 4 {
		res, err := run(t, r, `record.ok = 1 + 1`, map[string]any{})
		if err != nil || res.Record["ok"] != json.Number("2") {
			t.Fatalf("after abuse: %+v %+v", res, err)
		}
	}
	runtime.GC()
}

func TestNothingLeaksBetweenCalls(t *testing.T) {
	r := NewRunner(1) // one runtime: every call reuses it
	steps := []string{
		`var leaked = 1; this.leaked2 = 2; try { globalThis.leaked3 = 3 } catch (e) {}`,
		`try { Object.prototype.polluted = 1 } catch (e) {} try { Object.defineProperty(Array.prototype, "bad", {value: 1}) } catch (e) {}`,
		`try { JSON.parse = () => 1 } catch (e) {} try { Math.random = () => 4 } catch (e) {}`,
	}
	for _, src := range steps {
		if _, err := run(t, r, src, map[string]any{}); err != nil && err.Kind != "runtime" {
			t.Fatalf("%s: %+v", src, err)
		}
	}
	res, err := run(t, r, `record.seen = [typeof leaked, typeof globalThis.leaked2, typeof globalThis.leaked3,
		({}).polluted === undefined, [].bad === undefined, JSON.parse("2"), Math.random() !== 4].join(",")`, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Record["seen"] != "undefined,undefined,undefined,true,true,2,true" {
		t.Fatalf("leaked: %v", res.Record["seen"])
	}
}

func TestExpressionsAndVars(t *testing.T) {
	r := NewRunner(1)
	res, err := r.Run(context.Background(), Call{Name: "expr", Mode: ModeExpression,
		Source: `decimal(record.qty).mul(record.price).round(2)`, Record: map[string]any{"qty": json.Number("3"), "price": "0.333"}})
	if err != nil || res.Value != "1" {
		t.Fatalf("expression: %+v %v", res, err)
	}
	res, err = r.Run(context.Background(), Call{Name: "vars", Source: `return request.query.n * 2`, Vars: map[string]any{"request": map[string]any{"query": map[string]any{"n": json.Number("21")}}}})
	if err != nil || res.Value != json.Number("42") {
		t.Fatalf("vars: %+v %v", res, err)
	}
	_, err = r.Run(context.Background(), Call{Name: "nodb", Source: `db.get("x", "y")`})
	if err == nil || !strings.Contains(err.Error(), "db is not available") {
		t.Fatalf("db without DB: %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	r := NewRunner(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := r.Run(ctx, Call{Name: "c", Source: `for (;;) {}`, Budget: 5 * time.Second})
	var se *Error
	if !errors.As(err, &se) || se.Kind != "timeout" {
		t.Fatalf("cancel: %v", err)
	}
}

func BenchmarkPooledHook(b *testing.B) {
	r := NewRunner(4)
	for b.Loop() {
		if _, err := r.Run(context.Background(), Call{Name: "b", Source: `record.total = decimal(record.a).add(record.b).toString()`,
			Record: map[string]any{"a": "1.10", "b": "2.20"}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFreshRuntime(b *testing.B) {
	r := NewRunner(0)
	r.Fresh = true
	for b.Loop() {
		if _, err := r.Run(context.Background(), Call{Name: "b", Source: `record.total = decimal(record.a).add(record.b).toString()`,
			Record: map[string]any{"a": "1.10", "b": "2.20"}}); err != nil {
			b.Fatal(err)
		}
	}
}

var _ = fmt.Sprint
