// Package engine is Tessera's metadata engine: entity definitions, their tables and the
// one write path for records. It knows nothing of HTTP or Temporal.
package engine

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/script"
)

// Actor is who performs an operation: recorded in created_by/updated_by and history,
// and checked against its policy at every door. The zero Actor may do nothing.
type Actor struct {
	UserID  uuid.UUID
	Email   string
	IsAdmin bool
	Roles   []string
	Teams   []string
	Policy  *auth.Policy
}

// ActorFor is the actor of a signed-in user.
func ActorFor(u auth.User) Actor {
	return Actor{UserID: u.ID, Email: u.Email, IsAdmin: u.IsAdmin, Roles: u.Roles, Teams: u.Teams, Policy: u.Policy}
}

// Engine serves entity definitions and records from PostgreSQL.
type Engine struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	scripts *script.Runner
	// goHooks are hooks registered in Go by an embedding program, run before scripts.
	goHooks map[string][]GoHook

	scriptLogs chan scriptLog
	logOnce    sync.Once

	mu          sync.RWMutex
	entities    map[string]*compiled
	scriptCache map[string]*StoredScript
}

// compiled is one entity version ready for use: parsed and with its validator built,
// so a definition is compiled once per version, not once per request.
type compiled struct {
	entity    *schema.Entity
	validator *schema.Validator
}

// entityChannel carries the names of entities whose definition changed, so every node
// drops its cached copy.
const entityChannel = "tessera_entities"

// New returns an engine over the pool. Call Listen to keep its cache coherent with
// other nodes.
func New(pool *pgxpool.Pool, log *slog.Logger) *Engine {
	return &Engine{pool: pool, log: log, scripts: script.NewRunner(scriptPoolSize),
		goHooks: map[string][]GoHook{}, scriptLogs: make(chan scriptLog, 1000), entities: map[string]*compiled{}, scriptCache: map[string]*StoredScript{}}
}

// Pool exposes the database for read-only helpers of other layers (health checks).
func (e *Engine) Pool() *pgxpool.Pool { return e.pool }

// Listen invalidates cached definitions when any node changes them, until ctx ends.
// The cache is emptied whenever the listening connection is (re)established.
func (e *Engine) Listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := e.listenOnce(ctx)
		e.forgetAll()
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("entity change listener restarting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (e *Engine) listenOnce(ctx context.Context) error {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+entityChannel); err != nil {
		return err
	}
	// Definitions may have changed while we were not listening.
	e.forgetAll()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			conn.Conn().Close(context.Background())
			return err
		}
		e.forget(n.Payload)
	}
}

// forget drops one cached definition: an entity name, or "script:<name>".
func (e *Engine) forget(name string) {
	e.mu.Lock()
	if s, ok := strings.CutPrefix(name, scriptPrefix); ok {
		delete(e.scriptCache, s)
	} else {
		delete(e.entities, name)
	}
	e.mu.Unlock()
}

func (e *Engine) forgetAll() {
	e.mu.Lock()
	e.entities = map[string]*compiled{}
	e.scriptCache = map[string]*StoredScript{}
	e.mu.Unlock()
}

// scriptPoolSize is the number of pre-warmed script runtimes; a call that finds them
// all busy gets a one-off runtime instead of waiting.
var scriptPoolSize = 4 * runtime.GOMAXPROCS(0)

// Scripts exposes the script runner (for the CLI's script test and benchmarks).
func (e *Engine) Scripts() *script.Runner { return e.scripts }

// ErrNotFound is returned for an unknown entity or record.
var ErrNotFound = errors.New("not found")
