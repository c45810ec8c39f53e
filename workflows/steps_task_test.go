package workflows

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tessera/tessera/engine/auth"
)

const approvalDef = `{
  "name": "approval", "trigger": {"type": "manual"},
  "output": {"outcome": "$steps.approve.outcome", "note": "$steps.approve.data.note", "decided": "$vars.decided"},
  "steps": [
    {"id": "approve", "type": "task", "title": "Approve {{ $input.name }}", "assignee": {"user": "$input.approver"},
     "outcomes": ["approve", "reject"], "due": "2d",
     "form": {"type": "object", "required": ["note"], "properties": {"note": {"type": "string", "minLength": 2}}}},
    {"id": "after", "type": "condition", "if": "$steps.approve.outcome == \"approve\"",
     "then": [{"id": "yes", "type": "set", "vars": {"decided": "approved"}}],
     "else": [{"id": "no", "type": "set", "vars": {"decided": "rejected"}}]}]}`

func by(u auth.User) TaskUser { return TaskUser{ID: u.ID.String(), Roles: u.Roles, IsAdmin: u.IsAdmin} }

// update sends a task action and reports how the validator and handler answered.
func update(env *testsuite.TestWorkflowEnvironment, id string, a TaskAction, got *[]string) {
	env.UpdateWorkflow(UpdateTask, id, &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) {
			var appErr *temporal.ApplicationError
			if errors.As(err, &appErr) {
				*got = append(*got, id+":rejected:"+appErr.Type())
				return
			}
			*got = append(*got, id+":rejected:"+err.Error())
		},
		OnComplete: func(res any, err error) {
			if err != nil {
				*got = append(*got, id+":failed:"+err.Error())
				return
			}
			*got = append(*got, id+":completed:"+res.(TaskResult).Status)
		},
	}, a)
}

// TestTask opens a task for bob and checks that only bob, with a listed outcome and
// data that fit the form, completes it, and only once.
func TestTask(t *testing.T) {
	b := setup(t)
	var got []string
	var task [16]byte
	out, err := b.run("approval-1", approvalDef, map[string]any{"name": "Acme", "approver": "bob@example.com"}, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() {
			var open int
			task = taskIDOf(b, "approval-1")
			open = b.count(`SELECT count(*) FROM tessera.workflow_tasks WHERE id = $1 AND status = 'open' AND assignee_user = $2`, task, b.bob.ID)
			got = append(got, fmt.Sprintf("open:%d", open))
			id := uuidString(task)
			update(env, "carol", TaskAction{Task: id, Action: TaskComplete, Outcome: "approve", Data: map[string]any{"note": "ok"}, By: by(b.carol)}, &got)
			update(env, "outcome", TaskAction{Task: id, Action: TaskComplete, Outcome: "maybe", Data: map[string]any{"note": "ok"}, By: by(b.bob)}, &got)
			update(env, "form", TaskAction{Task: id, Action: TaskComplete, Outcome: "approve", Data: map[string]any{"note": 5}, By: by(b.bob)}, &got)
			update(env, "unknown", TaskAction{Task: "nope", Action: TaskComplete, Outcome: "approve", By: by(b.bob)}, &got)
			update(env, "bob", TaskAction{Task: id, Action: TaskComplete, Outcome: "approve", Data: map[string]any{"note": "fine"}, By: by(b.bob)}, &got)
			update(env, "again", TaskAction{Task: id, Action: TaskComplete, Outcome: "reject", Data: map[string]any{"note": "no"}, By: by(b.bob)}, &got)
		}, time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{"open:1", "carol:rejected:" + ErrTaskForbidden, "outcome:rejected:" + ErrTaskInvalid, "form:rejected:" + ErrTaskInvalid,
		"unknown:rejected:" + ErrTaskUnknown, "again:rejected:" + ErrTaskClosed, "bob:completed:completed"})
	if fmt.Sprint(got) != want {
		t.Fatalf("updates answered\n %v\nwant\n %v", got, want)
	}
	if jsonString(out) != `{"decided":"approved","note":"fine","outcome":"approve"}` {
		t.Fatalf("output %s", jsonString(out))
	}
	if n := b.count(`SELECT count(*) FROM tessera.workflow_tasks WHERE id = $1 AND status = 'completed' AND outcome = 'approve' AND completed_by = $2`, task, b.bob.ID); n != 1 {
		t.Fatal("task projection not completed")
	}
	if n := b.count(`SELECT count(*) FROM tessera.notifications WHERE user_id = $1 AND title = 'New task: Approve Acme'`, b.bob.ID); n != 1 {
		t.Fatalf("%d notifications for bob", n)
	}
}

func taskIDOf(b *bundle, run string) (id [16]byte) {
	b.t.Helper()
	if err := b.pool.QueryRow(b.t.Context(), `SELECT id FROM tessera.workflow_tasks WHERE run_id = $1 ORDER BY created_at DESC LIMIT 1`, run).Scan(&id); err != nil {
		b.t.Fatal(err)
	}
	return id
}

