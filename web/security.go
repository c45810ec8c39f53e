package web

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
)

type securityHandlers struct {
	auth   *auth.Service
	engine *engine.Engine
	audit  func(c *fiber.Ctx, action, target string, details map[string]any)
}

func (h *securityHandlers) listRoles(c *fiber.Ctx) error {
	roles, err := h.auth.ListRoles(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(listResponse(roles))
}

func (h *securityHandlers) getRole(c *fiber.Ctx) error {
	r, err := h.auth.GetRole(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(r)
}

// putRole saves a role after checking it against the live entities; the change is
// audited with the whole new definition.
func (h *securityHandlers) putRole(c *fiber.Ctx) error {
	body, err := recordBody(c)
	if err != nil {
		return err
	}
	r, err := auth.ParseRole(c.Params("name"), body)
	if err != nil {
		return err
	}
	if err := h.engine.CheckRole(c.UserContext(), r); err != nil {
		return err
	}
	if err := h.auth.PutRole(c.UserContext(), r); err != nil {
		return err
	}
	var def map[string]any
	_ = json.Unmarshal(body, &def)
	h.audit(c, "role.put", r.Name, map[string]any{"definition": def})
	return c.JSON(r)
}

// explain answers why a user can or cannot see or change a record.
func (h *securityHandlers) explain(c *fiber.Ctx) error {
	u, err := h.auth.UserByEmail(c.UserContext(), c.Query("user"))
	if err != nil {
		if id, perr := uuid.Parse(c.Query("user")); perr == nil {
			u, err = h.auth.UserByID(c.UserContext(), id)
		}
	}
	if err != nil {
		return notFound("no user " + c.Query("user"))
	}
	var id *uuid.UUID
	if s := c.Query("id"); s != "" {
		parsed, err := uuid.Parse(s)
		if err != nil {
			return badRequest("id must be a record id")
		}
		id = &parsed
	}
	ex, err := h.engine.Explain(c.UserContext(), u, c.Query("entity"), id)
	if err != nil {
		return err
	}
	return c.JSON(ex)
}

func (h *securityHandlers) report(c *fiber.Ctx) error {
	var rq engine.ReportQuery
	if err := decodeJSON(c, &rq); err != nil {
		return err
	}
	items, err := h.engine.Report(c.UserContext(), actor(c), rq)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": items})
}
