package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/jackc/pgx/v5"
)

// tokenPrefix marks Tessera session tokens so they are recognisable in logs and scanners.
const tokenPrefix = "tss_"

// dummyHash is compared against when the email is unknown, so a failed login takes the
// same time whether or not the account exists.
var dummyHash, _ = argon2id.CreateHash("not-a-real-password", argon2id.DefaultParams)

// Login checks the password and opens a session; the token is returned once and only
// its hash is stored.
func (s *Service) Login(ctx context.Context, email, password string) (string, User, error) {
	var (
		u    User
		hash string
	)
	err := s.pool.QueryRow(ctx, `SELECT id, email, name, roles, is_admin, created_at, password_hash
		FROM tessera.users WHERE lower(email) = lower($1) AND disabled_at IS NULL`, email).
		Scan(&u.ID, &u.Email, &u.Name, &u.Roles, &u.IsAdmin, &u.CreatedAt, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		_, _ = argon2id.ComparePasswordAndHash(password, dummyHash)
		return "", User{}, ErrInvalidCredentials
	}
	if err != nil {
		return "", User{}, fmt.Errorf("load user: %w", err)
	}
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return "", User{}, fmt.Errorf("compare password: %w", err)
	}
	if !ok {
		return "", User{}, ErrInvalidCredentials
	}
	token := tokenPrefix + RandomSecret(32)
	if _, err := s.pool.Exec(ctx, `INSERT INTO tessera.sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		hashToken(token), u.ID, time.Now().Add(s.SessionTTL)); err != nil {
		return "", User{}, fmt.Errorf("store session: %w", err)
	}
	return token, u, nil
}

// Authenticate resolves a bearer token to its user.
func (s *Service) Authenticate(ctx context.Context, token string) (User, error) {
	var u User
	err := s.pool.QueryRow(ctx, `SELECT u.id, u.email, u.name, u.roles, u.is_admin, u.created_at
		FROM tessera.sessions s JOIN tessera.users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > now() AND u.disabled_at IS NULL`, hashToken(token)).
		Scan(&u.ID, &u.Email, &u.Name, &u.Roles, &u.IsAdmin, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrUnauthenticated
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	return u, nil
}

// Logout revokes the session of the token.
func (s *Service) Logout(ctx context.Context, token string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM tessera.sessions WHERE token_hash = $1`, hashToken(token))
	return err
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
