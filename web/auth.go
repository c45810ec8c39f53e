package web

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/engine/auth"
)

const (
	userKey = "tessera.user"
	// sessionCookie holds the session token for browsers: HttpOnly, so scripts on the
	// page (an XSS) cannot read it.
	sessionCookie = "tessera_session"
	// csrfHeader must carry the session's CSRF token on every unsafe cookie request.
	csrfHeader = "X-CSRF-Token"
)

// requireUser resolves the bearer token (session token or API key) or the session
// cookie to a user, or answers 401. Cookie requests that change something must also
// carry the CSRF token, or they are refused with 403: another site can make the browser
// send the cookie, but cannot read the token.
func requireUser(svc *auth.Service) fiber.Handler {
	return func(c *fiber.Ctx) error {
		token, bearer := bearerToken(c)
		if !bearer {
			token = c.Cookies(sessionCookie)
		}
		if token == "" {
			return newError(fiber.StatusUnauthorized, "unauthenticated", "sign in first: send Authorization: Bearer <token or API key>")
		}
		u, err := svc.Authenticate(c.UserContext(), token)
		if err != nil {
			return err
		}
		if !bearer && !safeMethod(c.Method()) && c.Get(csrfHeader) != auth.CSRFToken(token) {
			return newError(fiber.StatusForbidden, "csrf", "missing or wrong "+csrfHeader+" header for a cookie session")
		}
		c.Locals(userKey, u)
		return c.Next()
	}
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

func requireAdmin(c *fiber.Ctx) error {
	if !currentUser(c).IsAdmin {
		return newError(fiber.StatusForbidden, "forbidden", "only administrators may do this")
	}
	return c.Next()
}

func currentUser(c *fiber.Ctx) auth.User {
	u, _ := c.Locals(userKey).(auth.User)
	return u
}

func bearerToken(c *fiber.Ctx) (string, bool) {
	h := c.Get(fiber.HeaderAuthorization)
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	return token, ok && token != ""
}

type authHandlers struct{ auth *auth.Service }

// login opens a session: the token is returned (for API clients) and set as an
// HttpOnly cookie with its CSRF token (for the browser).
func (h *authHandlers) login(c *fiber.Ctx) error {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	token, u, err := h.auth.Login(c.UserContext(), in.Email, in.Password, c.IP())
	if err != nil {
		return err
	}
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: token, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: c.Protocol() == "https", Expires: time.Now().Add(h.auth.SessionTTL)})
	return c.JSON(fiber.Map{"token": token, "csrf_token": auth.CSRFToken(token), "user": u})
}

func (h *authHandlers) logout(c *fiber.Ctx) error {
	token, ok := bearerToken(c)
	if !ok {
		token = c.Cookies(sessionCookie)
	}
	if err := h.auth.Logout(c.UserContext(), token); err != nil {
		return err
	}
	c.ClearCookie(sessionCookie)
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *authHandlers) me(c *fiber.Ctx) error { return c.JSON(currentUser(c)) }

func (h *authHandlers) listUsers(c *fiber.Ctx) error {
	users, err := h.auth.ListUsers(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(listResponse(users))
}

func (h *authHandlers) createUser(c *fiber.Ctx) error {
	var in auth.NewUser
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	u, err := h.auth.CreateUser(c.UserContext(), in)
	if err != nil {
		return err
	}
	h.audit(c, "user.create", u.Email, map[string]any{"roles": u.Roles, "is_admin": u.IsAdmin})
	return c.Status(fiber.StatusCreated).JSON(u)
}

// setPassword is an administrator's password reset; the user's sessions end.
func (h *authHandlers) setPassword(c *fiber.Ctx) error {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return notFound("no user " + c.Params("id"))
	}
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := h.auth.SetPassword(c.UserContext(), id, in.Password); err != nil {
		return err
	}
	h.audit(c, "user.password_reset", id.String(), nil)
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *authHandlers) createAPIKey(c *fiber.Ctx) error {
	var in struct {
		Name      string     `json:"name"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	u := currentUser(c)
	secret, key, err := h.auth.CreateAPIKey(c.UserContext(), u.ID, in.Name, in.ExpiresAt)
	if err != nil {
		return err
	}
	h.audit(c, "api_key.create", key.ID.String(), map[string]any{"name": key.Name})
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"key": secret, "api_key": key})
}

func (h *authHandlers) listAPIKeys(c *fiber.Ctx) error {
	u := currentUser(c)
	owner := &u.ID
	if u.IsAdmin && c.QueryBool("all") {
		owner = nil
	}
	keys, err := h.auth.ListAPIKeys(c.UserContext(), owner)
	if err != nil {
		return err
	}
	return c.JSON(listResponse(keys))
}

func (h *authHandlers) revokeAPIKey(c *fiber.Ctx) error {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return notFound("no api key " + c.Params("id"))
	}
	u := currentUser(c)
	owner := &u.ID
	if u.IsAdmin {
		owner = nil
	}
	if err := h.auth.RevokeAPIKey(c.UserContext(), id, owner); err != nil {
		return err
	}
	h.audit(c, "api_key.revoke", id.String(), nil)
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *authHandlers) listAudit(c *fiber.Ctx) error {
	q := auth.AuditQuery{Action: c.Query("action"), Limit: c.QueryInt("limit", 100)}
	if s := c.Query("actor"); s != "" {
		id, err := uuid.Parse(s)
		if err != nil {
			return badRequest("actor must be a user id")
		}
		q.ActorID = &id
	}
	if s := c.Query("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return badRequest("before must be an event id")
		}
		q.Before = n
	}
	events, err := h.auth.ListAudit(c.UserContext(), q)
	if err != nil {
		return err
	}
	return c.JSON(listResponse(events))
}

// audit records what the signed-in user did.
func (h *authHandlers) audit(c *fiber.Ctx, action, target string, details map[string]any) {
	u := currentUser(c)
	h.auth.Audit(c.UserContext(), auth.Event{ActorID: u.ID, Actor: u.Email, Action: action, Target: target, Details: details, IP: c.IP()})
}
