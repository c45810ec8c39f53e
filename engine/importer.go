package engine

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/store"
)

// ImportOptions describe an import.
type ImportOptions struct {
	// Format is "csv" (header row of field names) or "ndjson" (one JSON object a line).
	Format string
	// Key is the field rows are matched on: "id" or a field with x-unique. Importing
	// the same file twice matches every row the second time and changes nothing.
	Key string
	// Job identifies the import for progress polling (ImportStatus); zero → generated.
	Job uuid.UUID
}

// RowError is one rejected row.
type RowError struct {
	Line     int              `json:"line"`
	Problems []schema.Problem `json:"problems"`
}

// ImportReport is the outcome of an import.
type ImportReport struct {
	Job       uuid.UUID  `json:"job"`
	Rows      int64      `json:"rows"`
	Inserted  int64      `json:"inserted"`
	Updated   int64      `json:"updated"`
	Unchanged int64      `json:"unchanged"`
	Rejected  int64      `json:"rejected"`
	Errors    []RowError `json:"errors"`
	// ErrorsTruncated is set when more rows were rejected than Errors lists.
	ErrorsTruncated bool `json:"errors_truncated,omitempty"`
}

const (
	maxReportedErrors = 1000
	progressEvery     = 5000
	maxNDJSONLine     = 1 << 20
)

// rowReader yields records with their line numbers; io.EOF ends the input.
type rowReader interface {
	next() (line int, rec map[string]any, problem *schema.Problem, err error)
}

