package web

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/engine"
)

// limitBody enforces MaxBodyBytes. The server streams bodies larger than its in-memory
// threshold (so imports never buffer a whole file); every other route gets its body
// read here, at most MaxBodyBytes of it, or a 413.
func limitBody(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodPost && strings.HasSuffix(c.Path(), "/import") {
		return c.Next()
	}
	if c.Request().Header.ContentLength() > MaxBodyBytes {
		// The unread rest of the body must not be parsed as the next request.
		c.Context().SetConnectionClose()
		return fiber.ErrRequestEntityTooLarge
	}
	if c.Request().IsBodyStream() {
		data, err := io.ReadAll(io.LimitReader(c.Context().RequestBodyStream(), MaxBodyBytes+1))
		if err != nil {
			return badRequest("could not read the request body: " + err.Error())
		}
		if len(data) > MaxBodyBytes {
			c.Context().SetConnectionClose()
			return fiber.ErrRequestEntityTooLarge
		}
		c.Request().SetBody(data)
	}
	return c.Next()
}

// importRecords loads CSV or NDJSON into an entity. The body is read as a stream.
// ?key= names the matching field, ?format= csv|ndjson (or the Content-Type), ?job= an
// id chosen by the client to poll GET /imports/{job} for progress.
func (h *recordHandlers) importRecords(c *fiber.Ctx) error {
	opts := engine.ImportOptions{Format: c.Query("format"), Key: c.Query("key")}
	if opts.Format == "" {
		if strings.Contains(c.Get(fiber.HeaderContentType), "ndjson") {
			opts.Format = "ndjson"
		} else {
			opts.Format = "csv"
		}
	}
	if s := c.Query("job"); s != "" {
		job, err := uuid.Parse(s)
		if err != nil {
			return badRequest("job must be a UUID")
		}
		opts.Job = job
	}
	var body io.Reader = bytes.NewReader(c.Body())
	if c.Request().IsBodyStream() {
		body = c.Context().RequestBodyStream()
	}
	report, err := h.engine.Import(c.UserContext(), actor(c), c.Params("entity"), body, opts)
	if err != nil {
		return err
	}
	return c.JSON(report)
}

func (h *recordHandlers) importStatus(c *fiber.Ctx) error {
	job, err := uuid.Parse(c.Params("job"))
	if err != nil {
		return notFound("no import " + c.Params("job"))
	}
	status, err := h.engine.ImportStatus(c.UserContext(), job)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(status)
}

// exportRecords streams CSV or XLSX; the request is checked before the first byte.
func (h *recordHandlers) exportRecords(c *fiber.Ctx) error {
	format := c.Query("format", engine.FormatCSV)
	entity := c.Params("entity")
	exp, err := h.engine.PrepareExport(c.UserContext(), actor(c), entity, format, engine.ListOptions{
		Filter: c.Query("filter"), Sort: c.Query("sort"), Q: c.Query("q"), Fields: splitList(c.Query("fields")),
	})
	if err != nil {
		return err
	}
	h.audit(c, "data.export", entity, map[string]any{"format": format, "filter": c.Query("filter"), "fields": c.Query("fields")})
	contentType := "text/csv; charset=utf-8"
	if format == engine.FormatXLSX {
		contentType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	c.Set(fiber.HeaderContentType, contentType)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+entity+"."+format+`"`)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		// The request context ends when the handler returns; the stream outlives it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if err := exp.WriteTo(ctx, w); err != nil {
			// Headers are sent: the truncated body is the only signal left besides the log.
			_, _ = w.WriteString("\n# export failed: " + err.Error() + "\n")
		}
		_ = w.Flush()
	})
	return nil
}
