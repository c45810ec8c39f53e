package script

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// sandbox is one goja runtime prepared for scripts. A runtime serves one call at a
// time; state points at the running call so the bindings, created once per runtime,
// reach the call's data.
type sandbox struct {
	vm      *goja.Runtime
	state   *callState
	decimal goja.Value
	errorFn goja.Value
	console goja.Value
	db      goja.Value
	now     goja.Value
}

type callState struct {
	call    *Call
	console []string
	errors  []FieldError
	clock   *budgetClock
}

// budgetClock charges a script's budget only while its JavaScript runs. Time blocked in
// a db call — waiting for a row lock other writers hold, or running the nested write's
// own hooks, which have budgets of their own — is not the script's doing, and charging
// it would fail every writer but the first that queue on one busy row.
type budgetClock struct {
	timer   *time.Timer
	left    time.Duration
	started time.Time
	spent   bool // the timer fired: the runtime is interrupted
}

func (c *budgetClock) pause() {
	if !c.timer.Stop() {
		c.spent = true
		return
	}
	c.left -= time.Since(c.started)
}

func (c *budgetClock) resume() {
	if c.spent {
		return
	}
	c.started = time.Now()
	c.timer.Reset(max(c.left, 0))
}

// timeout is the Interrupt value of an exhausted budget.
type timeout struct{ budget time.Duration }

// freezeJS freezes the global object and every built-in constructor and prototype, so
// nothing a script sets or pollutes survives into the next call on this runtime.
const freezeJS = `(function (g) {
  "use strict";
  var seen = [];
  function freeze(o) {
    if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.indexOf(o) >= 0) return;
    seen.push(o);
    Object.freeze(o);
    if (typeof o === "function" && o.prototype) freeze(o.prototype);
    Object.getOwnPropertyNames(o).forEach(function (n) {
      var d = Object.getOwnPropertyDescriptor(o, n);
      if (d && "value" in d) freeze(d.value);
    });
  }
  var gen = Object.getPrototypeOf(function* () {});
  var arrayIter = Object.getPrototypeOf([][Symbol.iterator]());
  [g, gen, gen.prototype, arrayIter, Object.getPrototypeOf(arrayIter),
   Object.getPrototypeOf(new Map()[Symbol.iterator]()), Object.getPrototypeOf(new Set()[Symbol.iterator]()),
   Object.getPrototypeOf(""[Symbol.iterator]()), Object.getPrototypeOf(async function () {})].forEach(freeze);
})(this)`

func newSandbox() *sandbox {
	vm := goja.New()
	vm.SetMaxCallStackSize(MaxCallStackSize)
	vm.SetFieldNameMapper(goja.UncapFieldNameMapper())
	s := &sandbox{vm: vm}
	capStringGrowth(vm)
	s.decimal = vm.ToValue(func(call goja.FunctionCall) goja.Value {
		return vm.ToValue(newDecimal(vm, call.Argument(0)))
	})
	s.errorFn = vm.ToValue(func(path, message string) {
		if !strings.HasPrefix(path, "/") && path != "" {
			path = "/" + path
		}
		s.state.errors = append(s.state.errors, FieldError{Path: path, Message: message})
	})
	console := vm.NewObject()
	logFn := func(call goja.FunctionCall) goja.Value {
		st := s.state
		if len(st.console) >= MaxConsoleLines {
			return goja.Undefined()
		}
		parts := make([]string, len(call.Arguments))
		for i, a := range call.Arguments {
			parts[i] = consoleText(vm, a)
		}
		line := strings.Join(parts, " ")
		if len(line) > MaxConsoleLine {
			line = truncate(line, MaxConsoleLine) + "…"
		}
		st.console = append(st.console, line)
		return goja.Undefined()
	}
	for _, name := range []string{"log", "info", "warn", "error"} {
		_ = console.Set(name, logFn)
	}
	s.console = console
	s.db = s.dbBinding()
	s.now = vm.ToValue(func() string {
		if t := s.state.call.Now; !t.IsZero() {
			return t.UTC().Format(time.RFC3339Nano)
		}
		return time.Now().UTC().Format(time.RFC3339Nano)
	})
	if _, err := vm.RunString(freezeJS); err != nil {
		panic("script sandbox: freeze built-ins: " + err.Error())
	}
	return s
}