// Import streams rows from r: each is validated like a created record, good rows are
// loaded with COPY into a staging table and upserted by opts.Key in one transaction
// (set-based, with their history and outbox rows), bad rows are reported by line.
// Empty cells never erase stored values.
func (e *Engine) Import(ctx context.Context, actor Actor, entity string, r io.Reader, opts ImportOptions) (*ImportReport, error) {
	c, err := e.entity(ctx, e.pool, entity)
	if err != nil {
		return nil, err
	}
	ent := c.entity
	if err := importAllowed(actor, ent); err != nil {
		return nil, err
	}
	keyCol, err := importKey(ent, opts.Key)
	if err != nil {
		return nil, err
	}
	var rows rowReader
	switch opts.Format {
	case "csv", "":
		rows, err = newCSVRows(ent, r)
	case "ndjson":
		rows = newNDJSONRows(r)
	default:
		return nil, badQuery("/format", "format must be csv or ndjson")
	}
	if err != nil {
		return nil, err
	}
	if opts.Job == uuid.Nil {
		if opts.Job, err = uuid.NewV7(); err != nil {
			return nil, err
		}
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO tessera.imports (id, entity, status, created_by) VALUES ($1, $2, 'running', $3)`,
		opts.Job, entity, nullUUID(actor.UserID)); err != nil {
		return nil, fmt.Errorf("register import: %w", err)
	}
	report := &ImportReport{Job: opts.Job, Errors: []RowError{}}
	err = e.runImport(ctx, actor, c, keyCol, rows, report)
	status := "completed"
	if err != nil {
		status = "failed"
	}
	reportJSON, _ := json.Marshal(report)
	_, _ = e.pool.Exec(context.WithoutCancel(ctx), `UPDATE tessera.imports SET status = $2, rows_read = $3, rows_rejected = $4,
		report = $5, finished_at = now() WHERE id = $1`, opts.Job, status, report.Rows, report.Rejected, reportJSON)
	if err != nil {
		return nil, err
	}
	return report, nil
}

// importAllowed requires create and update on every row, and write access to every
// field: a set-based upsert cannot apply per-row rules row by row, so imports are for
// users whose roles reach the whole entity.
func importAllowed(actor Actor, ent *schema.Entity) error {
	for _, action := range []auth.Action{auth.Create, auth.Update} {
		acc, err := authorize(actor, ent, action)
		if err != nil {
			return err
		}
		if _, all := acc.RowRules(action); !all {
			return forbidden("imports need %s on every row of %s; your roles limit it with row rules", action, ent.Name)
		}
		for _, f := range ent.LiveFields() {
			if !f.ReadOnly && f.Type != schema.TypeChild && (acc.Hidden(f.Name) || acc.ReadOnly(f.Name, action)) {
				return forbidden("imports need write access to every field of %s; %s is not writable for you", ent.Name, f.Name)
			}
		}
	}
	return nil
}

// importKey checks that rows can be matched on the key: the id or a unique field.
func importKey(ent *schema.Entity, key string) (string, error) {
	if key == "id" {
		return "id", nil
	}
	f := ent.Field(key)
	if f == nil || !f.Unique {
		return "", badQuery("/key", fmt.Sprintf("key must be \"id\" or a unique field of %s (x-unique), got %q", ent.Name, key))
	}
	return key, nil
}

func (e *Engine) runImport(ctx context.Context, actor Actor, c *compiled, key string, rows rowReader, report *ImportReport) error {
	ent := c.entity
	fields := exportFields(ent, nil)
	stage := "tessera_import_stage"
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// Every column is staged as text; the upsert casts with the same rules as a single
	// write, and validation already guaranteed every value casts.
	cols := []string{"line integer NOT NULL", "id uuid NOT NULL"}
	names := []string{"line", "id"}
	for _, f := range fields {
		cols = append(cols, store.Ident(f.Name)+" text")
		names = append(names, f.Name)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE %s (%s) ON COMMIT DROP", stage, strings.Join(cols, ", "))); err != nil {
		return err
	}
	src := &stagingSource{e: e, ctx: ctx, c: c, fields: fields, rows: rows, report: report, key: key}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{stage}, names, src); err != nil {
		if src.err != nil {
			return src.err
		}
		return fmt.Errorf("copy rows: %w", err)
	}
	if err := rejectMissingRelations(ctx, tx, stage, fields, report); err != nil {
		return err
	}
	if err := upsertStaged(ctx, tx, actor, ent, stage, key, fields, report); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// stagingSource feeds COPY while reading and validating the input, so the file is
// never held in memory.
type stagingSource struct {
	e      *Engine
	ctx    context.Context
	c      *compiled
	fields []*schema.Field
	rows   rowReader
	report *ImportReport
	key    string
	values []any
	err    error
}

func (s *stagingSource) Next() bool {
	for {
		line, rec, problem, err := s.rows.next()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			s.err = badQuery("/body", err.Error())
			return false
		}
		s.report.Rows++
		if s.report.Rows%progressEvery == 0 {
			// Outside the import transaction, so pollers see it now.
			_, _ = s.e.pool.Exec(s.ctx, "UPDATE tessera.imports SET rows_read = $2, rows_rejected = $3 WHERE id = $1",
				s.report.Job, s.report.Rows, s.report.Rejected)
		}
		if problem != nil {
			s.reject(line, []schema.Problem{*problem})
			continue
		}
		values, problems := s.stageValues(rec)
		if len(problems) > 0 {
			s.reject(line, problems)
			continue
		}
		s.values = append([]any{line}, values...)
		return true
	}
}

func (s *stagingSource) reject(line int, problems []schema.Problem) {
	s.report.Rejected++
	if len(s.report.Errors) < maxReportedErrors {
		s.report.Errors = append(s.report.Errors, RowError{Line: line, Problems: problems})
	} else {
		s.report.ErrorsTruncated = true
	}
}

// stageValues validates one row as a new record and renders its staged text values.
func (s *stagingSource) stageValues(rec map[string]any) ([]any, []schema.Problem) {
	ent := s.c.entity
	id, _ := uuid.NewV7()
	if _, ok := rec[s.key]; !ok {
		return nil, []schema.Problem{{Path: "/" + s.key, Code: "required", Message: fmt.Sprintf("the import key %q is required on every row", s.key)}}
	}
	// A file's ids (an export from another instance, say) are kept for new records;
	// an existing record matched by another key keeps its own.
	if raw, ok := rec["id"]; ok {
		str, _ := raw.(string)
		parsed, err := uuid.Parse(str)
		if err != nil {
			return nil, []schema.Problem{{Path: "/id", Code: "format", Message: "id must be a UUID"}}
		}
		id = parsed
		delete(rec, "id")
	}
	for key := range rec {
		if f := ent.Field(key); f == nil || f.ReadOnly || f.Type == schema.TypeChild {
			return nil, []schema.Problem{{Path: "/" + key, Code: "unknown_field", Message: fmt.Sprintf("%q cannot be imported into %s", key, ent.Name)}}
		}
	}
	for _, f := range s.fields {
		if _, ok := rec[f.Name]; !ok && f.Default != nil && !f.ReadOnly {
			rec[f.Name], _ = schema.DecodeValue(f.Default)
		}
	}
	if problems := s.c.validator.Validate(rec); len(problems) > 0 {
		return nil, problems
	}
	values := []any{id}
	for _, f := range s.fields {
		v, ok := rec[f.Name]
		if !ok || v == nil {
			values = append(values, nil)
			continue
		}
		text, err := stagedText(f, v)
		if err != nil {
			return nil, []schema.Problem{{Path: "/" + f.Name, Code: "type", Message: err.Error()}}
		}
		values = append(values, text)
	}
	return values, nil
}

// stagedText renders a validated value as the text PostgreSQL casts to the column type.
func stagedText(f *schema.Field, v any) (string, error) {
	switch f.Column() {
	case "jsonb", "text[]":
		b, err := json.Marshal(v)
		return string(b), err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("unsupported value %T", v)
}

func (s *stagingSource) Values() ([]any, error) { return s.values, nil }
func (s *stagingSource) Err() error             { return s.err }

// castStaged is the SQL turning a staged text column into the field's column type.
func castStaged(alias string, f *schema.Field) string {
	col := alias + "." + store.Ident(f.Name)
	switch f.Column() {
	case "text":
		return col
	case "text[]":
		return fmt.Sprintf("ARRAY(SELECT jsonb_array_elements_text(%s::jsonb))", col)
	}
	return col + "::" + f.Column()
}

// rejectMissingRelations removes staged rows that reference records that do not exist
// (or are deleted), reporting each by line.
func rejectMissingRelations(ctx context.Context, tx pgx.Tx, stage string, fields []*schema.Field, report *ImportReport) error {
	for _, f := range fields {
		if f.Relation == nil {
			continue
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(`DELETE FROM %[1]s s WHERE s.%[2]s IS NOT NULL AND NOT EXISTS
			(SELECT 1 FROM %[3]s r WHERE r.id = s.%[2]s::uuid AND r.deleted_at IS NULL) RETURNING s.line, s.%[2]s`,
			stage, store.Ident(f.Name), store.Table(f.Relation.Entity)))
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				line int
				ref  string
			)
			if err := rows.Scan(&line, &ref); err != nil {
				rows.Close()
				return err
			}
			report.Rejected++
			if len(report.Errors) < maxReportedErrors {
				report.Errors = append(report.Errors, RowError{Line: line, Problems: []schema.Problem{{Path: "/" + f.Name, Code: "relation",
					Message: fmt.Sprintf("no %s with id %s", f.Relation.Entity, ref)}}})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// upsertStaged inserts new rows and updates changed ones by key, then writes history
// and outbox rows for exactly the rows it touched. Rows identical to what is stored are
// left alone, which makes a repeated import a no-op.
func upsertStaged(ctx context.Context, tx pgx.Tx, actor Actor, ent *schema.Entity, stage, key string, fields []*schema.Field, report *ImportReport) error {
	table := store.Table(ent.Name)
	insertCols := []string{"id", "created_by", "updated_by"}
	selectCols := []string{"s.id", "$1::uuid", "$1::uuid"}
	var sets, oldVals, newVals []string
	for _, f := range fields {
		col := store.Ident(f.Name)
		insertCols = append(insertCols, col)
		selectCols = append(selectCols, castStaged("s", f))
		if f.Name == key {
			continue
		}
		merged := fmt.Sprintf("COALESCE(EXCLUDED.%s, t.%s)", col, col)
		sets = append(sets, fmt.Sprintf("%s = %s", col, merged))
		oldVals = append(oldVals, "t."+col)
		newVals = append(newVals, merged)
	}
	sets = append(sets, "version = t.version + 1", "updated_at = now()", "updated_by = EXCLUDED.updated_by")
	unchanged := "false"
	if len(oldVals) > 0 {
		unchanged = fmt.Sprintf("(%s) IS NOT DISTINCT FROM (%s)", strings.Join(oldVals, ", "), strings.Join(newVals, ", "))
	}
	keyCol := store.Ident(key)
	if key == "id" {
		keyCol = "id"
	}
	// The last line wins when a file names the same key twice.
	source := fmt.Sprintf("SELECT DISTINCT ON (s.%[1]s) * FROM %[2]s s ORDER BY s.%[1]s, s.line DESC", keyCol, stage)
	sql := fmt.Sprintf(`WITH up AS (
		INSERT INTO %[1]s AS t (%[2]s) SELECT %[3]s FROM (%[4]s) s
		ON CONFLICT (%[5]s) DO UPDATE SET %[6]s WHERE NOT (%[7]s)
		RETURNING t.id, t.version, (t.xmax = 0) AS inserted
	), hist AS (
		INSERT INTO tessera.record_history (entity, record_id, version, op, changed_by, diff)
		SELECT $2, up.id, up.version, CASE WHEN up.inserted THEN 'create' ELSE 'update' END, $1::uuid,
			jsonb_build_object('_import', true)
		FROM up
	), ob AS (
		INSERT INTO tessera.outbox (entity, record_id, event, payload)
		SELECT $2, up.id, CASE WHEN up.inserted THEN 'create' ELSE 'update' END,
			jsonb_build_object('entity', $2::text, 'id', up.id, 'version', up.version,
				'event', CASE WHEN up.inserted THEN 'create' ELSE 'update' END, 'source', 'import', 'actor', $1::uuid)
		FROM up
	)
	SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), coalesce(array_agg(id) FILTER (WHERE inserted), '{}') FROM up`,
		table, strings.Join(insertCols, ", "), strings.Join(selectCols, ", "), source, keyCol,
		strings.Join(sets, ", "), unchanged)
	var inserted []uuid.UUID
	if err := tx.QueryRow(ctx, sql, nullUUID(actor.UserID), ent.Name).Scan(&report.Inserted, &report.Updated, &inserted); err != nil {
		return mapWriteError(ent.Name, err)
	}
	var staged int64
	if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(DISTINCT %s) FROM %s", keyCol, stage)).Scan(&staged); err != nil {
		return err
	}
	report.Unchanged = staged - report.Inserted - report.Updated
	if a := ent.Autonumber; a != nil && len(inserted) > 0 {
		return numberImported(ctx, tx, ent, inserted)
	}
	return nil
}

// numberImported gives imported new records their autonumbers in one block.
func numberImported(ctx context.Context, tx pgx.Tx, ent *schema.Entity, ids []uuid.UUID) error {
	numbers := make([]string, len(ids))
	now := time.Now()
	for i := range ids {
		n, err := nextNumber(ctx, tx, ent.Name, ent.Autonumber.Pattern, now)
		if err != nil {
			return err
		}
		numbers[i] = n
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s t SET %s = n.number FROM unnest($1::uuid[], $2::text[]) AS n(id, number) WHERE t.id = n.id`,
		store.Table(ent.Name), store.Ident(ent.Autonumber.Field)), ids, numbers)
	return err
}

