package auth

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Event is one entry of the append-only audit log.
type Event struct {
	ID      int64          `json:"id"`
	At      time.Time      `json:"at"`
	ActorID uuid.UUID      `json:"actor_id"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Target  string         `json:"target"`
	Details map[string]any `json:"details"`
	IP      string         `json:"ip"`
}

// Audit appends an event. A failure to write it is logged, not returned: the audit
// trail must not decide whether the operation it records happens.
func (s *Service) Audit(ctx context.Context, ev Event) {
	details, _ := json.Marshal(ev.Details)
	if ev.Details == nil {
		details = []byte("{}")
	}
	var actorID any
	if ev.ActorID != uuid.Nil {
		actorID = ev.ActorID
	}
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), `INSERT INTO tessera.audit_log (actor_id, actor, action, target, details, ip)
		VALUES ($1, $2, $3, $4, $5, $6)`, actorID, ev.Actor, ev.Action, ev.Target, details, ev.IP); err != nil {
		s.Log.Error("write audit log", "action", ev.Action, "err", err)
	}
}

// AuditQuery filters the audit log; zero values match everything.
type AuditQuery struct {
	Action  string
	ActorID *uuid.UUID
	Before  int64 // id cursor: events older than this
	Limit   int
}

// ListAudit returns events newest first.
func (s *Service) ListAudit(ctx context.Context, q AuditQuery) ([]Event, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, coalesce(actor_id, '00000000-0000-0000-0000-000000000000'), actor, action, target, details, ip
		FROM tessera.audit_log
		WHERE ($1 = '' OR action = $1) AND ($2::uuid IS NULL OR actor_id = $2) AND ($3 = 0 OR id < $3)
		ORDER BY id DESC LIMIT $4`, q.Action, q.ActorID, q.Before, q.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var ev Event
		err := row.Scan(&ev.ID, &ev.At, &ev.ActorID, &ev.Actor, &ev.Action, &ev.Target, &ev.Details, &ev.IP)
		return ev, err
	})
}
