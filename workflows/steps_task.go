package workflows

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/workflows/dsl"
)

// Task actions of the UpdateTask update.
const (
	TaskComplete = "complete"
	TaskClaim    = "claim"
	TaskReassign = "reassign"
)

// TaskUser is who asks for a task action, as the API authenticated them.
type TaskUser struct {
	ID      string   `json:"id"`
	Roles   []string `json:"roles,omitempty"`
	IsAdmin bool     `json:"isAdmin,omitempty"`
}

// TaskAction is the argument of the UpdateTask update.
type TaskAction struct {
	Task    string         `json:"task"`
	Action  string         `json:"action"`
	Outcome string         `json:"outcome,omitempty"`
	Data    map[string]any `json:"data,omitempty"`
	By      TaskUser       `json:"by"`
	// To is the new assignee of a reassign: a user email or a role.
	To *dsl.Assignee `json:"to,omitempty"`
}

// TaskResult is the update's answer.
type TaskResult struct {
	Task      string `json:"task"`
	Status    string `json:"status"`
	Outcome   string `json:"outcome,omitempty"`
	User      string `json:"user,omitempty"`
	Role      string `json:"role,omitempty"`
	ClaimedBy string `json:"claimedBy,omitempty"`
}

// TaskOpenInput projects a new task into the inbox and notifies its assignee.
type TaskOpenInput struct {
	Call
	ID          string          `json:"id"`
	Step        string          `json:"step"`
	Title       string          `json:"title"`
	Description string          `json:"description,omitempty"`
	User        string          `json:"user,omitempty"` // email
	Role        string          `json:"role,omitempty"`
	Outcomes    []string        `json:"outcomes"`
	Form        json.RawMessage `json:"form,omitempty"`
	DueAt       *time.Time      `json:"dueAt,omitempty"`
}

// TaskUpdateInput changes the projection of a task (and notifies a new assignee).
type TaskUpdateInput struct {
	Call
	ID          string         `json:"id"`
	Title       string         `json:"title,omitempty"`
	Status      string         `json:"status,omitempty"`
	Outcome     string         `json:"outcome,omitempty"`
	Data        map[string]any `json:"data,omitempty"`
	CompletedBy string         `json:"completedBy,omitempty"`
	ClaimedBy   *string        `json:"claimedBy,omitempty"`
	// Assign moves the task to a user (email) or role.
	Assign *dsl.Assignee `json:"assign,omitempty"`
}

// TaskAssignee is who a task belongs to after an open or update.
type TaskAssignee struct {
	User string `json:"user,omitempty"` // user id
	Role string `json:"role,omitempty"`
}

// openTask is a task the run is waiting on.
type openTask struct {
	id, key, title string
	step           *dsl.Step
	user, role     string
	claimedBy      string
	form           *dsl.Form
	// opening: the TaskOpen activity has not returned yet, though the inbox may
	// already show the task; closing: a completion was accepted; done: its projection
	// is written.
	opening, closing, done bool
	result                 map[string]any
}

// mayAct reports whether the user is the task's assignee: the user, or someone with
// the role who has not been beaten to it by another claimant.
func (t *openTask) mayAct(by TaskUser) bool {
	if t.user != "" {
		return by.ID == t.user
	}
	return slices.Contains(by.Roles, t.role) && (t.claimedBy == "" || t.claimedBy == by.ID)
}

