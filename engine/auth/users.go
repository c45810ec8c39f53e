// Package auth holds identities: users, password hashes and session tokens.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MinPasswordLength is enforced on every password a user sets.
const MinPasswordLength = 10

// User is an identity that can sign in.
type User struct {
	ID        uuid.UUID `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	Teams     []string  `json:"teams"`
	IsAdmin   bool      `json:"is_admin"`
	Service   bool      `json:"service"` // a workflow's identity (runAs): listed, never signs in
	CreatedAt time.Time `json:"created_at"`
	// Policy is the union of the user's roles, loaded with the user.
	Policy *Policy `json:"-"`
}

// userColumns selects a user (alias u) with the definitions of their roles, so one
// query per request yields identity and permissions, never stale.
const userColumns = `u.id, u.email, u.name, u.roles, u.teams, u.is_admin, u.service, u.created_at,
	(SELECT coalesce(jsonb_agg(r.definition ORDER BY r.name), '[]') FROM tessera.roles r WHERE r.name = ANY(u.roles))`

func scanUserRow(row pgx.Row, extra ...any) (User, error) {
	var (
		u     User
		roles []byte
	)
	dest := append([]any{&u.ID, &u.Email, &u.Name, &u.Roles, &u.Teams, &u.IsAdmin, &u.Service, &u.CreatedAt, &roles}, extra...)
	if err := row.Scan(dest...); err != nil {
		return User{}, err
	}
	u.Policy = &Policy{Admin: u.IsAdmin}
	if err := json.Unmarshal(roles, &u.Policy.Roles); err != nil {
		return User{}, fmt.Errorf("roles of %s: %w", u.Email, err)
	}
	return u, nil
}

// UserByID loads a user with their policy (workflows acting as the user who started them).
func (s *Service) UserByID(ctx context.Context, id uuid.UUID) (User, error) {
	u, err := scanUserRow(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM tessera.users u WHERE u.id = $1 AND u.disabled_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("user %s: %w", id, ErrUnauthenticated)
	}
	return u, err
}

// UserByEmail loads a user with their policy.
func (s *Service) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUserRow(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM tessera.users u WHERE lower(u.email) = lower($1) AND u.disabled_at IS NULL`, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("user %s: %w", email, ErrUserNotFound)
	}
	return u, err
}

// NewUser is the input of CreateUser.
type NewUser struct {
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Password string   `json:"password"`
	Roles    []string `json:"roles"`
	Teams    []string `json:"teams"`
	IsAdmin  bool     `json:"is_admin"`
}

// FieldError reports bad input on one field of a request.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

var (
	// ErrEmailTaken is returned when another user already has the email.
	ErrEmailTaken = errors.New("a user with this email already exists")
	// ErrInvalidCredentials hides whether the email or the password was wrong.
	ErrInvalidCredentials = errors.New("invalid email or password")
	// ErrUnauthenticated means the token is unknown, expired or revoked.
	ErrUnauthenticated = errors.New("not signed in or session expired")
	// ErrUserNotFound is returned for an unknown user.
	ErrUserNotFound = errors.New("user not found")
)

// Service reads and writes users and sessions.
type Service struct {
	pool       *pgxpool.Pool
	SessionTTL time.Duration
	Log        *slog.Logger
}

// NewService returns a Service over the system tables.
func NewService(pool *pgxpool.Pool) *Service {
	return &Service{pool: pool, SessionTTL: 12 * time.Hour, Log: slog.Default()}
}

func validateNewUser(u *NewUser) error {
	u.Email = strings.TrimSpace(u.Email)
	if addr, err := mail.ParseAddress(u.Email); err != nil || addr.Address != u.Email {
		return &FieldError{Field: "/email", Message: "must be a valid email address"}
	}
	if len(u.Password) < MinPasswordLength {
		return &FieldError{Field: "/password", Message: fmt.Sprintf("must be at least %d characters", MinPasswordLength)}
	}
	if u.Roles == nil {
		u.Roles = []string{}
	}
	if u.Teams == nil {
		u.Teams = []string{}
	}
	return nil
}

// CreateUser validates and stores a user with an argon2id password hash.
func (s *Service) CreateUser(ctx context.Context, in NewUser) (User, error) {
	return createUser(ctx, s.pool, in)
}

type execQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func createUser(ctx context.Context, db execQuerier, in NewUser) (User, error) {
	if err := validateNewUser(&in); err != nil {
		return User{}, err
	}
	hash, err := argon2id.CreateHash(in.Password, argon2id.DefaultParams)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return User{}, err
	}
	u := User{ID: id, Email: in.Email, Name: in.Name, Roles: in.Roles, Teams: in.Teams, IsAdmin: in.IsAdmin}
	err = db.QueryRow(ctx, `INSERT INTO tessera.users (id, email, name, password_hash, roles, teams, is_admin)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
		id, in.Email, in.Name, hash, in.Roles, in.Teams, in.IsAdmin).Scan(&u.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return User{}, ErrEmailTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("insert user: %w", err)
	}
	return u, nil
}

// ListUsers returns all users ordered by email.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM tessera.users u WHERE u.disabled_at IS NULL ORDER BY lower(u.email)`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) { return scanUserRow(row) })
}

// SetPassword replaces a user's password (an admin's reset) and signs them out everywhere.
func (s *Service) SetPassword(ctx context.Context, id uuid.UUID, password string) error {
	if len(password) < MinPasswordLength {
		return &FieldError{Field: "/password", Message: fmt.Sprintf("must be at least %d characters", MinPasswordLength)}
	}
	hash, err := argon2id.CreateHash(password, argon2id.DefaultParams)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE tessera.users SET password_hash = $2 WHERE id = $1 AND NOT service`, id, hash)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		if err := s.refuseService(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("user %s: %w", id, ErrUserNotFound)
	}
	_, err = s.pool.Exec(ctx, `DELETE FROM tessera.sessions WHERE user_id = $1`, id)
	return err
}

// Bootstrap creates the first admin when there is no user at all. An empty password
// means "generate one"; the password actually set is returned so it can be shown once.
// The table lock makes two nodes starting together create one admin, not two.
func (s *Service) Bootstrap(ctx context.Context, email, password string) (created bool, usedPassword string, err error) {
	if email == "" {
		email = "admin@tessera.local"
	}
	if password == "" {
		password = RandomSecret(18)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, "", err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE tessera.users IN EXCLUSIVE MODE"); err != nil {
		return false, "", fmt.Errorf("lock users: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tessera.users)").Scan(&exists); err != nil {
		return false, "", err
	}
	if exists {
		return false, "", nil
	}
	if _, err := createUser(ctx, tx, NewUser{Email: email, Name: "Administrator", Password: password, Roles: []string{"admin"}, IsAdmin: true}); err != nil {
		return false, "", fmt.Errorf("create first admin: %w", err)
	}
	return true, password, tx.Commit(ctx)
}

// RandomSecret returns n random bytes, URL-safe base64 encoded.
func RandomSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
