package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/workflows/dsl"
)

// TaskOpen projects a task into the inbox (once: the id is the step's) and notifies
// its assignee.
func (a *Activities) TaskOpen(ctx context.Context, in TaskOpenInput) (TaskAssignee, error) {
	if err := a.begin(ctx, in.Call); err != nil {
		return TaskAssignee{}, err
	}
	who, err := a.resolveAssignee(ctx, &dsl.Assignee{User: in.User, Role: in.Role})
	if err != nil {
		return TaskAssignee{}, err
	}
	var form []byte
	if len(in.Form) > 0 {
		form = in.Form
	}
	_, err = a.Pool.Exec(ctx, `INSERT INTO tessera.workflow_tasks (id, run_id, step, title, description, assignee_user, assignee_role, outcomes, form, due_at)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, '')::uuid, NULLIF($7, ''), $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		in.ID, in.Run, in.Step, in.Title, in.Description, who.User, who.Role, in.Outcomes, form, in.DueAt)
	if err != nil {
		return TaskAssignee{}, fmt.Errorf("open task: %w", err)
	}
	_, err = a.notify(ctx, notification{seed: "task-open:" + in.ID, userID: who.User, role: who.Role,
		title: "New task: " + in.Title, body: in.Description, link: "/tasks/" + in.ID, run: in.Run})
	return who, err
}

// TaskUpdate changes a task's projection: completed, cancelled, claimed or moved to
// another assignee (who is notified).
func (a *Activities) TaskUpdate(ctx context.Context, in TaskUpdateInput) (TaskAssignee, error) {
	if err := a.begin(ctx, in.Call); err != nil {
		return TaskAssignee{}, err
	}
	switch {
	case in.Status == StatusCompleted:
		data, err := json.Marshal(in.Data)
		if err != nil {
			return TaskAssignee{}, err
		}
		_, err = a.Pool.Exec(ctx, `UPDATE tessera.workflow_tasks SET status = 'completed', outcome = $2, data = $3,
			completed_by = NULLIF($4, '')::uuid, completed_at = now() WHERE id = $1 AND status = 'open'`, in.ID, in.Outcome, data, in.CompletedBy)
		return TaskAssignee{}, err
	case in.Status == StatusCancelled:
		_, err := a.Pool.Exec(ctx, `UPDATE tessera.workflow_tasks SET status = 'cancelled' WHERE id = $1 AND status = 'open'`, in.ID)
		return TaskAssignee{}, err
	case in.Assign != nil:
		who, err := a.resolveAssignee(ctx, in.Assign)
		if err != nil {
			return TaskAssignee{}, err
		}
		if _, err := a.Pool.Exec(ctx, `UPDATE tessera.workflow_tasks SET assignee_user = NULLIF($2, '')::uuid,
			assignee_role = NULLIF($3, ''), claimed_by = NULL WHERE id = $1`, in.ID, who.User, who.Role); err != nil {
			return TaskAssignee{}, err
		}
		_, err = a.notify(ctx, notification{seed: "task-assign:" + in.ID + ":" + who.User + ":" + who.Role, userID: who.User, role: who.Role,
			title: "Task assigned to you: " + in.Title, link: "/tasks/" + in.ID, run: in.Run})
		return who, err
	case in.ClaimedBy != nil:
		_, err := a.Pool.Exec(ctx, `UPDATE tessera.workflow_tasks SET claimed_by = NULLIF($2, '')::uuid WHERE id = $1`, in.ID, *in.ClaimedBy)
		return TaskAssignee{}, err
	}
	return TaskAssignee{}, nil
}

// resolveAssignee turns an email into a user id; a role stays a role.
func (a *Activities) resolveAssignee(ctx context.Context, as *dsl.Assignee) (TaskAssignee, error) {
	if as.User == "" {
		return TaskAssignee{Role: as.Role}, nil
	}
	if id, err := uuid.Parse(as.User); err == nil {
		return TaskAssignee{User: id.String()}, nil
	}
	u, err := a.Users.UserByEmail(ctx, as.User)
	if err != nil {
		if errors.Is(err, auth.ErrUserNotFound) {
			return TaskAssignee{}, configError("no active user with email %q", as.User)
		}
		return TaskAssignee{}, err
	}
	return TaskAssignee{User: u.ID.String()}, nil
}

// Notify sends an in-app notification to a user or to everyone with a role. E-mail is
// not sent: Tessera has no SMTP configuration yet.
func (a *Activities) Notify(ctx context.Context, in NotifyInput) (NotifyOutput, error) {
	if err := a.begin(ctx, in.Call); err != nil {
		return NotifyOutput{}, err
	}
	userID := in.UserID
	if userID == "" && in.User != "" {
		who, err := a.resolveAssignee(ctx, &dsl.Assignee{User: in.User})
		if err != nil {
			return NotifyOutput{}, err
		}
		userID = who.User
	}
	n, err := a.notify(ctx, notification{seed: fmt.Sprintf("notify:%s:%d:%s:%d", in.Run, in.Attempt, in.Key, in.Round),
		userID: userID, role: in.Role, title: in.Title, body: in.Body, link: in.Link, run: in.Run})
	return NotifyOutput{Notified: n}, err
}

// notification is one message to a user or a role.
type notification struct {
	seed                   string
	userID, role           string
	title, body, link, run string
}

// notify writes one row per recipient; ids derive from the seed and the user, so a
// retry writes nothing new.
func (a *Activities) notify(ctx context.Context, n notification) (int, error) {
	var users []uuid.UUID
	switch {
	case n.userID != "":
		id, err := uuid.Parse(n.userID)
		if err != nil {
			return 0, configError("notify: %q is not a user id", n.userID)
		}
		users = []uuid.UUID{id}
	case n.role != "":
		rows, err := a.Pool.Query(ctx, `SELECT id FROM tessera.users WHERE $1 = ANY (roles) AND disabled_at IS NULL AND NOT service ORDER BY id`, n.role)
		if err != nil {
			return 0, err
		}
		if users, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return 0, err
		}
	}
	batch := &pgx.Batch{}
	for _, u := range users {
		batch.Queue(`INSERT INTO tessera.notifications (id, user_id, title, body, link, run_id)
			VALUES ($1, $2, $3, $4, $5, NULLIF($6, '')) ON CONFLICT (id) DO NOTHING`,
			stableID(epochZero, n.seed, u.String()), u, n.title, n.body, n.link, n.run)
	}
	if err := a.Pool.SendBatch(ctx, batch).Close(); err != nil {
		return 0, fmt.Errorf("write notifications: %w", err)
	}
	return len(users), nil
}
