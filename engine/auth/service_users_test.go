package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/internal/testpool"
)

func setup(t *testing.T) (*pgxpool.Pool, *auth.Service) {
	t.Helper()
	pool := testpool.New(t)
	return pool, auth.NewService(pool)
}

// TestServiceUserCannotSignIn: a service identity acts for a process only. It has no
// password, no session, no API key, and is never an administrator, whatever door is
// tried; it is listed, marked, so what it wrote can be traced to it.
func TestServiceUserCannotSignIn(t *testing.T) {
	pool, svc := setup(t)
	ctx := context.Background()
	if err := svc.PutRole(ctx, auth.Role{Name: "clerk", Entities: map[string]auth.EntityGrant{"invoice": {Create: true}}}); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	su := auth.ServiceUser{ID: id, Email: "workflow+billing@service.local", Name: "Workflow billing", Roles: []string{"clerk"}}
	if err := auth.PutServiceUser(ctx, pool, su); err != nil {
		t.Fatal(err)
	}
	if err := auth.PutServiceUser(ctx, pool, su); err != nil {
		t.Fatalf("saving it again: %v", err)
	}

	u, err := svc.UserByID(ctx, id)
	if err != nil {
		t.Fatalf("workflows load the identity as any user: %v", err)
	}
	if !u.Service || u.IsAdmin || u.Policy.Admin || len(u.Policy.Roles) != 1 || u.Policy.Roles[0].Name != "clerk" {
		t.Fatalf("loaded %+v policy %+v", u, u.Policy)
	}

	for _, password := range []string{"", "!service", "a long test password"} {
		if _, _, err := svc.Login(ctx, su.Email, password, "test"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("login with %q: %v", password, err)
		}
	}
	if err := svc.SetPassword(ctx, id, "a long new password"); !errors.Is(err, auth.ErrServiceUser) {
		t.Fatalf("password reset: %v", err)
	}
	if _, _, err := svc.CreateAPIKey(ctx, id, "integration", nil); !errors.Is(err, auth.ErrServiceUser) {
		t.Fatalf("api key: %v", err)
	}
	// Below the service: the database refuses credentials and administrator rights too.
	if _, err := pool.Exec(ctx, `INSERT INTO tessera.sessions (token_hash, user_id, expires_at) VALUES ('\x01', $1, now() + interval '1 hour')`, id); err == nil {
		t.Fatal("a session row was accepted for a service user")
	}
	if _, err := pool.Exec(ctx, `INSERT INTO tessera.api_keys (id, user_id, name, key_hash) VALUES ($1, $2, 'k', '\x02')`, uuid.New(), id); err == nil {
		t.Fatal("an api key row was accepted for a service user")
	}
	if _, err := pool.Exec(ctx, `UPDATE tessera.users SET is_admin = true WHERE id = $1`, id); err == nil {
		t.Fatal("a service user was made an administrator")
	}

	users, err := svc.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || !users[0].Service {
		t.Fatalf("listed %+v", users)
	}

	// A person's id or email is never taken over by a service identity.
	person, err := svc.CreateUser(ctx, auth.NewUser{Email: "ann@example.com", Password: "a long test password"})
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.PutServiceUser(ctx, pool, auth.ServiceUser{ID: person.ID, Email: "workflow+x@service.local", Name: "x"}); err == nil {
		t.Fatal("a person became a service user")
	}
	if err := auth.PutServiceUser(ctx, pool, auth.ServiceUser{ID: uuid.New(), Email: "ANN@example.com", Name: "x"}); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("a person's email: %v", err)
	}
	if _, _, err := svc.Login(ctx, "ann@example.com", "a long test password", "test"); err != nil {
		t.Fatalf("the person still signs in: %v", err)
	}
}
