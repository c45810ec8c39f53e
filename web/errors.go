package web

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/schema"
)

// Detail is one problem in a request, located by a JSON pointer into the submitted document.
type Detail struct {
	Path    string `json:"path"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// APIError is the one error shape every endpoint answers with.
type APIError struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []Detail `json:"details,omitempty"`
	// Plan accompanies a refused migration so the caller sees what would happen.
	Plan any `json:"plan,omitempty"`
	// Script locates a failing script: name, line, column, stack.
	Script any `json:"script,omitempty"`
	// RetryAfter (seconds) is sent as the Retry-After header of a 429.
	RetryAfter int `json:"-"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, message string, details ...Detail) *APIError {
	return &APIError{Status: status, Code: code, Message: message, Details: details}
}

func badRequest(message string) *APIError {
	return newError(fiber.StatusBadRequest, "bad_request", message)
}

func notFound(message string) *APIError {
	return newError(fiber.StatusNotFound, "not_found", message)
}

func validationFailed(message string, details ...Detail) *APIError {
	return newError(fiber.StatusUnprocessableEntity, "validation_failed", message, details...)
}

// errorHandler maps every error a handler returns to the one JSON shape. Known domain
// errors get their status; anything else is logged and answered as a bare 500 so
// internal details never reach the client.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		apiErr := toAPIError(err)
		if apiErr.Status >= 500 {
			log.Error("request failed", "request_id", requestID(c), "method", c.Method(), "path", c.Path(), "err", err)
		}
		if apiErr.RetryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(apiErr.RetryAfter))
		}
		return c.Status(apiErr.Status).JSON(fiber.Map{"error": apiErr})
	}
}

func toAPIError(err error) *APIError {
	var (
		apiErr   *APIError
		fiberErr *fiber.Error
		fieldErr *auth.FieldError
		valErr   *engine.ValidationError
		defErr   *schema.DefinitionError
		conflict *engine.ConflictError
		planErr  *engine.PlanError
		queryErr *engine.QueryError
		failure  *engine.ScriptFailure
		denied   *engine.ForbiddenError
		locked   *auth.LockedError
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &valErr):
		return validationFailed("the record is not valid", problemDetails(valErr.Problems)...)
	case errors.As(err, &queryErr):
		return newError(fiber.StatusBadRequest, "bad_request", queryErr.Message, Detail{Path: queryErr.Param, Code: "invalid", Message: queryErr.Message})
	case errors.As(err, &defErr):
		return validationFailed("the definition is not valid", problemDetails(defErr.Problems)...)
	case errors.As(err, &conflict):
		return newError(fiber.StatusConflict, "conflict", conflict.Message, Detail{Path: conflict.Path, Code: "unique", Message: conflict.Message})
	case errors.As(err, &planErr):
		e := newError(fiber.StatusConflict, "migration_refused", planErr.Reason, planDetails(planErr)...)
		e.Plan = planErr.Plan
		return e
	case errors.As(err, &denied):
		return newError(fiber.StatusForbidden, "forbidden", denied.Message, problemDetails(denied.Problems)...)
	case errors.As(err, &locked):
		e := newError(fiber.StatusTooManyRequests, "rate_limited", locked.Error())
		e.RetryAfter = int(locked.RetryAfter.Seconds()) + 1
		return e
	case errors.Is(err, auth.ErrRoleNotFound), errors.Is(err, auth.ErrUserNotFound):
		return notFound(err.Error())
	case errors.As(err, &failure):
		e := newError(fiber.StatusUnprocessableEntity, "script_failed", failure.Err.Error(),
			Detail{Path: "", Code: failure.Err.Kind, Message: failure.Err.Message})
		e.Script = failure.Err
		return e
	case errors.Is(err, engine.ErrNotFound):
		return notFound(err.Error())
	case errors.Is(err, engine.ErrVersionMismatch):
		return newError(fiber.StatusPreconditionFailed, "version_mismatch", err.Error())
	case errors.Is(err, engine.ErrDeleted):
		return newError(fiber.StatusConflict, "deleted", err.Error())
	case errors.As(err, &fieldErr):
		return validationFailed("the request is not valid", Detail{Path: fieldErr.Field, Message: fieldErr.Message})
	case errors.Is(err, auth.ErrEmailTaken):
		return newError(fiber.StatusConflict, "conflict", err.Error(), Detail{Path: "/email", Code: "unique", Message: err.Error()})
	case errors.Is(err, auth.ErrServiceUser):
		return newError(fiber.StatusConflict, "service_user", err.Error())
	case errors.Is(err, auth.ErrInvalidCredentials), errors.Is(err, auth.ErrUnauthenticated):
		return newError(fiber.StatusUnauthorized, "unauthenticated", err.Error())
	case errors.As(err, &fiberErr):
		return newError(fiberErr.Code, fiberCode(fiberErr.Code), fiberErr.Message)
	default:
		return newError(fiber.StatusInternalServerError, "internal", "internal server error")
	}
}

func fiberCode(status int) string {
	switch status {
	case fiber.StatusNotFound:
		return "not_found"
	case fiber.StatusMethodNotAllowed:
		return "method_not_allowed"
	case fiber.StatusRequestEntityTooLarge:
		return "too_large"
	case fiber.StatusTooManyRequests:
		return "rate_limited"
	case fiber.StatusUnauthorized:
		return "unauthenticated"
	case fiber.StatusForbidden:
		return "forbidden"
	}
	if status >= 500 {
		return "internal"
	}
	return "bad_request"
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestid.ConfigDefault.ContextKey).(string)
	return id
}

func problemDetails(problems []schema.Problem) []Detail {
	out := make([]Detail, len(problems))
	for i, p := range problems {
		out[i] = Detail{Path: p.Path, Code: p.Code, Message: p.Message}
	}
	return out
}

func planDetails(e *engine.PlanError) []Detail {
	var out []Detail
	for _, s := range e.Plan.Steps {
		switch {
		case s.FailingRows > 0:
			msg := fmt.Sprintf("%s: %d existing rows would fail", s.Description, s.FailingRows)
			if s.Problem != "" {
				msg += " (" + s.Problem + ")"
			}
			out = append(out, Detail{Path: s.Target, Code: s.Op, Message: msg})
		case s.Destructive:
			out = append(out, Detail{Path: s.Target, Code: s.Op, Message: s.Description + ": can lose data"})
		}
	}
	return out
}
