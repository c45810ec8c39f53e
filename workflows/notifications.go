package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/schema"
)

// Notification is an in-app message to one user.
type Notification struct {
	ID        uuid.UUID  `json:"id"`
	Title     string     `json:"title"`
	Body      string     `json:"body"`
	Link      string     `json:"link"`
	Run       *string    `json:"run"`
	CreatedAt time.Time  `json:"createdAt"`
	ReadAt    *time.Time `json:"readAt"`
}

// ListNotifications lists the actor's notifications, newest first.
func (s *Service) ListNotifications(ctx context.Context, actor engine.Actor, unreadOnly bool, limit int) ([]Notification, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := s.Pool.Query(ctx, fmt.Sprintf(`SELECT `+notificationColumns+` FROM tessera.notifications
		WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) ORDER BY created_at DESC, id DESC LIMIT %d`, limit), actor.UserID, unreadOnly)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanNotification)
	if out == nil {
		out = []Notification{}
	}
	return out, err
}

// NotificationReplayLimit bounds what NotificationsAfter returns.
const NotificationReplayLimit = 100

// NotificationsAfter lists the actor's notifications created after the one with id
// after (in created_at, id order), oldest first: what a reconnecting stream missed. Of
// more than NotificationReplayLimit it keeps the newest, since an alert stream is for
// what is current and the list endpoint still has the rest. An id that is not one of
// the actor's notifications yields none.
func (s *Service) NotificationsAfter(ctx context.Context, actor engine.Actor, after uuid.UUID) ([]Notification, error) {
	rows, err := s.Pool.Query(ctx, fmt.Sprintf(`SELECT `+notificationColumns+` FROM (
		SELECT n.* FROM tessera.notifications n JOIN tessera.notifications seen ON seen.id = $2 AND seen.user_id = $1
		WHERE n.user_id = $1 AND (n.created_at, n.id) > (seen.created_at, seen.id)
		ORDER BY n.created_at DESC, n.id DESC LIMIT %d) missed ORDER BY created_at, id`, NotificationReplayLimit), actor.UserID, after)
	if err != nil {
		return nil, fmt.Errorf("notifications after %s: %w", after, err)
	}
	out, err := pgx.CollectRows(rows, scanNotification)
	if out == nil {
		out = []Notification{}
	}
	return out, err
}

// notificationColumns are what scanNotification reads.
const notificationColumns = `id, title, body, link, run_id, created_at, read_at`

func scanNotification(row pgx.CollectableRow) (Notification, error) {
	var n Notification
	err := row.Scan(&n.ID, &n.Title, &n.Body, &n.Link, &n.Run, &n.CreatedAt, &n.ReadAt)
	return n, err
}

// MarkRead marks one of the actor's notifications read.
func (s *Service) MarkRead(ctx context.Context, actor engine.Actor, id uuid.UUID) error {
	tag, err := s.Pool.Exec(ctx, `UPDATE tessera.notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND user_id = $2`, id, actor.UserID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("notification %s: %w", id, ErrNotFound)
	}
	return nil
}

// Credential is a named secret for HTTP steps.
type Credential struct {
	Type   string            `json:"type"`
	Secret map[string]string `json:"secret,omitempty"`
}

// CredentialInfo is what the API shows of a credential: never the secret.
type CredentialInfo struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	UpdatedAt time.Time `json:"updatedAt"`
}

var credentialName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// PutCredential stores a credential; the secret's keys depend on its type: bearer
// {token}, basic {username, password}, header {header, value}.
func (s *Service) PutCredential(ctx context.Context, actor engine.Actor, name string, c Credential) error {
	need := map[string][]string{CredentialBearer: {"token"}, CredentialBasic: {"username", "password"}, CredentialHeader: {"header", "value"}}
	keys, ok := need[c.Type]
	var problems []schema.Problem
	if !credentialName.MatchString(name) {
		problems = append(problems, schema.Problem{Path: "/name", Code: "pattern", Message: "lower case letters, digits and _"})
	}
	if !ok {
		problems = append(problems, schema.Problem{Path: "/type", Code: "enum", Message: "must be bearer, basic or header"})
	}
	for _, k := range keys {
		if c.Secret[k] == "" {
			problems = append(problems, schema.Problem{Path: "/secret/" + k, Code: "required", Message: "required for type " + c.Type})
		}
	}
	if len(problems) > 0 {
		return &engine.ValidationError{Problems: problems}
	}
	secret, err := json.Marshal(c.Secret)
	if err != nil {
		return err
	}
	_, err = s.Pool.Exec(ctx, `INSERT INTO tessera.credentials (name, type, secret, updated_by) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET type = EXCLUDED.type, secret = EXCLUDED.secret, updated_by = EXCLUDED.updated_by, updated_at = now()`,
		name, c.Type, secret, actor.UserID)
	return err
}

// ListCredentials lists credential names and types.
func (s *Service) ListCredentials(ctx context.Context) ([]CredentialInfo, error) {
	rows, err := s.Pool.Query(ctx, `SELECT name, type, updated_at FROM tessera.credentials ORDER BY name`)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CredentialInfo])
	if out == nil {
		out = []CredentialInfo{}
	}
	return out, err
}
