package workflows

// Activity names. The interpreter calls activities by name so the worker can register
// the implementations with their dependencies.
const (
	ActJournal      = "tessera.journal"
	ActCreate       = "tessera.record.create"
	ActUpdate       = "tessera.record.update"
	ActGet          = "tessera.record.get"
	ActQuery        = "tessera.record.query"
	ActScript       = "tessera.script"
	ActHTTP         = "tessera.http"
	ActNotify       = "tessera.notify"
	ActTaskOpen     = "tessera.task.open"
	ActTaskUpdate   = "tessera.task.update"
	ActWaitRegister = "tessera.wait.register"
	ActWaitClear    = "tessera.wait.clear"
	ActLoadWorkflow = "tessera.workflow.load"
)

// Error types activities and the interpreter report; the ones in nonRetryable are not
// retried, the API maps the task ones to HTTP statuses.
const (
	errValidation = "ValidationError"
	errForbidden  = "Forbidden"
	errNotFound   = "NotFound"
	errScript     = "ScriptError"
	errHTTPClient = "HTTPClientError"
	errConfig     = "ConfigError"
	errStepFailed = "StepFailed"
	errTimeout    = "Timeout"

	// ErrTaskClosed rejects a change to a task that is no longer open.
	ErrTaskClosed = "TaskClosed"
	// ErrTaskForbidden rejects someone who is not the assignee.
	ErrTaskForbidden = "TaskForbidden"
	// ErrTaskInvalid rejects an outcome not listed or data that does not fit the form.
	ErrTaskInvalid = "TaskInvalid"
	// ErrTaskUnknown rejects an update for a task the run does not have open.
	ErrTaskUnknown = "TaskUnknown"
)

// Names of the workflow's own message handlers.
const (
	// UpdateTask completes, claims or reassigns a human task.
	UpdateTask = "tessera.task"
	// QueryTimeline answers the live timeline of a running run.
	QueryTimeline = "tessera.timeline"
	// recordSignalPrefix names the signal a record wait receives.
	recordSignalPrefix = "tessera.record:"
)
