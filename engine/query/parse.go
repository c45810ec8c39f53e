// Package query is the one expression language shared by record list filters,
// row-level permission rules, views and workflow conditions.
//
// An expression such as
//
//	status in ["open", "won"] && (amount >= 1000 || owner_id == $user.id)
//
// is parsed once (Parse) and can then be compiled to a PostgreSQL predicate
// whose values are all bind parameters (Expr.SQL), or evaluated against a
// record held in memory (Expr.Eval). Both paths share the same name
// resolution and value coercion and Eval implements SQL three-valued logic, so
// a record matches in memory exactly when the database would return it.
package query

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/shopspring/decimal"
)

// Limits keep a hostile or careless expression from producing huge SQL or
// deep recursion; they are far above what a hand-written filter needs.
const (
	maxSourceLen = 4096
	maxDepth     = 32
	maxNodes     = 200
	maxListItems = 1000
)

// Expr is a parsed, validated expression. It holds no field or parameter
// bindings, so one Expr can be compiled for many users and records.
type Expr struct {
	src   string
	root  node
	names []string
}

// The parsed form. Field and parameter names are not resolved yet: that
// happens per call in bind, because fields depend on the user and params on
// the request.
type node interface{ pos() int }

type andNode struct {
	kids []node
	at   int
}

type orNode struct {
	kids []node
	at   int
}

type notNode struct {
	kid node
	at  int
}

// cmpNode is one of == != < <= > >=.
type cmpNode struct {
	op          string
	left, right operand
	at          int
}

// inNode is `needle in list`; `not in` is a notNode around it.
type inNode struct {
	needle, list operand
	at           int
}

// strNode is contains / startsWith / endsWith.
type strNode struct {
	op          string
	left, right operand
	at          int
}

// truthNode is a bare boolean operand used as a condition (`active`, `$user.is_admin`, `true`).
type truthNode struct {
	val operand
}

func (n *andNode) pos() int   { return n.at }
func (n *orNode) pos() int    { return n.at }
func (n *notNode) pos() int   { return n.at }
func (n *cmpNode) pos() int   { return n.at }
func (n *inNode) pos() int    { return n.at }
func (n *strNode) pos() int   { return n.at }
func (n *truthNode) pos() int { return n.val.pos() }

type operand interface{ pos() int }

type fieldRef struct {
	name string
	at   int
}

type paramRef struct {
	path []string // path[0] is the name after `$`
	at   int
}

// literal holds nil, bool, string, int64 or decimal.Decimal. Decimal literals
// are taken from the source text, never from expr's float64, so they stay exact.
type literal struct {
	val  any
	text string // as written, for error messages
	at   int
}

type listLit struct {
	items []operand // *literal or *paramRef
	at    int
}

func (o *fieldRef) pos() int { return o.at }
func (o *paramRef) pos() int { return o.at }
func (o *literal) pos() int  { return o.at }
func (o *listLit) pos() int  { return o.at }

func (p *paramRef) String() string { return "$" + strings.Join(p.path, ".") }

var nameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Parse parses and validates src. Syntax errors, unsupported constructs and
// exceeded limits are reported as *Error; unknown fields can only be detected
// later by SQL or Eval, because field visibility depends on the caller.
func Parse(src string) (*Expr, error) {
	if len(src) > maxSourceLen {
		return nil, errAt(-1, "expression is too long: %d bytes, the limit is %d", len(src), maxSourceLen)
	}
	if !utf8.ValidString(src) {
		return nil, errAt(-1, "expression is not valid UTF-8")
	}
	if strings.TrimSpace(src) == "" {
		return nil, errAt(0, "expression is empty")
	}
	c := &converter{src: src, names: map[string]bool{}}
	c.offsets = make([]int, 0, len(src)+1)
	for i := range src {
		c.offsets = append(c.offsets, i)
	}
	c.offsets = append(c.offsets, len(src))

	tree, err := parseTree(src)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			msg := fe.Message
			if msg == `unexpected token Operator("=")` {
				msg += "; use == to compare"
			}
			return nil, errAt(c.byteOffset(fe.From), "syntax error: %s", msg)
		}
		return nil, errAt(-1, "syntax error: %v", err)
	}
	root, err := c.cond(tree.Node, 1)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(c.names))
	for n := range c.names {
		names = append(names, n)
	}
	sort.Strings(names)
	return &Expr{src: src, root: root, names: names}, nil
}