// task opens a human task and waits until its assignee completes it, reminding and
// escalating on the way.
func (r *run) task(ctx workflow.Context, s *dsl.Step, key string, sc dsl.Scope) (map[string]any, error) {
	title, err := sc.Interpolate(s.Title)
	if err != nil {
		return nil, err
	}
	desc, err := sc.Interpolate(s.Description)
	if err != nil {
		return nil, err
	}
	user, role, err := r.assignee(s.Assignee, sc)
	if err != nil {
		return nil, err
	}
	t := &openTask{id: taskID(r.epoch, r.id, r.in.Attempt, key).String(), key: key, title: title, step: s, role: role}
	if len(s.Form) > 0 {
		form, problems := dsl.CompileSchema(s.Form, "mem://tessera/forms/"+s.ID+".json")
		if len(problems) > 0 {
			return nil, temporal.NewNonRetryableApplicationError("the task form does not compile: "+problems[0].Message, errConfig, nil)
		}
		t.form = form
	}
	now := workflow.Now(ctx).UTC()
	in := TaskOpenInput{Call: r.call(key), ID: t.id, Step: s.ID, Title: title, Description: desc, User: user, Role: role, Outcomes: s.Outcomes, Form: s.Form}
	if s.Due != "" {
		d, err := dsl.ParseDuration(s.Due)
		if err != nil {
			return nil, err
		}
		due := now.Add(d)
		in.DueAt = &due
	}
	// Known to the update handler before the activity writes the inbox row, so someone
	// who completes the task the moment it shows is not told it does not exist.
	t.opening = true
	r.tasks[t.id] = t
	defer delete(r.tasks, t.id)
	var who TaskAssignee
	if err := r.activity(ctx, s, ActTaskOpen, in, &who); err != nil {
		return nil, err
	}
	t.user, t.opening = who.User, false

	var remindAt, escalateAt, overdueAt time.Time
	if in.DueAt != nil && workflow.GetVersion(ctx, changeTaskOverdue, workflow.DefaultVersion, 1) == 1 {
		overdueAt = *in.DueAt
	}
	if s.Reminder != nil {
		d, _ := dsl.ParseDuration(s.Reminder.After)
		remindAt = now.Add(d)
	}
	if s.Escalation != nil {
		d, _ := dsl.ParseDuration(s.Escalation.After)
		escalateAt = now.Add(d)
	}
	round := 0
	for !t.closing {
		next := earliest(earliest(remindAt, escalateAt), overdueAt)
		if next.IsZero() {
			err = workflow.Await(ctx, func() bool { return t.closing })
		} else {
			_, err = workflow.AwaitWithTimeout(ctx, next.Sub(workflow.Now(ctx)), func() bool { return t.closing })
		}
		if err != nil {
			return nil, r.cancelTask(ctx, t, err)
		}
		if t.closing {
			break
		}
		now := workflow.Now(ctx)
		if !overdueAt.IsZero() && !now.Before(overdueAt) {
			overdueAt = time.Time{}
			if err := r.remind(ctx, t, "Overdue: ", -1); err != nil {
				return nil, err
			}
			continue
		}
		if !escalateAt.IsZero() && !now.Before(escalateAt) {
			escalateAt = time.Time{}
			if err := r.reassign(ctx, t, s.Escalation.To, sc); err != nil {
				return nil, err
			}
			continue
		}
		if !remindAt.IsZero() && !now.Before(remindAt) {
			round++
			remindAt = time.Time{}
			if s.Reminder.Every != "" {
				d, _ := dsl.ParseDuration(s.Reminder.Every)
				remindAt = now.Add(d)
			}
			if err := r.remind(ctx, t, "Reminder: ", round); err != nil {
				return nil, err
			}
		}
	}
	if err := workflow.Await(ctx, func() bool { return t.done }); err != nil {
		return nil, err
	}
	return t.result, nil
}

// remind notifies whoever holds an open task: its claimant, else its assignee.
// Rounds keep the notifications of one task apart (reminders count up, the overdue
// notice is -1).
func (r *run) remind(ctx workflow.Context, t *openTask, prefix string, round int) error {
	n := NotifyInput{Call: r.call(t.key), UserID: t.user, Role: t.role, Title: prefix + t.title, Link: "/tasks/" + t.id, Round: round, Attempt: r.in.Attempt}
	if t.claimedBy != "" {
		n.UserID, n.Role = t.claimedBy, ""
	}
	return r.activity(ctx, t.step, ActNotify, n, nil)
}

// assignee resolves an assignee's references: a user email or a role.
func (r *run) assignee(a *dsl.Assignee, sc dsl.Scope) (user, role string, err error) {
	if a == nil {
		return "", "", nil
	}
	if a.User != "" {
		user, err = sc.String(a.User)
	}
	if err == nil && a.Role != "" {
		role, err = sc.String(a.Role)
	}
	return user, role, err
}

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// reassign moves an open task to a new assignee and tells them.
func (r *run) reassign(ctx workflow.Context, t *openTask, to *dsl.Assignee, sc dsl.Scope) error {
	user, role, err := r.assignee(to, sc)
	if err != nil {
		return err
	}
	var who TaskAssignee
	empty := ""
	in := TaskUpdateInput{Call: r.call(t.key), ID: t.id, Title: t.title, Assign: &dsl.Assignee{User: user, Role: role}, ClaimedBy: &empty}
	if err := r.activity(ctx, t.step, ActTaskUpdate, in, &who); err != nil {
		return err
	}
	t.user, t.role, t.claimedBy = who.User, who.Role, ""
	return nil
}

// cancelTask closes the projection of a task whose run was cancelled.
func (r *run) cancelTask(ctx workflow.Context, t *openTask, cause error) error {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	in := TaskUpdateInput{Call: r.call(t.key), ID: t.id, Status: StatusCancelled}
	if err := r.activity(dctx, t.step, ActTaskUpdate, in, nil); err != nil {
		workflow.GetLogger(ctx).Error("close cancelled task", "task", t.id, "err", err)
	}
	return cause
}

// registerHandlers installs the task update and the timeline query.
func (r *run) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateTask, r.onTask,
		workflow.UpdateHandlerOptions{Validator: r.validateTask}); err != nil {
		return err
	}
	return workflow.SetQueryHandler(ctx, QueryTimeline, func() ([]StepState, error) {
		out := make([]StepState, 0, len(r.timeline))
		for _, k := range slices.Sorted(maps.Keys(r.timeline)) {
			out = append(out, *r.timeline[k])
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Position < out[j].Position })
		return out, nil
	})
}

