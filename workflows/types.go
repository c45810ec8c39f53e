package workflows

import (
	"encoding/json"
	"time"
)

// InterpreterWorkflow is the one workflow type that runs every DSL definition.
const InterpreterWorkflow = "tessera.interpret"

// Run statuses, as the API shows them.
const (
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
	StatusSkipped   = "skipped"
)

// RunInput starts (or continues) one run. The definition travels with the run, so the
// version it started with is in its history and an edit never reaches it.
type RunInput struct {
	Workflow   string          `json:"workflow"`
	Version    int             `json:"version"`
	Definition json.RawMessage `json:"definition"`
	Input      map[string]any  `json:"input,omitempty"`
	// Trigger is the outbox payload of a record trigger: entity, id, event, version,
	// record, old, actor.
	Trigger map[string]any `json:"trigger,omitempty"`
	// Actor is the user the run acts as: whoever triggered or started it, or the
	// workflow's service identity when its definition declares runAs.
	Actor string `json:"actor,omitempty"`
	// StartedBy is who triggered or started the run (empty for a change no user made).
	// Histories from before it existed leave it empty; Actor is then that user.
	StartedBy string `json:"startedBy,omitempty"`
	// RunAs marks a run whose Actor is a service identity, not StartedBy.
	RunAs  bool   `json:"runAs,omitempty"`
	Parent string `json:"parent,omitempty"`
	// Attempt counts retries of a failed run; ids of tasks and notifications include
	// it so a retry opens fresh tasks while records stay idempotent.
	Attempt int `json:"attempt,omitempty"`
	// Resume continues a run: after continue-as-new, or a retry from the failed step.
	Resume *Resume `json:"resume,omitempty"`
	// HistoryLimit is the history length after which a long foreach continues as new
	// (0: DefaultHistoryLimit); tests set it low.
	HistoryLimit int `json:"historyLimit,omitempty"`
}

// DefaultHistoryLimit keeps histories well under Temporal's 50k-event limit and its
// slow-replay territory.
const DefaultHistoryLimit = 5000

// Resume is the state a run continues from.
type Resume struct {
	// Next is the top-level step to run next; Loop the foreach iteration to start at
	// when that step is a foreach.
	Next  int            `json:"next"`
	Loop  int            `json:"loop,omitempty"`
	Steps map[string]any `json:"steps,omitempty"`
	Vars  map[string]any `json:"vars,omitempty"`
	// Comp is the saga's compensation stack, oldest first.
	Comp []Compensation `json:"comp,omitempty"`
	Seq  int64          `json:"seq"`
	// Epoch is when the run first started: the time part of its record ids.
	Epoch   time.Time   `json:"epoch"`
	Pending []StepState `json:"pending,omitempty"`
	// Attempt is the run's attempt when it stopped (see RunInput.Attempt).
	Attempt int `json:"attempt,omitempty"`
	// Items are the list of the foreach being continued, as first read.
	Items []any `json:"items,omitempty"`
	// Retry marks a resume after failure: the run row is reset to running.
	Retry bool `json:"retry,omitempty"`
}

// Compensation is a completed step's undo, pushed when the step completes.
type Compensation struct {
	Key  string `json:"key"`
	Step string `json:"step"`
	// Frame holds the foreach variables the step saw ($item, $index, its own name).
	Frame map[string]any `json:"frame,omitempty"`
}

// RunOutput is what a completed run returns.
type RunOutput struct {
	Output any `json:"output,omitempty"`
}

// RunError locates a failure.
type RunError struct {
	Step    string `json:"step"`
	Message string `json:"message"`
}

// StepState is one timeline entry as last known.
type StepState struct {
	Key       string     `json:"key"`
	Step      string     `json:"step"`
	Type      string     `json:"type"`
	Status    string     `json:"status"`
	Position  int64      `json:"position"`
	Seq       int64      `json:"seq"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// RunHeader identifies the run row a journal writes to.
type RunHeader struct {
	ID        string         `json:"id"`
	Workflow  string         `json:"workflow"`
	Version   int            `json:"version"`
	Actor     string         `json:"actor,omitempty"`
	StartedBy string         `json:"startedBy,omitempty"`
	Parent    string         `json:"parent,omitempty"`
	StartedAt time.Time      `json:"startedAt"`
	Input     map[string]any `json:"input,omitempty"`
	Trigger   map[string]any `json:"trigger,omitempty"`
	// Reset puts a retried run back to running.
	Reset bool `json:"reset,omitempty"`
}

// RunFinish is the end of a run.
type RunFinish struct {
	Status      string    `json:"status"`
	Output      any       `json:"output,omitempty"`
	Error       *RunError `json:"error,omitempty"`
	State       *Resume   `json:"state,omitempty"`
	Compensated bool      `json:"compensated,omitempty"`
	EndedAt     time.Time `json:"endedAt"`
}

// Journal is the timeline the workflow hands to the database: piggybacked on the next
// activity it runs anyway, or written by a local activity before it blocks.
type Journal struct {
	Run    RunHeader   `json:"run"`
	Steps  []StepState `json:"steps,omitempty"`
	Finish *RunFinish  `json:"finish,omitempty"`
}

// Call is what every interpreter activity receives besides its own input.
type Call struct {
	Run     string   `json:"run"`
	Key     string   `json:"key"`
	Actor   string   `json:"actor,omitempty"`
	Journal *Journal `json:"journal,omitempty"`
}
