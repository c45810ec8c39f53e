// Package dsl is Tessera's workflow definition language: the model of a definition,
// its validation against schemas/workflow.schema.json plus the checks a schema cannot
// express, and the evaluation of conditions and mappings over a run's variables. It
// knows nothing of Temporal, so the API can validate definitions and the interpreter
// can evaluate them with the same code.
package dsl

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tessera/tessera/engine/schema"
)

// Step types.
const (
	TypeCreate      = "create"
	TypeUpdate      = "update"
	TypeGet         = "get"
	TypeQuery       = "query"
	TypeSet         = "set"
	TypeCondition   = "condition"
	TypeSwitch      = "switch"
	TypeParallel    = "parallel"
	TypeForeach     = "foreach"
	TypeWait        = "wait"
	TypeWaitEvent   = "wait_event"
	TypeTask        = "task"
	TypeHTTP        = "http"
	TypeNotify      = "notify"
	TypeScript      = "script"
	TypeSubworkflow = "subworkflow"
	TypeFail        = "fail"
)

// Trigger types.
const (
	TriggerManual   = "manual"
	TriggerRecord   = "record"
	TriggerSchedule = "schedule"
)

// Definition is one version of a workflow.
type Definition struct {
	Name        string          `json:"name"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description,omitempty"`
	Trigger     Trigger         `json:"trigger"`
	RunAs       *RunAs          `json:"runAs,omitempty"`
	Input       json.RawMessage `json:"input,omitempty"`
	Output      map[string]any  `json:"output,omitempty"`
	Steps       []*Step         `json:"steps"`
}

// RunAs makes a workflow's runs act as its own service identity, a user that holds
// exactly these roles, instead of as the user who triggered or started them: the
// process has the rights it needs while that user keeps only theirs.
type RunAs struct {
	Roles []string `json:"roles"`
}

// Trigger says what starts a run.
type Trigger struct {
	Type   string         `json:"type"`
	Entity string         `json:"entity,omitempty"`
	On     []string       `json:"on,omitempty"`
	When   string         `json:"when,omitempty"`
	Cron   string         `json:"cron,omitempty"`
	Input  map[string]any `json:"input,omitempty"`
}

// Fires reports whether a record trigger listens to the event.
func (t Trigger) Fires(entity, event string) bool {
	if t.Type != TriggerRecord || t.Entity != entity {
		return false
	}
	for _, on := range t.On {
		if on == event {
			return true
		}
	}
	return false
}

// Step is one step; which fields apply depends on Type (see the meta-schema).
type Step struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	Title      string  `json:"title,omitempty"`
	If         string  `json:"if,omitempty"`
	Compensate []*Step `json:"compensate,omitempty"`
	Retry      *Retry  `json:"retry,omitempty"`
	Timeout    string  `json:"timeout,omitempty"`

	// create, update, get, query, wait_event on a record
	Entity string         `json:"entity,omitempty"`
	Record string         `json:"record,omitempty"`
	Data   map[string]any `json:"data,omitempty"`
	Filter string         `json:"filter,omitempty"`
	Sort   string         `json:"sort,omitempty"`
	Limit  int            `json:"limit,omitempty"`

	// set
	Vars map[string]any `json:"vars,omitempty"`

	// condition, switch, parallel, foreach
	Then     []*Step  `json:"then,omitempty"`
	Else     []*Step  `json:"else,omitempty"`
	Cases    []Case   `json:"cases,omitempty"`
	Default  []*Step  `json:"default,omitempty"`
	Mode     string   `json:"mode,omitempty"`
	Branches []Branch `json:"branches,omitempty"`
	Items    any      `json:"items,omitempty"`
	As       string   `json:"as,omitempty"`
	Steps    []*Step  `json:"steps,omitempty"`

	// wait, wait_event
	Duration  string `json:"duration,omitempty"`
	Until     string `json:"until,omitempty"`
	Signal    string `json:"signal,omitempty"`
	OnTimeout string `json:"onTimeout,omitempty"`

	// task
	Description string          `json:"description,omitempty"`
	Assignee    *Assignee       `json:"assignee,omitempty"`
	Form        json.RawMessage `json:"form,omitempty"`
	Outcomes    []string        `json:"outcomes,omitempty"`
	Due         string          `json:"due,omitempty"`
	Reminder    *Reminder       `json:"reminder,omitempty"`
	Escalation  *Escalation     `json:"escalation,omitempty"`

	// http
	Method     string            `json:"method,omitempty"`
	URL        string            `json:"url,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       any               `json:"body,omitempty"`
	Credential string            `json:"credential,omitempty"`

	// notify
	To      *Assignee `json:"to,omitempty"`
	Message string    `json:"message,omitempty"`
	Link    string    `json:"link,omitempty"`

	// script
	Source string         `json:"source,omitempty"`
	Script string         `json:"script,omitempty"`
	With   map[string]any `json:"with,omitempty"`

	// subworkflow
	Workflow string         `json:"workflow,omitempty"`
	Input    map[string]any `json:"input,omitempty"`
	Wait     *bool          `json:"wait,omitempty"`
}

// Case is one branch of a switch.
type Case struct {
	When  string  `json:"when"`
	Steps []*Step `json:"steps"`
}

// Branch is one branch of a parallel step.
type Branch struct {
	Name  string  `json:"name,omitempty"`
	Steps []*Step `json:"steps"`
}

// Assignee is a user (by email) or everyone with a role.
type Assignee struct {
	User string `json:"user,omitempty"`
	Role string `json:"role,omitempty"`
}

// Retry bounds the attempts of a step that runs as an activity.
type Retry struct {
	MaxAttempts     int    `json:"maxAttempts,omitempty"`
	InitialInterval string `json:"initialInterval,omitempty"`
}

// Reminder notifies the assignee again while a task stays open.
type Reminder struct {
	After string `json:"after"`
	Every string `json:"every,omitempty"`
}

// Escalation hands an open task to someone else after a while.
type Escalation struct {
	After string    `json:"after"`
	To    *Assignee `json:"to"`
}

// Parse validates a definition against the meta-schema and the semantic checks and
// decodes it. Problems come back as *schema.DefinitionError whose paths are JSON
// pointers into the submitted document.
func Parse(raw []byte) (*Definition, error) {
	if problems := validateDocument(raw); len(problems) > 0 {
		return nil, &schema.DefinitionError{Problems: problems}
	}
	def, err := Decode(raw)
	if err != nil {
		return nil, &schema.DefinitionError{Problems: []schema.Problem{{Path: "", Code: "json", Message: err.Error()}}}
	}
	problems := check(def)
	if def.Trigger.Type == TriggerRecord {
		problems = append(problems, checkTriggerRefs(raw)...)
	}
	if len(problems) > 0 {
		return nil, &schema.DefinitionError{Problems: problems}
	}
	return def, nil
}

// Decode reads a definition that was validated before (a stored version) without
// validating it again: the interpreter decodes on every workflow task.
func Decode(raw []byte) (*Definition, error) {
	var def Definition
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&def); err != nil {
		return nil, fmt.Errorf("decode workflow definition: %w", err)
	}
	return &def, nil
}
