package query

import "fmt"

// Error is returned for every problem a user can cause by writing an expression
// (or a sort string), so API handlers can show Message next to the input and
// highlight Position / Field instead of leaking an internal error text.
type Error struct {
	Message  string // human readable, already names the field when there is one
	Position int    // byte offset into the source, -1 when not tied to a place
	Field    string // field the problem is about, "" if none
}

// Error includes the position so a logged error can be traced to the input.
func (e *Error) Error() string {
	if e.Position >= 0 {
		return fmt.Sprintf("%s (at offset %d)", e.Message, e.Position)
	}
	return e.Message
}

func errAt(pos int, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Position: pos}
}

func fieldErr(pos int, field string, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Position: pos, Field: field}
}
