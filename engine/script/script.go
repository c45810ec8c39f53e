// Package script runs custom rules written in JavaScript (goja) inside a sandbox: no
// filesystem, process or network, a time budget per call, a call stack limit, capped
// string growth, frozen built-ins and globals, and a pool of pre-warmed runtimes.
package script

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

var syntaxPosition = regexp.MustCompile(`Line (\d+):(\d+) (.*)$`)

// Limits of every call.
const (
	DefaultBudget    = 100 * time.Millisecond
	MaxBudget        = 5 * time.Second
	MaxCallStackSize = 256
	MaxSourceBytes   = 256 << 10
	MaxStringLength  = 1 << 20
	MaxConsoleLines  = 200
	MaxConsoleLine   = 2000
	MaxListRows      = 500
)

// Mode says how the source is read.
type Mode int

const (
	// ModeHook runs statements; `record` may be changed, `error()` rejects.
	ModeHook Mode = iota
	// ModeExpression evaluates one expression and returns its value (computed fields,
	// workflow conditions).
	ModeExpression
)

// DB is the data access a script gets: the engine implements it per call, inside the
// caller's transaction and with the caller's permissions.
type DB interface {
	Get(entity, id string) (map[string]any, error)
	Find(entity, filter string) (map[string]any, error)
	List(entity, filter, sort string, limit int) ([]map[string]any, error)
	Create(entity string, record map[string]any) (map[string]any, error)
	Update(entity, id string, patch map[string]any) (map[string]any, error)
	// Adjust adds signed amounts to number fields, atomically under the row's lock.
	Adjust(entity, id string, amounts map[string]any) (map[string]any, error)
}

// Call is one script invocation.
type Call struct {
	// Name identifies the script in errors and stack traces.
	Name   string
	Source string
	Mode   Mode
	// Budget is the time the call may take (DefaultBudget when zero).
	Budget time.Duration
	// Record is the record the script sees as `record`; in ModeHook its changes are
	// returned in Result.Record.
	Record map[string]any
	Old    map[string]any
	// Context is exposed as `ctx` (user, entity, hook…), plus ctx.now().
	Context map[string]any
	// Vars are extra named bindings (e.g. `request` for endpoints, `steps` for workflows).
	Vars map[string]any
	// DB backs db.get/find/list/create/update; nil makes them throw.
	DB DB
	// Now is what ctx.now() returns; zero means the wall clock.
	Now time.Time
}

// FieldError is a rejection raised with error(path, message).
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Result is what a call produced.
type Result struct {
	Record   map[string]any `json:"record,omitempty"`
	Value    any            `json:"value,omitempty"`
	Errors   []FieldError   `json:"errors"`
	Console  []string       `json:"console"`
	Duration time.Duration  `json:"duration_ns"`
}

// Error is a script failure located in its source.
type Error struct {
	Script  string `json:"script"`
	Kind    string `json:"kind"` // syntax, runtime, timeout, stack_overflow, limit
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Stack   string `json:"stack,omitempty"`
	// Console holds what the script logged before it failed.
	Console []string `json:"console,omitempty"`
	// Cause is the Go error a binding threw, e.g. the validation error of a write the
	// script made through db: callers can report it as what it is.
	Cause error `json:"-"`
}

func (e *Error) Unwrap() error { return e.Cause }

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("script %s:%d:%d: %s", e.Script, e.Line, e.Column, e.Message)
	}
	return fmt.Sprintf("script %s: %s", e.Script, e.Message)
}

// Runner compiles and runs scripts. It is safe for concurrent use.
type Runner struct {
	pool chan *sandbox
	// Fresh disables the pool: every call builds a new runtime (for comparison only).
	Fresh bool

	mu       sync.Mutex
	programs map[string]*goja.Program
}

// maxPrograms bounds the compiled-program cache; on overflow it is emptied, which is
// cheap to refill and needs no bookkeeping per hit.
const maxPrograms = 1024

