package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/jackc/pgx/v5"
)

// Token prefixes make Tessera secrets recognisable in logs and secret scanners.
const (
	sessionPrefix = "tss_"
	apiKeyPrefix  = "tsk_"
)

// Login back-off: after freeFailures failures for one (email, address) pair, each
// further failure locks that pair for twice as long, up to maxLockout. A lock expires
// on its own, so an attacker can slow the real user down but never lock them out for good.
const (
	freeFailures = 5
	maxLockout   = 15 * time.Minute
)

// LockedError says when the next login attempt is allowed.
type LockedError struct{ RetryAfter time.Duration }

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed sign-ins; try again in %s", e.RetryAfter.Round(time.Second))
}

// dummyHash is compared against when the email is unknown, so a failed login takes the
// same time whether or not the account exists.
var dummyHash, _ = argon2id.CreateHash("not-a-real-password", argon2id.DefaultParams)

// Login checks the password and opens a session; the token is returned once and only
// its hash is stored. client identifies where the attempt comes from (an IP address).
func (s *Service) Login(ctx context.Context, email, password, client string) (string, User, error) {
	key := strings.ToLower(strings.TrimSpace(email)) + "|" + client
	if wait, err := s.lockedFor(ctx, key); err != nil {
		return "", User{}, err
	} else if wait > 0 {
		return "", User{}, &LockedError{RetryAfter: wait}
	}
	u, hash, err := s.userWithHash(ctx, email)
	if errors.Is(err, ErrInvalidCredentials) {
		_, _ = argon2id.ComparePasswordAndHash(password, dummyHash)
		return "", User{}, s.failLogin(ctx, key, email, client)
	}
	if err != nil {
		return "", User{}, err
	}
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return "", User{}, fmt.Errorf("compare password: %w", err)
	}
	if !ok {
		return "", User{}, s.failLogin(ctx, key, email, client)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM tessera.login_attempts WHERE key = $1`, key); err != nil {
		return "", User{}, err
	}
	token := sessionPrefix + RandomSecret(32)
	if _, err := s.pool.Exec(ctx, `INSERT INTO tessera.sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		hashToken(token), u.ID, time.Now().Add(s.SessionTTL)); err != nil {
		return "", User{}, fmt.Errorf("store session: %w", err)
	}
	s.Audit(ctx, Event{ActorID: u.ID, Actor: u.Email, Action: "login", IP: client})
	return token, u, nil
}

func (s *Service) userWithHash(ctx context.Context, email string) (User, string, error) {
	var hash string
	u, err := scanUserRow(s.pool.QueryRow(ctx, `SELECT `+userColumns+`, u.password_hash FROM tessera.users u
		WHERE lower(u.email) = lower($1) AND u.disabled_at IS NULL AND NOT u.service`, email), &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, "", ErrInvalidCredentials
	}
	return u, hash, err
}

func (s *Service) lockedFor(ctx context.Context, key string) (time.Duration, error) {
	var until *time.Time
	err := s.pool.QueryRow(ctx, `SELECT locked_until FROM tessera.login_attempts WHERE key = $1`, key).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) || until == nil {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(time.Until(*until), 0), nil
}

// failLogin counts a failure and sets the back-off; it always reports bad credentials
// (or the lock it just set), never which of email or password was wrong.
func (s *Service) failLogin(ctx context.Context, key, email, client string) error {
	var failures int
	if err := s.pool.QueryRow(ctx, `INSERT INTO tessera.login_attempts (key, failures) VALUES ($1, 1)
		ON CONFLICT (key) DO UPDATE SET failures = tessera.login_attempts.failures + 1, updated_at = now()
		RETURNING failures`, key).Scan(&failures); err != nil {
		return err
	}
	s.Audit(ctx, Event{Actor: email, Action: "login_failed", IP: client, Details: map[string]any{"failures": failures}})
	if failures <= freeFailures {
		return ErrInvalidCredentials
	}
	lock := time.Duration(math.Min(float64(time.Second)*math.Pow(2, float64(failures-freeFailures)), float64(maxLockout)))
	if _, err := s.pool.Exec(ctx, `UPDATE tessera.login_attempts SET locked_until = now() + $2 * interval '1 millisecond' WHERE key = $1`,
		key, lock.Milliseconds()); err != nil {
		return err
	}
	return &LockedError{RetryAfter: lock}
}

// Authenticate resolves a session token or an API key to its user.
func (s *Service) Authenticate(ctx context.Context, token string) (User, error) {
	var (
		u   User
		err error
	)
	switch {
	case strings.HasPrefix(token, apiKeyPrefix):
		u, err = scanUserRow(s.pool.QueryRow(ctx, `UPDATE tessera.api_keys k SET last_used_at = now()
			FROM tessera.users u WHERE k.key_hash = $1 AND k.user_id = u.id AND k.revoked_at IS NULL
			AND (k.expires_at IS NULL OR k.expires_at > now()) AND u.disabled_at IS NULL AND NOT u.service
			RETURNING `+userColumns, hashToken(token)))
	default:
		u, err = scanUserRow(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM tessera.sessions s JOIN tessera.users u ON u.id = s.user_id
			WHERE s.token_hash = $1 AND s.expires_at > now() AND u.disabled_at IS NULL AND NOT u.service`, hashToken(token)))
	}
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

// CSRFToken is the anti-forgery token of a browser session: derived from the session
// token, which the page cannot read (HttpOnly cookie) and another site cannot learn.
func CSRFToken(sessionToken string) string {
	sum := sha256.Sum256([]byte("tessera-csrf:" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