// capStringGrowth replaces the built-ins that build a large string in one native step
// (a time budget cannot interrupt them) with capped versions.
func capStringGrowth(vm *goja.Runtime) {
	proto := vm.Get("String").ToObject(vm).Get("prototype").ToObject(vm)
	check := func(n int64) {
		if n > MaxStringLength {
			panic(vm.NewTypeError(fmt.Sprintf("string too long: %d characters (scripts may build at most %d)", n, MaxStringLength)))
		}
	}
	_ = proto.Set("repeat", func(call goja.FunctionCall) goja.Value {
		s := call.This.String()
		n := call.Argument(0).ToInteger()
		if n < 0 {
			panic(vm.NewGoError(errors.New("RangeError: invalid count value")))
		}
		check(int64(len(s)) * n)
		return vm.ToValue(strings.Repeat(s, int(n)))
	})
	pad := func(atStart bool) func(goja.FunctionCall) goja.Value {
		return func(call goja.FunctionCall) goja.Value {
			s := call.This.String()
			n := call.Argument(0).ToInteger()
			check(n)
			fill := " "
			if a := call.Argument(1); !goja.IsUndefined(a) {
				fill = a.String()
			}
			have := int64(utf8.RuneCountInString(s))
			if n <= have || fill == "" {
				return vm.ToValue(s)
			}
			padding := []rune(strings.Repeat(fill, int(n-have)/utf8.RuneCountInString(fill)+1))[:n-have]
			if atStart {
				return vm.ToValue(string(padding) + s)
			}
			return vm.ToValue(s + string(padding))
		}
	}
	_ = proto.Set("padStart", pad(true))
	_ = proto.Set("padEnd", pad(false))
}

func (s *sandbox) dbBinding() goja.Value {
	vm := s.vm
	db := vm.NewObject()
	// call runs one db operation with the budget clock paused (see budgetClock) and
	// turns its error into a JavaScript exception.
	call := func(op func(DB) (any, error)) goja.Value {
		st := s.state
		if st.call.DB == nil {
			panic(vm.NewTypeError("db is not available in this kind of script"))
		}
		st.clock.pause()
		out, err := op(st.call.DB)
		st.clock.resume()
		if err != nil {
			panic(vm.NewGoError(err))
		}
		if recs, ok := out.([]map[string]any); ok {
			items := make([]any, len(recs))
			for i, r := range recs {
				items[i] = s.toJS(r)
			}
			return vm.NewArray(items...)
		}
		return s.toJS(out)
	}
	_ = db.Set("get", func(entity, id string) goja.Value {
		return call(func(d DB) (any, error) { return d.Get(entity, id) })
	})
	_ = db.Set("find", func(entity, filter string) goja.Value {
		return call(func(d DB) (any, error) { return d.Find(entity, filter) })
	})
	_ = db.Set("list", func(entity, filter string, opts map[string]any) goja.Value {
		sort, _ := opts["sort"].(string)
		limit := MaxListRows
		if l, ok := opts["limit"].(int64); ok && l > 0 && l < MaxListRows {
			limit = int(l)
		}
		return call(func(d DB) (any, error) { return d.List(entity, filter, sort, limit) })
	})
	_ = db.Set("create", func(entity string, rec goja.Value) goja.Value {
		fields := exportRecord(rec)
		return call(func(d DB) (any, error) { return d.Create(entity, fields) })
	})
	_ = db.Set("update", func(entity, id string, patch goja.Value) goja.Value {
		fields := exportRecord(patch)
		return call(func(d DB) (any, error) { return d.Update(entity, id, fields) })
	})
	_ = db.Set("adjust", func(entity, id string, amounts goja.Value) goja.Value {
		fields := exportRecord(amounts)
		return call(func(d DB) (any, error) { return d.Adjust(entity, id, fields) })
	})
	return db
}

func (s *sandbox) run(ctx context.Context, prog *goja.Program, prefixLen int, call Call, vars []string, budget time.Duration) (res *Result, err error) {
	st := &callState{call: &call}
	s.state = st
	defer func() { s.state = nil }()
	vm := s.vm
	fired := make(chan struct{})
	timer := time.AfterFunc(budget, func() {
		vm.Interrupt(timeout{budget})
		close(fired)
	})
	st.clock = &budgetClock{timer: timer, left: budget, started: time.Now()}
	stopOnCancel := context.AfterFunc(ctx, func() { vm.Interrupt(ctx.Err()) })
	start := time.Now()
	defer func() {
		if !timer.Stop() {
			<-fired
		}
		stopOnCancel()
		// A cleared interrupt is the runtime's reset before it goes back to the pool.
		vm.ClearInterrupt()
		if p := recover(); p != nil {
			res, err = nil, &Error{Script: call.Name, Kind: "runtime", Message: fmt.Sprint(p), Console: st.console}
		}
	}()

	fnVal, err := vm.RunProgram(prog)
	if err != nil {
		return nil, s.scriptError(call.Name, err, prefixLen, budget, st)
	}
	fn, ok := goja.AssertFunction(fnVal)
	if !ok {
		return nil, &Error{Script: call.Name, Kind: "runtime", Message: "script did not compile to a function"}
	}
	ctxObj := vm.NewObject()
	for k, v := range call.Context {
		_ = ctxObj.Set(k, s.toJS(v))
	}
	_ = ctxObj.Set("now", s.now)
	record := s.toJS(call.Record)
	args := []goja.Value{record, s.toJS(call.Old), ctxObj, s.db, s.decimal, s.errorFn, s.console}
	for _, name := range vars {
		args = append(args, s.toJS(call.Vars[name]))
	}
	value, err := fn(goja.Undefined(), args...)
	duration := time.Since(start)
	if err != nil {
		return nil, s.scriptError(call.Name, err, prefixLen, budget, st)
	}
	res = &Result{Errors: st.errors, Console: st.console, Duration: duration}
	if res.Errors == nil {
		res.Errors = []FieldError{}
	}
	if res.Console == nil {
		res.Console = []string{}
	}
	if call.Mode == ModeHook && call.Record != nil {
		res.Record = exportRecord(record)
	}
	if !goja.IsUndefined(value) {
		res.Value = exportValue(value.Export())
	}
	return res, nil
}

