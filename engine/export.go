package engine

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"

	"github.com/xuri/excelize/v2"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/schema"
)

// Export formats.
const (
	FormatCSV  = "csv"
	FormatXLSX = "xlsx"
)

// Export is a checked export request, ready to stream.
type Export struct {
	e      *Engine
	format string
	fields []*schema.Field
	q      *listQuery
}

// PrepareExport checks an export of every record matching the list options (filter,
// search, sort, fields; no paging), so errors are reported before any byte is sent.
func (e *Engine) PrepareExport(ctx context.Context, actor Actor, entity, format string, opts ListOptions) (*Export, error) {
	if format != FormatCSV && format != FormatXLSX {
		return nil, badQuery("/format", "format must be csv or xlsx")
	}
	c, err := e.entity(ctx, e.pool, entity)
	if err != nil {
		return nil, err
	}
	acc, err := authorize(actor, c.entity, auth.Export)
	if err != nil {
		return nil, err
	}
	for _, name := range opts.Fields {
		if c.entity.Field(name) == nil || acc.Hidden(name) {
			return nil, badQuery("/fields", fmt.Sprintf("%s has no field %q", entity, name))
		}
	}
	only := opts.Fields
	if only == nil && !acc.Admin {
		only = visibleFields(acc, c.entity)
	}
	fields := exportFields(c.entity, only)
	opts.Fields, opts.Expand = nil, nil
	q, err := e.compileList(ctx, e.pool, actor, auth.Export, c.entity, opts)
	if err != nil {
		return nil, err
	}
	return &Export{e: e, format: format, fields: fields, q: q}, nil
}

// WriteTo streams the export as CSV or XLSX. Rows are read from PostgreSQL as they are
// written out, so an export of any size holds one row in memory (excelize spools XLSX
// rows to a temporary file).
func (x *Export) WriteTo(ctx context.Context, w io.Writer) error {
	var out rowWriter
	if x.format == FormatXLSX {
		xw, err := newXLSXWriter(w)
		if err != nil {
			return err
		}
		out = xw
	} else {
		out = &csvWriter{w: csv.NewWriter(w)}
	}
	fields := x.fields
	header := []string{"id"}
	for _, f := range fields {
		header = append(header, f.Name)
	}
	if err := out.write(header); err != nil {
		return err
	}
	rows, err := x.e.pool.Query(ctx, x.q.sql(0), x.q.args.Values...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			raw  json.RawMessage
			keys []*string
			rec  map[string]json.RawMessage
		)
		if err := rows.Scan(&raw, &keys); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return err
		}
		var id string
		_ = json.Unmarshal(rec["id"], &id)
		cells := []string{id}
		for _, f := range fields {
			cells = append(cells, cellText(f, rec[f.Name]))
		}
		if err := out.write(cells); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return out.close()
}

type rowWriter interface {
	write(cells []string) error
	close() error
}

type csvWriter struct{ w *csv.Writer }

func (c *csvWriter) write(cells []string) error { return c.w.Write(cells) }
func (c *csvWriter) close() error {
	c.w.Flush()
	return c.w.Error()
}

type xlsxWriter struct {
	out  io.Writer
	file *excelize.File
	sw   *excelize.StreamWriter
	row  int
}

func newXLSXWriter(out io.Writer) (*xlsxWriter, error) {
	f := excelize.NewFile()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		return nil, err
	}
	return &xlsxWriter{out: out, file: f, sw: sw}, nil
}

func (x *xlsxWriter) write(cells []string) error {
	x.row++
	values := make([]any, len(cells))
	for i, c := range cells {
		values[i] = c // text cells: decimals stay exact, never floats
	}
	cell, err := excelize.CoordinatesToCellName(1, x.row)
	if err != nil {
		return err
	}
	return x.sw.SetRow(cell, values)
}

func (x *xlsxWriter) close() error {
	defer x.file.Close()
	if err := x.sw.Flush(); err != nil {
		return fmt.Errorf("xlsx: %w", err)
	}
	_, err := x.file.WriteTo(x.out)
	return err
}