func taskError(kind, msg string, problems ...schema.Problem) error {
	if len(problems) > 0 {
		return temporal.NewApplicationError(msg, kind, problems)
	}
	return temporal.NewApplicationError(msg, kind)
}

// validateTask accepts or rejects a task action before anything is written to the
// history, so the caller learns at once. It must not change the run's state.
func (r *run) validateTask(ctx workflow.Context, a TaskAction) error {
	t := r.tasks[a.Task]
	switch {
	case t == nil:
		return taskError(ErrTaskUnknown, "the task is not open in this run")
	case t.closing:
		return taskError(ErrTaskClosed, "the task is already completed")
	case t.opening:
		// Its assignee is not settled yet; the handler waits for it and checks then.
		return nil
	}
	switch a.Action {
	case TaskComplete:
		if !t.mayAct(a.By) {
			return taskError(ErrTaskForbidden, "only the task's assignee may complete it")
		}
		if !slices.Contains(t.step.Outcomes, a.Outcome) {
			return taskError(ErrTaskInvalid, "the outcome is not one of the task's outcomes",
				schema.Problem{Path: "/outcome", Code: "enum", Message: "must be one of " + dsl.Text(t.step.Outcomes)})
		}
		if t.form != nil {
			data := a.Data
			if data == nil {
				data = map[string]any{}
			}
			doc, err := json.Marshal(data)
			if err != nil {
				return taskError(ErrTaskInvalid, "the data is not JSON")
			}
			if problems := t.form.Validate(doc); len(problems) > 0 {
				for i := range problems {
					problems[i].Path = "/data" + problems[i].Path
				}
				return taskError(ErrTaskInvalid, "the data does not match the task's form", problems...)
			}
		}
	case TaskClaim:
		switch {
		case t.role == "" || !slices.Contains(a.By.Roles, t.role):
			return taskError(ErrTaskForbidden, "only someone with the task's role may claim it")
		case t.claimedBy != "" && t.claimedBy != a.By.ID:
			return taskError(ErrTaskClosed, "someone else claimed the task")
		}
	case TaskReassign:
		if !a.By.IsAdmin && !t.mayAct(a.By) {
			return taskError(ErrTaskForbidden, "only the assignee or an administrator may reassign the task")
		}
		if a.To == nil || (a.To.User == "") == (a.To.Role == "") {
			return taskError(ErrTaskInvalid, "name the new assignee: a user or a role",
				schema.Problem{Path: "/assignee", Code: "required", Message: "give either user or role"})
		}
	default:
		return taskError(ErrTaskInvalid, "unknown task action "+a.Action)
	}
	return nil
}

// onTask applies an accepted action and returns once its projection is written, so
// the inbox agrees with the answer the caller gets.
func (r *run) onTask(ctx workflow.Context, a TaskAction) (TaskResult, error) {
	if t := r.tasks[a.Task]; t != nil && t.opening {
		if err := workflow.Await(ctx, func() bool { return !t.opening || r.tasks[a.Task] == nil }); err != nil {
			return TaskResult{}, err
		}
	}
	if err := r.validateTask(ctx, a); err != nil {
		return TaskResult{}, err // state changed between validation and handling
	}
	t := r.tasks[a.Task]
	switch a.Action {
	case TaskComplete:
		t.closing = true
		t.result = map[string]any{"outcome": a.Outcome, "data": a.Data, "completedBy": a.By.ID, "task": t.id}
		in := TaskUpdateInput{Call: r.call(t.key), ID: t.id, Status: StatusCompleted, Outcome: a.Outcome, Data: a.Data, CompletedBy: a.By.ID}
		err := r.activity(ctx, t.step, ActTaskUpdate, in, nil)
		t.done = true
		if err != nil {
			return TaskResult{}, err
		}
		return TaskResult{Task: t.id, Status: StatusCompleted, Outcome: a.Outcome, User: t.user, Role: t.role, ClaimedBy: t.claimedBy}, nil
	case TaskClaim:
		// Claimed before the projection is written, so a second claim is refused.
		by := a.By.ID
		t.claimedBy = by
		in := TaskUpdateInput{Call: r.call(t.key), ID: t.id, ClaimedBy: &by}
		if err := r.activity(ctx, t.step, ActTaskUpdate, in, nil); err != nil {
			return TaskResult{}, err
		}
	case TaskReassign:
		if err := r.reassign(ctx, t, a.To, dsl.Scope{}); err != nil {
			return TaskResult{}, err
		}
	}
	return TaskResult{Task: t.id, Status: "open", User: t.user, Role: t.role, ClaimedBy: t.claimedBy}, nil
}
