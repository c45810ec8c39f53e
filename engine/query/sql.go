package query

import (
	"errors"
	"strconv"
	"strings"
)

// Args collects bind parameters. It is shared across the pieces of one
// statement, so a filter can be combined with permission rules and paging
// without placeholders colliding.
type Args struct{ Values []any }

// Add appends v and returns its placeholder ("$1", "$2", … continuing from any
// values already present).
func (a *Args) Add(v any) string {
	a.Values = append(a.Values, v)
	return "$" + strconv.Itoa(len(a.Values))
}

// SQL compiles the expression to a PostgreSQL boolean expression, appending
// every value to args. The result is always safe to combine with AND/OR (it
// is parenthesized whenever it has a top-level operator) and only contains
// columns from fields, placeholders and fixed keywords. On error args is left
// unchanged.
func (e *Expr) SQL(fields Fields, params Params, args *Args) (string, error) {
	if args == nil {
		return "", errors.New("query: SQL needs a non-nil *Args")
	}
	root, err := e.bind(fields, params, true)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	writeSQL(&sb, root, args)
	return sb.String(), nil
}

var sqlOps = map[string]string{"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

// collate makes text ordering byte-wise, like Go's string comparison in Eval,
// whatever the database's default collation is.
func collate(r ref, op string) string {
	if r.f.Kind == KindText && isOrdering(op) {
		return r.f.Column + ` COLLATE "C"`
	}
	return r.f.Column
}

func writeSQL(sb *strings.Builder, n bnode, args *Args) {
	switch n := n.(type) {
	case *bAnd:
		writeJoined(sb, n.kids, " AND ", args)
	case *bOr:
		writeJoined(sb, n.kids, " OR ", args)
	case *bNot:
		sb.WriteString("NOT ")
		switch n.kid.(type) {
		case *bAnd, *bOr: // already parenthesized
			writeSQL(sb, n.kid, args)
		default:
			sb.WriteString("(")
			writeSQL(sb, n.kid, args)
			sb.WriteString(")")
		}
	case *bConst:
		sb.WriteString(args.Add(n.val) + "::boolean")
	case *bTruth:
		sb.WriteString(n.r.f.Column)
	case *bNull:
		sb.WriteString(n.r.f.Column)
		if n.not {
			sb.WriteString(" IS NOT NULL")
		} else {
			sb.WriteString(" IS NULL")
		}
	case *bCmp:
		k := n.r.f.Kind
		sb.WriteString(collate(n.r, n.op) + " " + sqlOps[n.op] + " " + args.Add(bindValue(k, n.val)) + castOf(k))
	case *bCmpFields:
		sb.WriteString(collate(n.a, n.op) + " " + sqlOps[n.op] + " " + collate(n.b, n.op))
	case *bIn:
		v, cast := bindList(n.r.f.Kind, n.vals)
		sb.WriteString(n.r.f.Column + " = ANY(" + args.Add(v) + cast + ")")
	case *bHas:
		// @> rather than = ANY: it can use a GIN index on the column, and
		// NULL elements inside the array never make the result unknown.
		sb.WriteString(n.r.f.Column + " @> " + args.Add([]string{n.val}) + "::text[]")
	case *bStr:
		p := args.Add(n.val)
		switch n.op {
		case "contains":
			sb.WriteString("strpos(" + n.r.f.Column + ", " + p + ") > 0")
		case "startsWith":
			sb.WriteString("starts_with(" + n.r.f.Column + ", " + p + ")")
		case "endsWith":
			sb.WriteString("right(" + n.r.f.Column + ", length(" + p + "::text)) = " + p + "::text")
		}
	default:
		panic("query: unknown bound node")
	}
}

func writeJoined(sb *strings.Builder, kids []bnode, sep string, args *Args) {
	sb.WriteString("(")
	for i, k := range kids {
		if i > 0 {
			sb.WriteString(sep)
		}
		writeSQL(sb, k, args)
	}
	sb.WriteString(")")
}