func (s *sandbox) scriptError(name string, err error, prefixLen int, budget time.Duration, st *callState) error {
	e := &Error{Script: name, Kind: "runtime", Message: err.Error(), Console: st.console}
	var (
		interrupted *goja.InterruptedError
		overflow    *goja.StackOverflowError
		exception   *goja.Exception
	)
	switch {
	case errors.As(err, &interrupted):
		if t, ok := interrupted.Value().(timeout); ok {
			e.Kind, e.Message = "timeout", fmt.Sprintf("the script ran longer than its budget of %s and was stopped", t.budget)
		} else {
			e.Kind, e.Message = "timeout", fmt.Sprintf("the script was stopped: %v", interrupted.Value())
		}
		exception = &interrupted.Exception
	case errors.As(err, &overflow):
		e.Kind, e.Message = "stack_overflow", fmt.Sprintf("call stack deeper than %d frames (runaway recursion?)", MaxCallStackSize)
		exception = &overflow.Exception
	case errors.As(err, &exception):
		if v := exception.Value(); v != nil {
			e.Message = v.String()
		}
		e.Cause = exception.Unwrap()
		if strings.Contains(e.Message, "string too long") {
			e.Kind = "limit"
		}
	}
	if exception != nil {
		var stack []string
		for _, f := range exception.Stack() {
			pos := f.Position()
			if pos.Filename != name {
				continue
			}
			if pos.Line == 1 {
				pos.Column -= prefixLen
			}
			if e.Line == 0 {
				e.Line, e.Column = pos.Line, pos.Column
			}
			fn := f.FuncName()
			if fn == "" {
				fn = "<script>"
			}
			stack = append(stack, fmt.Sprintf("at %s (%s:%d:%d)", fn, name, pos.Line, pos.Column))
			if len(stack) == 20 {
				stack = append(stack, "…")
				break
			}
		}
		e.Stack = strings.Join(stack, "\n")
	}
	return e
}

// toJS builds native JS values from JSON-shaped Go values (json.Number becomes a JS
// number; decimals travel as strings and stay exact).
func (s *sandbox) toJS(v any) goja.Value {
	vm := s.vm
	switch x := v.(type) {
	case nil:
		return goja.Null()
	case map[string]any:
		if x == nil {
			return goja.Null()
		}
		o := vm.NewObject()
		for k, val := range x {
			_ = o.Set(k, s.toJS(val))
		}
		return o
	case []any:
		items := make([]any, len(x))
		for i, it := range x {
			items[i] = s.toJS(it)
		}
		return vm.NewArray(items...)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return vm.ToValue(i)
		}
		f, _ := x.Float64()
		return vm.ToValue(f)
	}
	return vm.ToValue(v)
}

func exportRecord(v goja.Value) map[string]any {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return nil
	}
	m, _ := exportValue(v.Export()).(map[string]any)
	return m
}

// exportValue turns exported JS values back into JSON-shaped Go values.
func exportValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = exportValue(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i] = exportValue(it)
		}
		return out
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return json.Number(strconv.FormatFloat(x, 'f', -1, 64))
	case *Decimal:
		return x.d.String()
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return v
}

func consoleText(vm *goja.Runtime, v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	if o, ok := v.(*goja.Object); ok {
		if d, ok := o.Export().(*Decimal); ok {
			return d.d.String()
		}
		if b, err := json.Marshal(exportValue(o.Export())); err == nil {
			return string(b)
		}
	}
	return v.String()
}

func truncate(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
