package web

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/engine"
)

type recordHandlers struct {
	engine *engine.Engine
	audit  auditFunc
}

// auditFunc records what the signed-in user did in the audit log.
type auditFunc func(c *fiber.Ctx, action, target string, details map[string]any)

func actor(c *fiber.Ctx) engine.Actor { return engine.ActorFor(currentUser(c)) }

// recordBody returns the raw JSON body after the checks every write shares.
func recordBody(c *fiber.Ctx) ([]byte, error) {
	body := c.Body()
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, badRequest("the request body is empty; send a JSON object")
	}
	if err := checkDepth(body); err != nil {
		return nil, err
	}
	if !json.Valid(body) {
		var v any
		return nil, jsonError(json.Unmarshal(body, &v))
	}
	return body, nil
}

func recordID(c *fiber.Ctx) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return uuid.Nil, notFound("no record with id " + c.Params("id"))
	}
	return id, nil
}

// ifMatch reads the record version from If-Match ("3", "\"3\"" or "W/\"3\"").
func ifMatch(c *fiber.Ctx) (*int, error) {
	h := strings.TrimSpace(c.Get(fiber.HeaderIfMatch))
	if h == "" {
		return nil, nil
	}
	h = strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	v, err := strconv.Atoi(h)
	if err != nil {
		return nil, badRequest("If-Match must be the record version, e.g. If-Match: \"3\"")
	}
	return &v, nil
}

// sendRecord answers with the record and its version as ETag.
func sendRecord(c *fiber.Ctx, status int, rec json.RawMessage) error {
	var meta struct {
		Version int `json:"version"`
	}
	if json.Unmarshal(rec, &meta) == nil && meta.Version > 0 {
		c.Set(fiber.HeaderETag, `"`+strconv.Itoa(meta.Version)+`"`)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(status).Send(rec)
}

func (h *recordHandlers) create(c *fiber.Ctx) error {
	body, err := recordBody(c)
	if err != nil {
		return err
	}
	rec, err := h.engine.Create(c.UserContext(), actor(c), c.Params("entity"), body)
	if err != nil {
		return err
	}
	return sendRecord(c, fiber.StatusCreated, rec)
}

func (h *recordHandlers) get(c *fiber.Ctx) error {
	id, err := recordID(c)
	if err != nil {
		return err
	}
	rec, err := h.engine.Get(c.UserContext(), actor(c), c.Params("entity"), id, engine.GetOptions{
		Fields: splitList(c.Query("fields")), Expand: splitList(c.Query("expand")), WithDeleted: c.QueryBool("deleted"),
	})
	if err != nil {
		return err
	}
	return sendRecord(c, fiber.StatusOK, rec)
}

func (h *recordHandlers) update(c *fiber.Ctx) error {
	id, err := recordID(c)
	if err != nil {
		return err
	}
	version, err := ifMatch(c)
	if err != nil {
		return err
	}
	body, err := recordBody(c)
	if err != nil {
		return err
	}
	rec, err := h.engine.Update(c.UserContext(), actor(c), c.Params("entity"), id, body, version)
	if err != nil {
		return err
	}
	return sendRecord(c, fiber.StatusOK, rec)
}

func (h *recordHandlers) delete(c *fiber.Ctx) error {
	id, err := recordID(c)
	if err != nil {
		return err
	}
	version, err := ifMatch(c)
	if err != nil {
		return err
	}
	if err := h.engine.Delete(c.UserContext(), actor(c), c.Params("entity"), id, version); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *recordHandlers) restore(c *fiber.Ctx) error {
	id, err := recordID(c)
	if err != nil {
		return err
	}
	rec, err := h.engine.Restore(c.UserContext(), actor(c), c.Params("entity"), id)
	if err != nil {
		return err
	}
	return sendRecord(c, fiber.StatusOK, rec)
}

func (h *recordHandlers) history(c *fiber.Ctx) error {
	id, err := recordID(c)
	if err != nil {
		return err
	}
	entries, err := h.engine.History(c.UserContext(), actor(c), c.Params("entity"), id)
	if err != nil {
		return err
	}
	return c.JSON(listResponse(entries))
}

func (h *recordHandlers) list(c *fiber.Ctx) error {
	limit := 0
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return validationFailed("invalid query", Detail{Path: "/limit", Code: "type", Message: "limit must be a number"})
		}
		limit = n
	}
	res, err := h.engine.List(c.UserContext(), actor(c), c.Params("entity"), engine.ListOptions{
		Filter: c.Query("filter"), Sort: c.Query("sort"), Limit: limit, Cursor: c.Query("cursor"),
		Q: c.Query("q"), Fields: splitList(c.Query("fields")), Expand: splitList(c.Query("expand")), Deleted: c.QueryBool("deleted"),
	})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(res.AppendJSON(make([]byte, 0, 4096)))
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