// csvRows reads a CSV file whose header names the fields.
type csvRows struct {
	r      *csv.Reader
	fields []*schema.Field // nil entry: the "id" column
	line   int
}

func newCSVRows(ent *schema.Entity, r io.Reader) (*csvRows, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, badQuery("/body", "the CSV has no header row of field names")
	}
	rows := &csvRows{r: cr, line: 1}
	for i, name := range header {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))
		if name == "id" {
			rows.fields = append(rows.fields, nil)
			continue
		}
		f := ent.Field(name)
		if f == nil || f.Type == schema.TypeChild {
			return nil, badQuery("/body", fmt.Sprintf("CSV column %d %q is not a field of %s", i+1, name, ent.Name))
		}
		rows.fields = append(rows.fields, f)
	}
	return rows, nil
}

func (c *csvRows) next() (int, map[string]any, *schema.Problem, error) {
	cells, err := c.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			c.line = pe.Line
			return pe.Line, nil, &schema.Problem{Path: "", Code: "csv", Message: pe.Err.Error()}, nil
		}
		return 0, nil, nil, err
	}
	c.line, _ = c.r.FieldPos(0)
	if len(cells) != len(c.fields) {
		return c.line, nil, &schema.Problem{Code: "csv", Message: fmt.Sprintf("%d cells, the header has %d", len(cells), len(c.fields))}, nil
	}
	rec := map[string]any{}
	for i, cell := range cells {
		if cell == "" {
			continue
		}
		if c.fields[i] == nil {
			rec["id"] = cell
			continue
		}
		rec[c.fields[i].Name] = cellValue(c.fields[i], cell)
	}
	return c.line, rec, nil, nil
}

