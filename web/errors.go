package web

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"github.com/tessera/tessera/engine/auth"
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
		return c.Status(apiErr.Status).JSON(fiber.Map{"error": apiErr})
	}
}

func toAPIError(err error) *APIError {
	var (
		apiErr   *APIError
		fiberErr *fiber.Error
		fieldErr *auth.FieldError
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &fieldErr):
		return validationFailed("the request is not valid", Detail{Path: fieldErr.Field, Message: fieldErr.Message})
	case errors.Is(err, auth.ErrEmailTaken):
		return newError(fiber.StatusConflict, "conflict", err.Error(), Detail{Path: "/email", Code: "unique", Message: err.Error()})
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
