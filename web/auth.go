package web

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tessera/tessera/engine/auth"
)

const userKey = "tessera.user"

// requireUser resolves the bearer token to a user or answers 401.
func requireUser(svc *auth.Service) fiber.Handler {
	return func(c *fiber.Ctx) error {
		token, ok := bearerToken(c)
		if !ok {
			return newError(fiber.StatusUnauthorized, "unauthenticated", "sign in first: send Authorization: Bearer <token>")
		}
		u, err := svc.Authenticate(c.UserContext(), token)
		if err != nil {
			return err
		}
		c.Locals(userKey, u)
		return c.Next()
	}
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

func (h *authHandlers) login(c *fiber.Ctx) error {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	token, u, err := h.auth.Login(c.UserContext(), in.Email, in.Password)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"token": token, "user": u})
}

func (h *authHandlers) logout(c *fiber.Ctx) error {
	token, _ := bearerToken(c)
	if err := h.auth.Logout(c.UserContext(), token); err != nil {
		return err
	}
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
	return c.Status(fiber.StatusCreated).JSON(u)
}