// NewRunner pre-warms size runtimes.
func NewRunner(size int) *Runner {
	r := &Runner{pool: make(chan *sandbox, size), programs: map[string]*goja.Program{}}
	for range size {
		r.pool <- newSandbox()
	}
	return r
}

// params are the wrapper function's parameters, in order.
var params = []string{"record", "old", "ctx", "db", "decimal", "error", "console"}

// wrap turns the source into one function expression so every binding is a parameter,
// not a global. The prefix stays on the first line so line numbers match the source.
func wrap(src string, mode Mode, vars []string) (prefix, full string) {
	prefix = "(function(" + strings.Join(append(append([]string{}, params...), vars...), ", ") + ") {\"use strict\"; "
	if mode == ModeExpression {
		prefix += "return ("
		return prefix, prefix + src + "\n); })"
	}
	return prefix, prefix + src + "\n})"
}

func (r *Runner) program(name, src string, mode Mode, vars []string) (*goja.Program, int, error) {
	if len(src) > MaxSourceBytes {
		return nil, 0, &Error{Script: name, Kind: "limit", Message: fmt.Sprintf("the source is %d bytes; the limit is %d", len(src), MaxSourceBytes)}
	}
	prefix, full := wrap(src, mode, vars)
	sum := sha256.Sum256([]byte(full))
	key := name + "\x00" + hex.EncodeToString(sum[:])
	r.mu.Lock()
	p := r.programs[key]
	r.mu.Unlock()
	if p != nil {
		return p, len(prefix), nil
	}
	p, err := goja.Compile(name, full, true)
	if err != nil {
		return nil, 0, syntaxError(name, err, len(prefix))
	}
	r.mu.Lock()
	if len(r.programs) >= maxPrograms {
		r.programs = map[string]*goja.Program{}
	}
	r.programs[key] = p
	r.mu.Unlock()
	return p, len(prefix), nil
}

// Check compiles a script without running it (module validation, saving a script).
func (r *Runner) Check(name, src string, mode Mode) error {
	_, _, err := r.program(name, src, mode, nil)
	return err
}

func syntaxError(name string, err error, prefixLen int) *Error {
	e := &Error{Script: name, Kind: "syntax", Message: err.Error()}
	var ce *goja.CompilerSyntaxError
	if errors.As(err, &ce) {
		e.Message = ce.Message
		if ce.File != nil {
			pos := ce.File.Position(ce.Offset)
			e.Line, e.Column = pos.Line, pos.Column
		} else if m := syntaxPosition.FindStringSubmatch(ce.Message); m != nil {
			// Parser errors carry their position only in the text: "name: Line 2:12 Unexpected token ;".
			e.Line, _ = strconv.Atoi(m[1])
			e.Column, _ = strconv.Atoi(m[2])
			e.Message = m[3]
		}
	}
	if e.Line == 1 {
		e.Column -= prefixLen
	}
	return e
}

func (r *Runner) acquire() *sandbox {
	if r.Fresh {
		return newSandbox()
	}
	select {
	case s := <-r.pool:
		return s
	default:
		// All pooled runtimes are busy: a one-off runtime keeps the caller from waiting.
		return newSandbox()
	}
}

func (r *Runner) release(s *sandbox) {
	if r.Fresh {
		return
	}
	select {
	case r.pool <- s:
	default:
	}
}

// Run executes one call under its time budget.
func (r *Runner) Run(ctx context.Context, call Call) (*Result, error) {
	var vars []string
	for k := range call.Vars {
		vars = append(vars, k)
	}
	sort.Strings(vars)
	prog, prefixLen, err := r.program(call.Name, call.Source, call.Mode, vars)
	if err != nil {
		return nil, err
	}
	budget := call.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	budget = min(budget, MaxBudget)
	s := r.acquire()
	defer r.release(s)
	return s.run(ctx, prog, prefixLen, call, vars, budget)
}
