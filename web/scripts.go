package web

import (
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/tessera/tessera/engine"
)

type scriptHandlers struct {
	engine *engine.Engine
	audit  auditFunc
}

func (h *scriptHandlers) put(c *fiber.Ctx) error {
	var in engine.ScriptInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	_, existsErr := h.engine.GetScript(c.UserContext(), c.Params("name"))
	s, err := h.engine.PutScript(c.UserContext(), actor(c), c.Params("name"), in)
	if err != nil {
		return err
	}
	h.audit(c, "script.put", s.Name, map[string]any{"version": s.Version, "module": s.Module})
	status := fiber.StatusOK
	if existsErr != nil {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(s)
}

func (h *scriptHandlers) get(c *fiber.Ctx) error {
	s, err := h.engine.GetScript(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(s)
}

func (h *scriptHandlers) logs(c *fiber.Ctx) error {
	limit, _ := strconv.Atoi(c.Query("limit", "50"))
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	if _, err := h.engine.GetScript(c.UserContext(), c.Params("name")); err != nil {
		return err
	}
	logs, err := h.engine.ScriptLogs(c.UserContext(), c.Params("name"), limit)
	if err != nil {
		return err
	}
	return c.JSON(listResponse(logs))
}

// test runs a script against a fixture without writing anything.
func (h *scriptHandlers) test(c *fiber.Ctx) error {
	var in engine.ScriptTest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := h.engine.TestScript(c.UserContext(), actor(c), in)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// endpoint serves a module's custom endpoint script.
func (h *scriptHandlers) endpoint(c *fiber.Ctx) error {
	req := engine.EndpointRequest{Method: c.Method(), Query: map[string]any{}}
	for k, v := range c.Queries() {
		req.Query[k] = v
	}
	if c.Method() == fiber.MethodPost && len(c.Body()) > 0 {
		if err := checkDepth(c.Body()); err != nil {
			return err
		}
		if err := json.Unmarshal(c.Body(), &req.Body); err != nil {
			return jsonError(err)
		}
	}
	value, err := h.engine.RunEndpoint(c.UserContext(), actor(c), c.Params("module"), c.Params("name"), req)
	if err != nil {
		return err
	}
	return c.JSON(value)
}