// parseTree shields callers from a panic inside the third-party parser: a
// filter typed by a user must never take the server down.
func parseTree(src string) (tree *parser.Tree, err error) {
	defer func() {
		if r := recover(); r != nil {
			tree, err = nil, fmt.Errorf("invalid expression")
		}
	}()
	tree, err = parser.Parse(src)
	if err == nil && (tree == nil || tree.Node == nil) {
		err = fmt.Errorf("invalid expression")
	}
	return tree, err
}

// MustParse is Parse for expressions fixed in code and tests; it panics on error.
func MustParse(src string) *Expr {
	e, err := Parse(src)
	if err != nil {
		panic(fmt.Sprintf("query.MustParse(%q): %v", src, err))
	}
	return e
}

// String returns the source, so an Expr can be stored and shown back unchanged.
func (e *Expr) String() string { return e.src }

// Names lists the referenced field names (sorted, unique) so callers can
// check read permissions before running a filter.
func (e *Expr) Names() []string { return append([]string(nil), e.names...) }

type converter struct {
	src     string
	offsets []int // rune index -> byte offset; expr reports positions in runes
	nodes   int
	names   map[string]bool
}

func (c *converter) byteOffset(runeIdx int) int {
	if runeIdx < 0 {
		return 0
	}
	if runeIdx >= len(c.offsets) {
		return len(c.src)
	}
	return c.offsets[runeIdx]
}

func (c *converter) pos(n ast.Node) int { return c.byteOffset(n.Location().From) }

func (c *converter) text(n ast.Node) string {
	loc := n.Location()
	from, to := c.byteOffset(loc.From), c.byteOffset(loc.To)
	if to < from {
		to = from
	}
	return c.src[from:to]
}

func (c *converter) count(n ast.Node) error {
	c.nodes++
	if c.nodes > maxNodes {
		return errAt(c.pos(n), "expression is too complex: more than %d elements", maxNodes)
	}
	return nil
}

// cond converts a node that must be a condition.
func (c *converter) cond(n ast.Node, depth int) (node, error) {
	if depth > maxDepth {
		return nil, errAt(c.pos(n), "expression is nested too deeply: the limit is %d levels", maxDepth)
	}
	if err := c.count(n); err != nil {
		return nil, err
	}
	at := c.pos(n)
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			isAnd := n.Operator == "&&" || n.Operator == "and"
			var parts []ast.Node
			flatten(n, isAnd, &parts)
			kids := make([]node, 0, len(parts))
			for _, p := range parts {
				k, err := c.cond(p, depth+1)
				if err != nil {
					return nil, err
				}
				kids = append(kids, k)
			}
			if isAnd {
				return &andNode{kids: kids, at: at}, nil
			}
			return &orNode{kids: kids, at: at}, nil
		case "==", "!=", "<", "<=", ">", ">=":
			l, r, err := c.operands(n)
			if err != nil {
				return nil, err
			}
			return &cmpNode{op: n.Operator, left: l, right: r, at: at}, nil
		case "in":
			l, r, err := c.operands(n)
			if err != nil {
				return nil, err
			}
			return &inNode{needle: l, list: r, at: at}, nil
		case "contains", "startsWith", "endsWith":
			l, r, err := c.operands(n)
			if err != nil {
				return nil, err
			}
			return &strNode{op: n.Operator, left: l, right: r, at: at}, nil
		}
		return nil, errAt(at, "operator %s is not supported in filters", n.Operator)
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			kid, err := c.cond(n.Node, depth+1)
			if err != nil {
				return nil, err
			}
			return &notNode{kid: kid, at: at}, nil
		}
		return nil, errAt(at, "%s is not a condition", c.text(n)+c.text(n.Node))
	case *ast.IdentifierNode, *ast.MemberNode, *ast.BoolNode:
		o, err := c.value(n) // already counted above
		if err != nil {
			return nil, err
		}
		if l, ok := o.(*literal); ok && l.val == nil {
			return nil, errAt(at, "nil is not a condition; compare a field with it, e.g. due_date == nil")
		}
		return &truthNode{val: o}, nil
	case *ast.NilNode, *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.ArrayNode:
		return nil, errAt(at, "%s is not a condition; compare a field with it, e.g. status == \"open\"", c.text(n))
	}
	return nil, c.unsupported(n)
}