// ndjsonRows reads one JSON object per line.
type ndjsonRows struct {
	s    *bufio.Scanner
	line int
}

func newNDJSONRows(r io.Reader) *ndjsonRows {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), maxNDJSONLine)
	return &ndjsonRows{s: s}
}

func (n *ndjsonRows) next() (int, map[string]any, *schema.Problem, error) {
	for n.s.Scan() {
		n.line++
		text := strings.TrimSpace(n.s.Text())
		if text == "" {
			continue
		}
		rec, err := schema.DecodeRecord([]byte(text))
		if err != nil {
			return n.line, nil, &schema.Problem{Code: "json", Message: err.Error()}, nil
		}
		return n.line, rec, nil, nil
	}
	if err := n.s.Err(); err != nil {
		return 0, nil, nil, fmt.Errorf("line %d: %w", n.line+1, err)
	}
	return 0, nil, nil, io.EOF
}

// ImportStatus reports a running or finished import.
func (e *Engine) ImportStatus(ctx context.Context, job uuid.UUID) (json.RawMessage, error) {
	var out json.RawMessage
	err := e.pool.QueryRow(ctx, `SELECT jsonb_build_object('job', id, 'entity', entity, 'status', status, 'rows_read', rows_read,
		'rows_rejected', rows_rejected, 'started_at', started_at, 'finished_at', finished_at, 'report', report)
		FROM tessera.imports WHERE id = $1`, job).Scan(&out)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("import %s: %w", job, ErrNotFound)
	}
	return out, err
}
