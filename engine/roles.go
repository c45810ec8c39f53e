package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/store"
)

// CheckRole verifies a role against the live entities: every entity and field it names
// exists and every row rule compiles to SQL, so a broken rule is refused when saved,
// not discovered on the next request.
func (e *Engine) CheckRole(ctx context.Context, r auth.Role) error {
	var problems []schema.Problem
	for name, g := range r.Entities {
		base := "/entities/" + name
		if name == auth.AnyEntity {
			if g.Rows != "" || len(g.Fields) > 0 {
				problems = append(problems, schema.Problem{Path: base, Message: `"*" grants cannot have row rules or field rules`})
			}
			continue
		}
		c, err := e.entity(ctx, e.pool, name)
		if errors.Is(err, ErrNotFound) {
			problems = append(problems, schema.Problem{Path: base, Message: fmt.Sprintf("no entity %q", name)})
			continue
		}
		if err != nil {
			return err
		}
		for field := range g.Fields {
			if c.entity.Field(field) == nil {
				problems = append(problems, schema.Problem{Path: base + "/fields/" + field, Message: fmt.Sprintf("%s has no field %q", name, field)})
			}
		}
		if g.Rows != "" {
			expr, err := query.Parse(g.Rows)
			if err == nil {
				_, err = expr.SQL(queryFields(c.entity, "t", nil), userParams(Actor{}), &query.Args{})
			}
			if err != nil {
				problems = append(problems, schema.Problem{Path: base + "/rows", Code: "rule", Message: err.Error()})
			}
		}
	}
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// Decision explains one action for one record.
type Decision struct {
	Allowed bool `json:"allowed"`
	// Roles grant the action on the entity.
	Roles []string `json:"roles"`
	// Rows: "unrestricted", "matched" (MatchedBy lists the roles whose rule holds for
	// the record) or "no rule matched".
	Rows      string         `json:"rows"`
	MatchedBy []auth.RowRule `json:"matched_by,omitempty"`
	Rules     []auth.RowRule `json:"rules,omitempty"`
}

// FieldDecision explains a field's visibility.
type FieldDecision struct {
	Hidden   bool     `json:"hidden"`
	ReadOnly bool     `json:"read_only"`
	Rules    []string `json:"rules,omitempty"`
}

// Explanation answers why a user can or cannot see or change a record.
type Explanation struct {
	User     string                   `json:"user"`
	Admin    bool                     `json:"admin"`
	Entity   string                   `json:"entity"`
	ID       *uuid.UUID               `json:"id,omitempty"`
	Exists   bool                     `json:"exists"`
	Actions  map[string]Decision      `json:"actions"`
	Fields   map[string]FieldDecision `json:"fields"`
	Decision string                   `json:"decision"`
}

// Explain evaluates a user's roles for an entity and, when id is given, each role's
// row rule against that record.
func (e *Engine) Explain(ctx context.Context, u auth.User, entity string, id *uuid.UUID) (*Explanation, error) {
	c, err := e.entity(ctx, e.pool, entity)
	if err != nil {
		return nil, err
	}
	actor := ActorFor(u)
	acc := actor.access(c.entity)
	ex := &Explanation{User: u.Email, Admin: u.IsAdmin, Entity: entity, ID: id, Actions: map[string]Decision{}, Fields: map[string]FieldDecision{}}
	if id != nil {
		if err := e.pool.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE id = $1)", store.Table(entity)), *id).Scan(&ex.Exists); err != nil {
			return nil, err
		}
	}
	for _, action := range []auth.Action{auth.Read, auth.Create, auth.Update, auth.Delete, auth.Export, auth.Manage} {
		d := Decision{}
		d.Allowed, d.Roles = acc.Allowed(action)
		rules, all := acc.RowRules(action)
		d.Rules = rules
		switch {
		case !d.Allowed:
			d.Rows = "no role grants " + string(action)
		case all:
			d.Rows = "unrestricted"
		case id == nil || !ex.Exists:
			d.Rows = "restricted by row rules"
		default:
			for _, r := range rules {
				ok, err := e.ruleHolds(ctx, actor, c.entity, r, *id)
				if err != nil {
					return nil, err
				}
				if ok {
					d.MatchedBy = append(d.MatchedBy, r)
				}
			}
			if len(d.MatchedBy) > 0 {
				d.Rows = "matched"
			} else {
				d.Rows = "no rule matched"
				d.Allowed = false
			}
		}
		ex.Actions[string(action)] = d
	}
	rules := acc.FieldRules()
	for _, f := range c.entity.LiveFields() {
		fd := FieldDecision{Hidden: acc.Hidden(f.Name), ReadOnly: acc.ReadOnly(f.Name, auth.Update), Rules: rules[f.Name]}
		if fd.Hidden || fd.ReadOnly || len(fd.Rules) > 0 {
			ex.Fields[f.Name] = fd
		}
	}
	read := ex.Actions[string(auth.Read)]
	switch {
	case u.IsAdmin:
		ex.Decision = u.Email + " is an administrator: everything is allowed"
	case !read.Allowed && len(read.Roles) == 0:
		ex.Decision = fmt.Sprintf("none of %s's roles %v grants read on %s", u.Email, u.Roles, entity)
	case !read.Allowed:
		ex.Decision = fmt.Sprintf("roles %v grant read on %s, but no row rule matches this record", read.Roles, entity)
	case len(read.MatchedBy) > 0:
		ex.Decision = fmt.Sprintf("readable through role %s (rule %q)", read.MatchedBy[0].Role, read.MatchedBy[0].Rule)
	default:
		ex.Decision = fmt.Sprintf("readable through roles %v", read.Roles)
	}
	return ex, nil
}

func (e *Engine) ruleHolds(ctx context.Context, actor Actor, ent *schema.Entity, r auth.RowRule, id uuid.UUID) (bool, error) {
	expr, err := parseRule(r.Rule)
	if err != nil {
		return false, err
	}
	args := &query.Args{Values: []any{id}}
	sql, err := expr.SQL(queryFields(ent, "t", nil), userParams(actor), args)
	if err != nil {
		return false, err
	}
	var ok bool
	err = e.pool.QueryRow(ctx, fmt.Sprintf("SELECT coalesce((SELECT %s FROM %s t WHERE t.id = $1), false)", sql, store.Table(ent.Name)), args.Values...).Scan(&ok)
	return ok, err
}
