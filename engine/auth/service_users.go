package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tessera/tessera/engine/dbtx"
)

// ErrServiceUser refuses credentials to a service identity.
var ErrServiceUser = errors.New("this user is a service identity: it cannot sign in, have a password or hold API keys")

// ServiceUser is a non-human identity a process acts as (a workflow with runAs): a
// real user row, so what it writes names it in created_by, updated_by and history, with
// exactly the roles it declares. It is never an administrator and never signs in.
type ServiceUser struct {
	ID    uuid.UUID
	Email string
	Name  string
	Roles []string
}

// noPassword is stored as a service user's password hash: it is not an argon2id hash,
// so no password can match it even if a query forgot to exclude service users.
const noPassword = "!service"

// PutServiceUser creates or updates a service identity with exactly the given roles.
// db may be the transaction that saves what declares the identity, so both change
// together. disabled_at is left alone: an administrator who disabled the identity
// keeps it disabled (its runs then stop). The id must not be a person's.
func PutServiceUser(ctx context.Context, db dbtx.DB, u ServiceUser) error {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	tag, err := db.Exec(ctx, `INSERT INTO tessera.users (id, email, name, password_hash, roles, is_admin, service)
		VALUES ($1, $2, $3, $4, $5, false, true)
		ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, roles = EXCLUDED.roles,
			password_hash = EXCLUDED.password_hash, is_admin = false
		WHERE tessera.users.service`, u.ID, u.Email, u.Name, noPassword, roles)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("service user %s: %w", u.Email, ErrEmailTaken)
	}
	if err != nil {
		return fmt.Errorf("save service user %s: %w", u.Email, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("service user %s: id %s belongs to a person", u.Email, u.ID)
	}
	return nil
}

// refuseService answers ErrServiceUser when the user is a service identity.
func (s *Service) refuseService(ctx context.Context, id uuid.UUID) error {
	var service bool
	err := s.pool.QueryRow(ctx, `SELECT service FROM tessera.users WHERE id = $1`, id).Scan(&service)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if service {
		return fmt.Errorf("user %s: %w", id, ErrServiceUser)
	}
	return nil
}
