package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tessera/tessera/engine/schema"
)

// ValidationError lists what is wrong with a submitted record; paths are JSON pointers
// into the submitted document.
type ValidationError struct{ Problems []schema.Problem }

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Path + ": " + p.Message
	}
	return "validation failed: " + strings.Join(msgs, "; ")
}

func invalid(path, code, message string) *ValidationError {
	return &ValidationError{Problems: []schema.Problem{{Path: path, Code: code, Message: message}}}
}

// ConflictError is a unique violation on a field.
type ConflictError struct {
	Path    string
	Message string
}

func (e *ConflictError) Error() string { return e.Message }

// ErrRecordNotFound is ErrNotFound for a record (not an entity).
var ErrRecordNotFound = fmt.Errorf("record %w", ErrNotFound)

// ErrVersionMismatch means the record changed since the version the caller read (If-Match).
var ErrVersionMismatch = errors.New("the record was changed by someone else; reload it and try again")

// ErrDeleted means the operation needs a live record but it is soft-deleted.
var ErrDeleted = errors.New("the record is deleted; restore it first")

// mapWriteError turns constraint violations of a record write into client errors that
// name the field concerned.
func mapWriteError(table string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	field := constraintField(table, pgErr.ConstraintName, pgErr.ColumnName)
	switch pgErr.Code {
	case "23505":
		return &ConflictError{Path: "/" + field, Message: fmt.Sprintf("%s: another record already has this value", field)}
	case "23503":
		return invalid("/"+field, "relation", "the referenced record does not exist")
	case "23514":
		return invalid("/"+field, "check", "value not allowed")
	case "23502":
		return invalid("/"+field, "required", "a value is required")
	case "22P02", "22007", "22008", "22003":
		return invalid("/"+field, "format", pgErr.Message)
	}
	return err
}

// constraintField recovers the field from a constraint or index name made by
// store.IndexName/checkName/fkName ("<table>_<field>_<suffix>").
func constraintField(table, constraint, column string) string {
	if column != "" {
		return column
	}
	name := strings.TrimPrefix(constraint, table+"_")
	for _, suffix := range []string{"_key", "_idx", "_check", "_fkey"} {
		name = strings.TrimSuffix(name, suffix)
	}
	return name
}

// QueryError is a malformed list or read parameter (filter, sort, cursor, fields…);
// Param names it as a JSON pointer such as "/filter".
type QueryError struct {
	Param   string
	Message string
}

func (e *QueryError) Error() string { return e.Param + ": " + e.Message }

func badQuery(param, message string) *QueryError { return &QueryError{Param: param, Message: message} }

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