// flatten turns the left-deep tree expr builds for `a || b || c` into one
// list, so long OR chains do not count against the nesting limit.
func flatten(n ast.Node, isAnd bool, out *[]ast.Node) {
	if b, ok := n.(*ast.BinaryNode); ok {
		switch {
		case isAnd && (b.Operator == "&&" || b.Operator == "and"),
			!isAnd && (b.Operator == "||" || b.Operator == "or"):
			flatten(b.Left, isAnd, out)
			flatten(b.Right, isAnd, out)
			return
		}
	}
	*out = append(*out, n)
}

func (c *converter) operands(n *ast.BinaryNode) (operand, operand, error) {
	l, err := c.operand(n.Left)
	if err != nil {
		return nil, nil, err
	}
	r, err := c.operand(n.Right)
	if err != nil {
		return nil, nil, err
	}
	return l, r, nil
}

// operand converts a node that must be a value: field, parameter, literal or list.
func (c *converter) operand(n ast.Node) (operand, error) {
	if err := c.count(n); err != nil {
		return nil, err
	}
	if a, ok := n.(*ast.ArrayNode); ok {
		if len(a.Nodes) > maxListItems {
			return nil, errAt(c.pos(n), "list has %d items, the limit is %d", len(a.Nodes), maxListItems)
		}
		list := &listLit{at: c.pos(n), items: make([]operand, 0, len(a.Nodes))}
		for _, item := range a.Nodes {
			o, err := c.value(item)
			if err != nil {
				return nil, err
			}
			if _, ok := o.(*fieldRef); ok {
				return nil, errAt(o.pos(), "list items must be values or $parameters, not fields")
			}
			list.items = append(list.items, o)
		}
		return list, nil
	}
	return c.value(n)
}

// value converts anything but a list; it does not count nodes so that list
// items are limited by maxListItems only.
func (c *converter) value(n ast.Node) (operand, error) {
	at := c.pos(n)
	switch n := n.(type) {
	case *ast.IdentifierNode:
		name := n.Value
		if name == "null" {
			return &literal{val: nil, text: name, at: at}, nil
		}
		if root, ok := strings.CutPrefix(name, "$"); ok {
			if !nameRe.MatchString(root) {
				return nil, errAt(at, "invalid parameter name %q", name)
			}
			return &paramRef{path: []string{root}, at: at}, nil
		}
		if !nameRe.MatchString(name) {
			return nil, fieldErr(at, name, "invalid field name %q", name)
		}
		c.names[name] = true
		return &fieldRef{name: name, at: at}, nil
	case *ast.MemberNode:
		return c.member(n)
	case *ast.NilNode:
		return &literal{val: nil, text: "nil", at: at}, nil
	case *ast.BoolNode:
		return &literal{val: n.Value, text: c.text(n), at: at}, nil
	case *ast.StringNode:
		if err := checkText(n.Value); err != nil {
			return nil, errAt(at, "string literal: %v", err)
		}
		return &literal{val: n.Value, text: c.text(n), at: at}, nil
	case *ast.IntegerNode:
		return &literal{val: int64(n.Value), text: c.text(n), at: at}, nil
	case *ast.FloatNode:
		d, err := c.decimalLiteral(n)
		if err != nil {
			return nil, err
		}
		return &literal{val: d, text: c.text(n), at: at}, nil
	case *ast.UnaryNode:
		if n.Operator == "-" {
			switch k := n.Node.(type) {
			case *ast.IntegerNode:
				return &literal{val: -int64(k.Value), text: "-" + c.text(k), at: at}, nil
			case *ast.FloatNode:
				d, err := c.decimalLiteral(k)
				if err != nil {
					return nil, err
				}
				return &literal{val: d.Neg(), text: "-" + c.text(k), at: at}, nil
			}
			return nil, errAt(at, "operator - is not supported in filters (only on number literals)")
		}
		if n.Operator == "!" || n.Operator == "not" {
			return nil, errAt(at, "%s applies to a condition; add parentheses, e.g. !(a == b)", n.Operator)
		}
		return nil, errAt(at, "operator %s is not supported in filters", n.Operator)
	case *ast.ArrayNode:
		return nil, errAt(at, "nested lists are not supported")
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or", "==", "!=", "<", "<=", ">", ">=", "in", "contains", "startsWith", "endsWith":
			return nil, errAt(at, "a condition cannot be used as a value here; compare fields with values, e.g. a == 1 && b == 2")
		}
		return nil, errAt(at, "operator %s is not supported in filters", n.Operator)
	}
	return nil, c.unsupported(n)
}

