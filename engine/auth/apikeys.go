package auth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// APIKey is a named key for an integration; its secret is only known at creation.
type APIKey struct {
	ID         uuid.UUID  `json:"id"`
	UserID     uuid.UUID  `json:"user_id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// CreateAPIKey makes a key acting as the user; the returned secret is shown once.
func (s *Service) CreateAPIKey(ctx context.Context, userID uuid.UUID, name string, expiresAt *time.Time) (string, APIKey, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", APIKey{}, &FieldError{Field: "/name", Message: "a key needs a name of 1 to 100 characters"}
	}
	if expiresAt != nil && expiresAt.Before(time.Now()) {
		return "", APIKey{}, &FieldError{Field: "/expires_at", Message: "must be in the future"}
	}
	if err := s.refuseService(ctx, userID); err != nil {
		return "", APIKey{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", APIKey{}, err
	}
	secret := apiKeyPrefix + RandomSecret(32)
	k := APIKey{ID: id, UserID: userID, Name: name, ExpiresAt: expiresAt}
	err = s.pool.QueryRow(ctx, `INSERT INTO tessera.api_keys (id, user_id, name, key_hash, expires_at) VALUES ($1, $2, $3, $4, $5)
		RETURNING created_at`, id, userID, name, hashToken(secret), expiresAt).Scan(&k.CreatedAt)
	if err != nil {
		return "", APIKey{}, fmt.Errorf("store api key: %w", err)
	}
	return secret, k, nil
}

// ListAPIKeys lists a user's keys (all users' when userID is nil).
func (s *Service) ListAPIKeys(ctx context.Context, userID *uuid.UUID) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, user_id, name, created_at, expires_at, revoked_at, last_used_at
		FROM tessera.api_keys WHERE $1::uuid IS NULL OR user_id = $1 ORDER BY created_at DESC`, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		err := row.Scan(&k.ID, &k.UserID, &k.Name, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt)
		return k, err
	})
}

// RevokeAPIKey revokes a key; owner, when not nil, restricts it to that user's keys.
func (s *Service) RevokeAPIKey(ctx context.Context, id uuid.UUID, owner *uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tessera.api_keys SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)`, id, owner)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("api key %s: %w", id, ErrUserNotFound)
	}
	return nil
}
