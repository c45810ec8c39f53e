package auth

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// Action is something a role may be granted on an entity.
type Action string

// The actions of the permission model.
const (
	Create Action = "create"
	Read   Action = "read"
	Update Action = "update"
	Delete Action = "delete"
	Export Action = "export"
	// Manage is designing the entity: its definition, forms, views.
	Manage Action = "manage"
)

// Field access levels in a grant.
const (
	FieldHidden   = "hidden"
	FieldReadOnly = "read_only"
)

// AnyEntity is the grant key that applies to every entity without a grant of its own.
const AnyEntity = "*"

// Role is a named set of grants, shipped by a module or written by an admin.
type Role struct {
	Name     string                 `json:"name"`
	Module   string                 `json:"module,omitempty"`
	Label    map[string]string      `json:"label,omitempty"`
	Entities map[string]EntityGrant `json:"entities"`
}

// EntityGrant is what a role may do with one entity.
type EntityGrant struct {
	Create bool `json:"create,omitempty"`
	Read   bool `json:"read,omitempty"`
	Update bool `json:"update,omitempty"`
	Delete bool `json:"delete,omitempty"`
	Export bool `json:"export,omitempty"`
	Manage bool `json:"manage,omitempty"`
	// Rows is a row rule in the filter language (e.g. `owner == $user.id`): the role's
	// read, update, delete and export reach only rows matching it. Empty: all rows.
	Rows string `json:"rows,omitempty"`
	// Fields maps a field to "hidden" (never returned, filtered, sorted, exported) or
	// "read_only" (writes refused).
	Fields map[string]string `json:"fields,omitempty"`
}

func (g EntityGrant) allows(a Action) bool {
	switch a {
	case Create:
		return g.Create
	case Read:
		return g.Read
	case Update:
		return g.Update
	case Delete:
		return g.Delete
	case Export:
		return g.Export
	case Manage:
		return g.Manage
	}
	return false
}

// Policy is everything a user may do: the union of their roles.
type Policy struct {
	// Admin users may do everything; their policy has no roles to consult.
	Admin bool
	Roles []Role
}

// RowRule is one role's row rule for an action.
type RowRule struct {
	Role string `json:"role"`
	Rule string `json:"rule"`
}

// Access is a policy applied to one entity.
type Access struct {
	Admin  bool
	grants []namedGrant
}

type namedGrant struct {
	role  string
	grant EntityGrant
}

// For resolves the policy for an entity: each role's grant for it, or its "*" grant.
func (p *Policy) For(entity string) *Access {
	a := &Access{Admin: p != nil && p.Admin}
	if p == nil {
		return a
	}
	for _, r := range p.Roles {
		g, ok := r.Entities[entity]
		if !ok {
			g, ok = r.Entities[AnyEntity]
		}
		if ok {
			a.grants = append(a.grants, namedGrant{role: r.Name, grant: g})
		}
	}
	return a
}

// Allowed tells whether any role grants the action, and which roles do.
func (a *Access) Allowed(action Action) (bool, []string) {
	if a.Admin {
		return true, []string{"admin"}
	}
	var roles []string
	for _, g := range a.grants {
		if g.grant.allows(action) {
			roles = append(roles, g.role)
		}
	}
	return len(roles) > 0, roles
}

// RowRules are the row rules of the roles granting the action. all is true when one of
// them has no rule, i.e. the action reaches every row.
func (a *Access) RowRules(action Action) (rules []RowRule, all bool) {
	if a.Admin {
		return nil, true
	}
	for _, g := range a.grants {
		if !g.grant.allows(action) {
			continue
		}
		if g.grant.Rows == "" {
			return nil, true
		}
		rules = append(rules, RowRule{Role: g.role, Rule: g.grant.Rows})
	}
	return rules, false
}

// Hidden tells whether a field is hidden: every role granting read hides it.
func (a *Access) Hidden(field string) bool {
	if a.Admin {
		return false
	}
	granted := false
	for _, g := range a.grants {
		if !g.grant.Read {
			continue
		}
		granted = true
		if g.grant.Fields[field] != FieldHidden {
			return false
		}
	}
	return granted
}

// ReadOnly tells whether a field may not be written: no role granting the action
// leaves it writable.
func (a *Access) ReadOnly(field string, action Action) bool {
	if a.Admin {
		return false
	}
	for _, g := range a.grants {
		if g.grant.allows(action) && g.grant.Fields[field] == "" {
			return false
		}
	}
	return true
}

// FieldRules explains, per field, which roles hide it or make it read-only.
func (a *Access) FieldRules() map[string][]string {
	out := map[string][]string{}
	for _, g := range a.grants {
		for field, level := range g.grant.Fields {
			out[field] = append(out[field], g.role+": "+level)
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// ParseRole decodes and checks a role definition: known keys only, known field levels.
func ParseRole(name string, data []byte) (Role, error) {
	var r Role
	dec := json.NewDecoder(bytesReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Role{}, &FieldError{Field: "", Message: "invalid role: " + err.Error()}
	}
	if r.Name == "" {
		r.Name = name
	}
	if r.Name != name {
		return Role{}, &FieldError{Field: "/name", Message: fmt.Sprintf("is %q but the URL names %q", r.Name, name)}
	}
	if r.Entities == nil {
		r.Entities = map[string]EntityGrant{}
	}
	for entity, g := range r.Entities {
		for field, level := range g.Fields {
			if !slices.Contains([]string{FieldHidden, FieldReadOnly}, level) {
				return Role{}, &FieldError{Field: "/entities/" + entity + "/fields/" + field, Message: `must be "hidden" or "read_only"`}
			}
		}
	}
	return r, nil
}