// member accepts only `$name.member...`: parameters are objects supplied by
// the server (the current user, now, ...), fields are flat.
func (c *converter) member(n *ast.MemberNode) (operand, error) {
	var path []string
	var cur ast.Node = n
	for {
		m, ok := cur.(*ast.MemberNode)
		if !ok {
			break
		}
		if m.Optional {
			return nil, errAt(c.pos(m), "operator ?. is not supported in filters")
		}
		prop, ok := m.Property.(*ast.StringNode)
		if !ok || !nameRe.MatchString(prop.Value) {
			return nil, errAt(c.pos(m), "only .name member access is supported")
		}
		path = append(path, prop.Value)
		cur = m.Node
	}
	id, ok := cur.(*ast.IdentifierNode)
	if !ok || !strings.HasPrefix(id.Value, "$") {
		return nil, errAt(c.pos(cur), "member access (x.y) is only supported on $parameters such as $user.id")
	}
	root := id.Value[1:]
	if !nameRe.MatchString(root) {
		return nil, errAt(c.pos(id), "invalid parameter name %q", id.Value)
	}
	full := []string{root}
	for i := len(path) - 1; i >= 0; i-- {
		full = append(full, path[i])
	}
	return &paramRef{path: full, at: c.pos(id)}, nil
}

var decimalLitRe = regexp.MustCompile(`^([0-9]+\.?[0-9]*|\.[0-9]+)$`)

// decimalLiteral re-reads the literal from the source: expr only keeps a
// float64, which would turn 0.1 into 0.1000000000000000055...
func (c *converter) decimalLiteral(n *ast.FloatNode) (decimal.Decimal, error) {
	txt := strings.ReplaceAll(c.text(n), "_", "")
	if !decimalLitRe.MatchString(txt) {
		return decimal.Decimal{}, errAt(c.pos(n), "number %s is not supported: write decimals as digits with an optional point, e.g. 12.50", c.text(n))
	}
	d, err := decimal.NewFromString(txt)
	if err != nil {
		return decimal.Decimal{}, errAt(c.pos(n), "invalid number %s", c.text(n))
	}
	return d, nil
}

func (c *converter) unsupported(n ast.Node) error {
	at := c.pos(n)
	switch n := n.(type) {
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok {
			return errAt(at, "function %s() is not supported in filters", id.Value)
		}
		return errAt(at, "method calls are not supported in filters")
	case *ast.BuiltinNode:
		return errAt(at, "function %s() is not supported in filters", n.Name)
	case *ast.ConditionalNode:
		return errAt(at, "conditional expressions (?: and if/else) are not supported in filters")
	case *ast.SequenceNode:
		return errAt(at, "; is not supported in filters: write one expression")
	case *ast.VariableDeclaratorNode:
		return errAt(at, "let is not supported in filters")
	case *ast.MapNode, *ast.PairNode:
		return errAt(at, "maps are not supported in filters")
	case *ast.SliceNode:
		return errAt(at, "slices are not supported in filters")
	case *ast.ChainNode:
		return errAt(at, "operator ?. is not supported in filters")
	case *ast.BytesNode:
		return errAt(at, "byte strings are not supported in filters")
	case *ast.PointerNode, *ast.PredicateNode:
		return errAt(at, "predicates are not supported in filters")
	}
	return errAt(at, "%s is not supported in filters", c.text(n))
}

// checkText rejects strings PostgreSQL cannot store in a text value, so the
// error comes from us (with a position) instead of from the database.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("contains a NUL character")
	}
	return nil
}
