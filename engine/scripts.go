package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/dbtx"
	"github.com/tessera/tessera/engine/script"
)

// StoredScript is one script as saved: its current version.
type StoredScript struct {
	Name    string   `json:"name"`
	Module  string   `json:"module,omitempty"`
	Version int      `json:"version"`
	Source  string   `json:"source"`
	Methods []string `json:"methods"`
	// BudgetMS is the time budget of one call in milliseconds.
	BudgetMS int `json:"budget_ms"`
}

// ScriptInput is what PUT /scripts/{name} takes.
type ScriptInput struct {
	Source   string   `json:"source"`
	Module   string   `json:"module"`
	Methods  []string `json:"methods"`
	BudgetMS int      `json:"budget_ms"`
}

var scriptName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)

// scriptPrefix marks script names on the definitions change channel.
const scriptPrefix = "script:"

// PutScript saves a new version of a script after compiling it; a script that does
// not compile is refused with its line and column.
func (e *Engine) PutScript(ctx context.Context, actor Actor, name string, in ScriptInput) (*StoredScript, error) {
	if !scriptName.MatchString(name) {
		return nil, invalid("/name", "pattern", "script names are lower case letters, digits, '_', '-', '.'")
	}
	if err := e.scripts.Check(name, in.Source, script.ModeHook); err != nil {
		var se *script.Error
		if errors.As(err, &se) {
			return nil, &ScriptFailure{Err: se}
		}
		return nil, err
	}
	for _, m := range in.Methods {
		if m != "GET" && m != "POST" {
			return nil, invalid("/methods", "enum", "endpoint methods are GET and POST")
		}
	}
	if len(in.Methods) > 0 && in.Module == "" {
		return nil, invalid("/module", "required", "an endpoint script belongs to a module: /api/v1/x/{module}/{name}")
	}
	if in.BudgetMS <= 0 {
		in.BudgetMS = int(script.DefaultBudget / time.Millisecond)
	}
	if in.BudgetMS > int(script.MaxBudget/time.Millisecond) {
		return nil, invalid("/budget_ms", "maximum", fmt.Sprintf("at most %d ms", script.MaxBudget/time.Millisecond))
	}
	if in.Methods == nil {
		in.Methods = []string{}
	}
	tx, err := dbtx.Of(ctx, e.pool).Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	var version int
	err = tx.QueryRow(ctx, `INSERT INTO tessera.scripts (name, module, current_version, methods, budget_ms) VALUES ($1, $2, 1, $3, $4)
		ON CONFLICT (name) DO UPDATE SET module = EXCLUDED.module, methods = EXCLUDED.methods, budget_ms = EXCLUDED.budget_ms,
			current_version = tessera.scripts.current_version + 1, updated_at = now()
		RETURNING current_version`, name, in.Module, in.Methods, in.BudgetMS).Scan(&version)
	if err != nil {
		return nil, fmt.Errorf("save script: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO tessera.script_versions (name, version, source, created_by) VALUES ($1, $2, $3, $4)`,
		name, version, in.Source, nullUUID(actor.UserID)); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", entityChannel, scriptPrefix+name); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	// Once committed, as for entities (PutEntity).
	_ = dbtx.AfterCommit(ctx, func(context.Context) error { e.forget(scriptPrefix + name); return nil })
	return &StoredScript{Name: name, Module: in.Module, Version: version, Source: in.Source, Methods: in.Methods, BudgetMS: in.BudgetMS}, nil
}

// GetScript returns a script's current version; cached like entity definitions.
func (e *Engine) GetScript(ctx context.Context, name string) (*StoredScript, error) {
	return e.script(ctx, e.pool, name)
}

// script is GetScript through db: the pool, or the caller's transaction.
func (e *Engine) script(ctx context.Context, db querier, name string) (*StoredScript, error) {
	if tx := dbtx.From(ctx); tx != nil {
		// Uncommitted scripts stay out of the shared cache, as entities do (Engine.entity).
		return loadScript(ctx, tx, name)
	}
	e.mu.RLock()
	s := e.scriptCache[name]
	e.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	s, err := loadScript(ctx, db, name)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.scriptCache[name] = s
	e.mu.Unlock()
	return s, nil
}

func loadScript(ctx context.Context, db querier, name string) (*StoredScript, error) {
	s := &StoredScript{Name: name}
	err := db.QueryRow(ctx, `SELECT s.module, s.current_version, v.source, s.methods, s.budget_ms FROM tessera.scripts s
		JOIN tessera.script_versions v ON v.name = s.name AND v.version = s.current_version WHERE s.name = $1`, name).
		Scan(&s.Module, &s.Version, &s.Source, &s.Methods, &s.BudgetMS)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("script %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ScriptLog is one recorded call of a script: its console output and error.
type ScriptLog struct {
	Version    int             `json:"version"`
	Hook       string          `json:"hook"`
	Entity     string          `json:"entity,omitempty"`
	RecordID   *string         `json:"record_id"`
	Console    []string        `json:"console"`
	Error      json.RawMessage `json:"error"`
	DurationUS int64           `json:"duration_us"`
	CreatedAt  time.Time       `json:"created_at"`
}

// ScriptLogs returns the latest calls of a script that logged or failed.
func (e *Engine) ScriptLogs(ctx context.Context, name string, limit int) ([]ScriptLog, error) {
	rows, err := e.pool.Query(ctx, `SELECT version, hook, entity, record_id::text, console, error, duration_us, created_at
		FROM tessera.script_logs WHERE name = $1 ORDER BY id DESC LIMIT $2`, name, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ScriptLog, error) {
		var l ScriptLog
		err := row.Scan(&l.Version, &l.Hook, &l.Entity, &l.RecordID, &l.Console, &l.Error, &l.DurationUS, &l.CreatedAt)
		return l, err
	})
}

// scriptLog is one call to keep in tessera.script_logs.
type scriptLog struct {
	name, hook, entity string
	version            int
	recordID           any
	console            []string
	err                error
	duration           time.Duration
}

// logScriptCall keeps the console output or error of a call; silent successful calls
// leave no row. Rows are written by a background writer: a hook runs inside a write
// transaction, which must neither wait for a second connection nor lose the log of a
// call that made it roll back.
func (e *Engine) logScriptCall(s *StoredScript, hook, entity string, recordID any, console []string, callErr error, d time.Duration) {
	if len(console) == 0 && callErr == nil {
		return
	}
	e.logOnce.Do(func() { go e.writeScriptLogs() })
	select {
	case e.scriptLogs <- scriptLog{name: s.Name, version: s.Version, hook: hook, entity: entity, recordID: recordID,
		console: console, err: callErr, duration: d}:
	default:
		e.log.Warn("script log queue full; dropping a log", "script", s.Name)
	}
}

func (e *Engine) writeScriptLogs() {
	for l := range e.scriptLogs {
		var errJSON []byte
		if l.err != nil {
			errJSON, _ = json.Marshal(l.err)
		}
		consoleJSON, _ := json.Marshal(l.console)
		if consoleJSON == nil || string(consoleJSON) == "null" {
			consoleJSON = []byte("[]")
		}
		if _, err := e.pool.Exec(context.Background(), `INSERT INTO tessera.script_logs (name, version, hook, entity, record_id, console, error, duration_us)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, l.name, l.version, l.hook, l.entity, l.recordID, consoleJSON, errJSON, l.duration.Microseconds()); err != nil {
			e.log.Warn("keep script log", "script", l.name, "err", err)
		}
	}
}

// endpointScript finds the script serving /x/{module}/{name} for the method.
func (e *Engine) endpointScript(ctx context.Context, module, name, method string) (*StoredScript, error) {
	s, err := e.GetScript(ctx, name)
	if err != nil {
		return nil, err
	}
	if s.Module != module || !slices.Contains(s.Methods, strings.ToUpper(method)) {
		return nil, fmt.Errorf("endpoint %s %s/%s: %w", method, module, name, ErrNotFound)
	}
	return s, nil
}