// TestTaskRoleClaimReminderEscalation: a role task is claimed by one manager, reminded
// after a day and escalated to the admin after three, who completes it.
func TestTaskRoleClaimReminderEscalation(t *testing.T) {
	b := setup(t)
	dave := b.user("dave@example.com", "manager")
	def := `{
	  "name": "escalate", "trigger": {"type": "manual"},
	  "output": {"outcome": "$steps.review.outcome", "by": "$steps.review.completedBy"},
	  "steps": [{"id": "review", "type": "task", "title": "Review", "assignee": {"role": "manager"}, "outcomes": ["done"], "due": "2d6h",
	    "reminder": {"after": "1d", "every": "1d"}, "escalation": {"after": "3d12h", "to": {"user": "admin@example.com"}}}]}`
	var got []string
	out, err := b.run("escalate-1", def, nil, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() {
			id := uuidString(taskIDOf(b, "escalate-1"))
			update(env, "bob-claim", TaskAction{Task: id, Action: TaskClaim, By: by(b.bob)}, &got)
			update(env, "carol-claim", TaskAction{Task: id, Action: TaskClaim, By: by(b.carol)}, &got)
			update(env, "dave-claim", TaskAction{Task: id, Action: TaskClaim, By: by(dave)}, &got)
			update(env, "dave-done", TaskAction{Task: id, Action: TaskComplete, Outcome: "done", By: by(dave)}, &got)
		}, time.Hour)
		env.RegisterDelayedCallback(func() {
			id := uuidString(taskIDOf(b, "escalate-1"))
			update(env, "carol-late", TaskAction{Task: id, Action: TaskComplete, Outcome: "done", By: by(b.carol)}, &got)
			update(env, "admin-done", TaskAction{Task: id, Action: TaskComplete, Outcome: "done", By: by(b.admin)}, &got)
		}, 4*24*time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Rejections answer at once, acceptances once their projection is written.
	want := fmt.Sprint([]string{"bob-claim:rejected:" + ErrTaskForbidden, "dave-claim:rejected:" + ErrTaskClosed,
		"dave-done:rejected:" + ErrTaskForbidden, "carol-claim:completed:open", "carol-late:rejected:" + ErrTaskForbidden, "admin-done:completed:completed"})
	if fmt.Sprint(got) != want {
		t.Fatalf("updates answered\n %v\nwant\n %v", got, want)
	}
	if jsonString(out) != fmt.Sprintf(`{"by":%q,"outcome":"done"}`, b.admin.ID) {
		t.Fatalf("output %s", jsonString(out))
	}
	// Reminders on days 1, 2 and 3 went to carol, who had claimed it.
	if n := b.count(`SELECT count(*) FROM tessera.notifications WHERE user_id = $1 AND title = 'Reminder: Review'`, b.carol.ID); n != 3 {
		t.Fatalf("%d reminders for carol", n)
	}
	if n := b.count(`SELECT count(*) FROM tessera.notifications WHERE user_id = $1 AND title = 'Overdue: Review'`, b.carol.ID); n != 1 {
		t.Fatalf("%d overdue notices for carol", n)
	}
	if n := b.count(`SELECT count(*) FROM tessera.notifications WHERE user_id = $1 AND title = 'Task assigned to you: Review'`, b.admin.ID); n != 1 {
		t.Fatalf("%d escalation notices for the admin", n)
	}
	if n := b.count(`SELECT count(*) FROM tessera.notifications WHERE title = 'New task: Review'`); n != 2 {
		t.Fatalf("%d new-task notices, want one per manager", n)
	}
}

func uuidString(id [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
}

// TestTaskCompletedAsItOpens: someone completes a task the moment the inbox shows it,
// before the run has seen the activity that opened it return. The run accepts it,
// waits for the task to be open, then checks and applies it (it used to refuse it as
// "not open in this run").
func TestTaskCompletedAsItOpens(t *testing.T) {
	b := setup(t)
	var got []string
	out, err := b.run("approval-race", approvalDef, map[string]any{"name": "Acme", "approver": "bob@example.com"}, func(env *testsuite.TestWorkflowEnvironment) {
		env.OnActivity(ActTaskOpen, mock.Anything, mock.Anything).Return(func(ctx context.Context, in TaskOpenInput) (TaskAssignee, error) {
			who, err := b.acts.TaskOpen(ctx, in) // the inbox row exists from here on
			update(env, "bob", TaskAction{Task: in.ID, Action: TaskComplete, Outcome: "approve", Data: map[string]any{"note": "at once"}, By: by(b.bob)}, &got)
			return who, err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{"bob:completed:completed"})
	if fmt.Sprint(got) != want {
		t.Fatalf("updates answered\n %v\nwant\n %v", got, want)
	}
	if jsonString(out) != `{"decided":"approved","note":"at once","outcome":"approve"}` {
		t.Fatalf("output %s", jsonString(out))
	}
}
