package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tessera/tessera/engine/schema"
)

// opRenameTable only appears on refused steps: an entity or lines table keeps its name
// for life (other entities' foreign keys, stored plans and history name it).
const opRenameTable = "rename_table"

// phase orders a migration so every statement finds the table in the shape it expects:
// columns get their new names first (later statements use them), constraints and indexes
// that stand in the way are dropped before types change, new columns exist before
// constraints and indexes are added over them, and the search column is rebuilt last,
// over the final columns.
type phase int

const (
	phaseRename phase = iota
	phaseDrop
	phaseType
	phaseAdd
	phaseConstraint
	phaseIndex
	phaseComment
	phaseSearch
	phaseCount
)

type planner struct {
	steps [phaseCount][]Step
}

func (p *planner) add(ph phase, s ...Step) { p.steps[ph] = append(p.steps[ph], s...) }

func (p *planner) ordered() []Step {
	var out []Step
	for _, steps := range p.steps {
		out = append(out, steps...)
	}
	return out
}

// tableSide is one definition's view of one table: the entity table or a lines table.
type tableSide struct {
	name   string
	fields []*schema.Field
	// indexes are the indexes the definition asks for, by name (see wantedIndexes). Lines
	// tables have none beyond the parent index createChildTable makes, so theirs is empty.
	indexes map[string]string
	// entity resolves index names to their columns; nil for lines tables.
	entity *schema.Entity
	// props are the raw property schemas by field name (read for "default").
	props map[string]json.RawMessage
}

// diff is the plan from the stored definition old to next for an entity whose tables
// exist. Fields are matched by x-field-id, so a renamed field keeps its column and data.
// Every Check query runs against the tables as they are before any step (PlanMigration
// runs them all first), so checks name the current columns and types while the SQL,
// run in order, names the columns as the earlier steps left them.
func diff(old, next *schema.Entity) []Step {
	p := &planner{}
	if old.Name != next.Name {
		p.add(phaseRename, Step{
			Op: opRenameTable, Target: old.Name,
			Description: fmt.Sprintf("rename entity %s to %s", old.Name, next.Name),
			Problem:     "an entity cannot be renamed; create a new entity and move the records",
			Check:       "SELECT 1",
		})
		return p.ordered()
	}
	p.table(
		tableSide{name: old.Name, fields: old.Fields, indexes: wantedIndexes(old), entity: old, props: properties(old.Definition)},
		tableSide{name: next.Name, fields: next.Fields, indexes: wantedIndexes(next), entity: next, props: properties(next.Definition)},
		true)
	if a, b := label(old.Label, old.Name), label(next.Label, next.Name); a != b {
		p.add(phaseComment, Step{
			Op: OpSetComment, Target: next.Name,
			Description: fmt.Sprintf("label of %s: %q → %q", next.Name, a, b),
			SQL:         []string{fmt.Sprintf("COMMENT ON TABLE %s IS %s", Table(next.Name), Literal(b))},
		})
	}
	// The search column is generated from the searchable columns; when that list (or a
	// name in it) changes, it is rebuilt over the final columns.
	if searchExpr(old.Fields) != searchExpr(next.Fields) {
		var names []string
		for _, f := range next.Fields {
			if f.Searchable() {
				names = append(names, f.Name)
			}
		}
		sql := dropSearch(next.Name)
		sql = append(sql,
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN search tsvector GENERATED ALWAYS AS (%s) STORED", Table(next.Name), searchExpr(next.Fields)),
			fmt.Sprintf("CREATE INDEX %s ON %s USING gin (search)", Ident(objectName(next.Name, "search_idx")), Table(next.Name)))
		p.add(phaseSearch, Step{
			Op: OpRebuildSearch, Target: next.Name,
			Description: fmt.Sprintf("rebuild the search column of %s over: %s", next.Name, strings.Join(names, ", ")),
			SQL:         sql,
		})
	}
	return p.ordered()
}

// dropSearch removes the generated search column and its index. IF EXISTS because a type
// change of a searchable column drops them early (PostgreSQL refuses to change the type
// of a column a generated column uses) and the rebuild step drops them again.
func dropSearch(table string) []string {
	return []string{
		fmt.Sprintf("DROP INDEX IF EXISTS %s", indexIdent(objectName(table, "search_idx"))),
		fmt.Sprintf("ALTER TABLE %s DROP COLUMN IF EXISTS search", Table(table)),
	}
}

// indexIdent is an index's qualified name: indexes live in the data schema with their table.
func indexIdent(name string) string { return Table(name) }

// notNull reports whether the column carries NOT NULL: required, written by clients
// (engine-filled fields are set after validation, or not at all) and not removed.
func notNull(f *schema.Field) bool { return f.Required && !f.ReadOnly && !f.Removed }

// fieldCheck is the CHECK expression a field's column carries, or "" (removed fields
// lose theirs so inserts that never set them succeed).
func fieldCheck(f *schema.Field) string {
	if f.Removed {
		return ""
	}
	return checkExpr(f)
}

// fieldFK is the foreign key a field's column carries, or "". Removed relations lose
// theirs: a hidden field must not block deletes of the records it points to (restrict)
// nor delete rows when they go (cascade). Restoring checks the values again.
func fieldFK(f *schema.Field) string {
	if f.Relation == nil || f.Removed {
		return ""
	}
	return fkExpr(f)
}

func columnComment(f *schema.Field) string {
	if f.Removed {
		return label(f.Label, f.Name) + " (removed)"
	}
	return label(f.Label, f.Name)
}

func linesComment(parent string, f *schema.Field) string {
	s := fmt.Sprintf("Lines of %s.%s", parent, f.Name)
	if f.Removed {
		s += " (removed)"
	}
	return s
}

type fieldPair struct{ old, next *schema.Field }

// table diffs one table. search is true for entity tables, which have the generated
// search column.
func (p *planner) table(o, n tableSide, search bool) {
	oldByID := map[string]*schema.Field{}
	for _, f := range o.fields {
		oldByID[f.ID] = f
	}
	inNext := map[string]bool{}
	for _, f := range n.fields {
		inNext[f.ID] = true
	}
	var (
		pairs []fieldPair
		added []*schema.Field
	)
	for _, f := range n.fields {
		if of := oldByID[f.ID]; of != nil {
			pairs = append(pairs, fieldPair{of, f})
		} else {
			added = append(added, f)
		}
	}
	// A field missing from next (MergeRemoved was not applied, or could not keep it) is
	// soft-removed like one marked x-removed: its column and data are never dropped, so
	// its name stays taken.
	heldBy := map[string]*schema.Field{}
	for _, f := range o.fields {
		if !inNext[f.ID] {
			gone := *f
			gone.Removed = true
			pairs = append(pairs, fieldPair{f, &gone})
			heldBy[f.Name] = f
		}
	}
	refused := map[*schema.Field]bool{}
	for _, f := range n.fields {
		h := heldBy[f.Name]
		if h == nil {
			continue
		}
		refused[f] = true
		op := OpAddColumn
		if oldByID[f.ID] != nil {
			op = OpRenameColumn
		}
		p.add(phaseRename, Step{
			Op: op, Target: n.name + "." + f.Name,
			Description: fmt.Sprintf("field %s (x-field-id %s) of %s", f.Name, f.ID, n.name),
			Problem: fmt.Sprintf("the name %q is held by removed field (x-field-id %s): choose another name, or reuse x-field-id %s to restore it",
				f.Name, h.ID, h.ID),
			Check: "SELECT 1",
		})
	}

	// Renames come first: every later statement uses the new names.
	var renames []columnRename
	columns := map[string]bool{}
	for _, f := range o.fields {
		if f.Column() != "" {
			columns[f.Name] = true
		}
	}
	for _, pr := range pairs {
		if !refused[pr.next] && pr.old.Name != pr.next.Name && pr.old.Column() != "" && pr.next.Column() != "" {
			renames = append(renames, columnRename{id: pr.old.ID, orig: pr.old.Name, from: pr.old.Name, to: pr.next.Name})
		}
	}
	p.renames(n.name, columns, renames)

	// values maps a next field name to an expression over the current table giving the
	// value the row will hold after the migration, for the checks of new unique indexes.
	values := map[string]string{}
	for _, c := range schema.SystemColumns {
		values[c] = Ident(c)
	}
	handledIndexes := map[string]bool{}
	retyped := map[string]bool{}
	for _, pr := range pairs {
		if refused[pr.next] {
			continue
		}
		if pr.old.Column() == "" || pr.next.Column() == "" {
			p.childPair(o, n, pr.old, pr.next)
			continue
		}
		values[pr.next.Name] = p.column(o, n, pr.old, pr.next, search, handledIndexes)
		retyped[pr.next.Name] = pr.old.Column() != pr.next.Column()
	}
	for _, f := range added {
		if refused[f] {
			continue
		}
		values[f.Name] = p.addField(n, f)
	}

	// Indexes are compared by name: the name encodes table, columns and uniqueness. A
	// unique index over a column whose type changes is rebuilt instead of converted in
	// place, so its duplicates check sees the converted values ("1.50" and "1.5" are one
	// decimal).
	rebuilt := func(name string) bool {
		fields, unique := indexFields(n.entity, name)
		if !unique {
			return false
		}
		return slices.ContainsFunc(fields, func(f string) bool { return retyped[strings.TrimPrefix(f, "-")] })
	}
	for _, name := range slices.Sorted(maps.Keys(o.indexes)) {
		if _, keep := n.indexes[name]; (keep && !rebuilt(name)) || handledIndexes[name] {
			continue
		}
		p.add(phaseDrop, Step{
			Op: OpDropIndex, Target: name,
			Description: fmt.Sprintf("drop index %s of %s", name, n.name),
			SQL:         []string{"DROP INDEX IF EXISTS " + indexIdent(name)},
		})
	}
	for _, name := range slices.Sorted(maps.Keys(n.indexes)) {
		if _, exists := o.indexes[name]; exists && !rebuilt(name) {
			continue
		}
		fields, unique := indexFields(n.entity, name)
		s := Step{
			Op: OpAddIndex, Target: name,
			Description: fmt.Sprintf("add index %s on %s (%s)", name, n.name, strings.Join(fields, ", ")),
			SQL:         []string{n.indexes[name]},
		}
		if unique {
			s.Description = fmt.Sprintf("add unique index %s on %s (%s)", name, n.name, strings.Join(fields, ", "))
			s.Check = duplicatesCheck(o.name, fields, values)
		}
		p.add(phaseIndex, s)
	}
}

// indexFields finds the columns of one of e's wanted indexes by recomputing the names
// wantedIndexes gives, so the naming policy stays in one place.
func indexFields(e *schema.Entity, name string) ([]string, bool) {
	if e == nil {
		return nil, false
	}
	for _, f := range e.LiveFields() {
		for _, unique := range []bool{true, false} {
			if IndexName(e.Name, []string{f.Name}, unique) == name {
				return []string{f.Name}, unique
			}
		}
	}
	for _, idx := range e.Indexes {
		if IndexName(e.Name, idx.Fields, idx.Unique) == name {
			return idx.Fields, idx.Unique
		}
	}
	return nil, false
}

// duplicatesCheck counts the values a new unique index would find more than once,
// computed from the rows as they are now (values gives each column's future value).
// Rows with a NULL in any column never conflict.
func duplicatesCheck(table string, fields []string, values map[string]string) string {
	var exprs, present []string
	for _, f := range fields {
		v, ok := values[strings.TrimPrefix(f, "-")]
		if !ok {
			return ""
		}
		exprs = append(exprs, v)
		present = append(present, "("+v+") IS NOT NULL")
	}
	return fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s GROUP BY %s HAVING count(*) > 1) d",
		Table(table), strings.Join(present, " AND "), strings.Join(exprs, ", "))
}

type columnRename struct{ id, orig, from, to string }

// renames emits the column renames of a table in an order where no target name is still
// taken; fields that swap names go through a temporary name (field names start with a
// letter, so "_renaming_…" never collides).
func (p *planner) renames(table string, columns map[string]bool, pending []columnRename) {
	for guard := 0; len(pending) > 0 && guard <= 2*len(pending)+2; guard++ {
		var rest []columnRename
		progressed := false
		for _, r := range pending {
			if columns[r.to] {
				rest = append(rest, r)
				continue
			}
			p.add(phaseRename, Step{
				Op: OpRenameColumn, Target: table + "." + r.to,
				Description: fmt.Sprintf("rename field x-field-id %s of %s from %s to %s (data kept)", r.id, table, r.orig, r.to),
				SQL:         []string{fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", Table(table), Ident(r.from), Ident(r.to))},
			})
			delete(columns, r.from)
			columns[r.to] = true
			progressed = true
		}
		pending = rest
		if !progressed && len(pending) > 0 {
			r := &pending[0]
			if r.from != r.orig {
				// Still stuck after a temporary rename: the target is held by a column
				// that keeps its name, which table() reports as a refused step.
				return
			}
			tmp := "_renaming_" + r.id
			p.add(phaseRename, Step{
				Op: OpRenameColumn, Target: table + "." + r.from,
				Description: fmt.Sprintf("rename %s of %s to the temporary name %s (fields swap names)", r.from, table, tmp),
				SQL:         []string{fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", Table(table), Ident(r.from), Ident(tmp))},
			})
			delete(columns, r.from)
			columns[tmp] = true
			r.from = tmp
		}
	}
}

// column plans the changes of one field that has a column in both definitions, and
// returns the expression over the current row that gives its value after the migration.
func (p *planner) column(o, n tableSide, of, nf *schema.Field, search bool, handledIndexes map[string]bool) string {
	t := n.name
	target := t + "." + nf.Name
	col := Ident(nf.Name)    // in SQL: the renames have run
	oldCol := Ident(of.Name) // in checks: they run before any step
	from, to := of.Column(), nf.Column()
	cv := planCast(from, to)
	value := cv.value(oldCol)
	softRemove := !of.Removed && nf.Removed
	restore := of.Removed && !nf.Removed

	// What the old definition put on the column and the new one does not.
	type drop struct{ desc, sql string }
	var drops []drop
	oldCheck, newCheck := fieldCheck(of), fieldCheck(nf)
	checkChanged := oldCheck != newCheck || (oldCheck != "" && checkName(t, of) != checkName(t, nf))
	if oldCheck != "" && checkChanged {
		drops = append(drops, drop{"drop the allowed-values check of " + target,
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", Table(t), Ident(checkName(t, of)))})
	}
	oldFK, newFK := fieldFK(of), fieldFK(nf)
	fkChanged := oldFK != newFK || (oldFK != "" && fkName(t, of) != fkName(t, nf))
	if oldFK != "" && fkChanged {
		drops = append(drops, drop{"drop the foreign key of " + target,
			fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", Table(t), Ident(fkName(t, of)))})
	}
	if notNull(of) && !notNull(nf) {
		drops = append(drops, drop{"drop NOT NULL of " + target,
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", Table(t), col)})
	}
	if softRemove {
		// The removed field's own indexes go with it: a unique index would make inserts
		// (which leave the column NULL) fine, but stale values would still conflict on
		// restore, and nothing reads the column any more.
		s := Step{
			Op: OpSoftRemoveColumn, Target: target,
			Description: fmt.Sprintf("remove field %s (x-field-id %s) of %s: the column and its data are kept, hidden from the API", nf.Name, nf.ID, t),
		}
		for _, d := range drops {
			s.SQL = append(s.SQL, d.sql)
		}
		for _, unique := range []bool{true, false} {
			name := IndexName(t, []string{of.Name}, unique)
			if _, had := o.indexes[name]; had {
				if _, keep := n.indexes[name]; !keep {
					s.SQL = append(s.SQL, "DROP INDEX IF EXISTS "+indexIdent(name))
					handledIndexes[name] = true
				}
			}
		}
		s.SQL = append(s.SQL, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", Table(t), col, Literal(columnComment(nf))))
		p.add(phaseDrop, s)
	} else {
		for _, d := range drops {
			p.add(phaseDrop, Step{Op: OpDropConstraint, Target: target, Description: d.desc, SQL: []string{d.sql}})
		}
	}

	if from != to {
		p.add(phaseType, cv.step(t, nf, col, oldCol, from, search && of.Searchable()))
	}

	if restore {
		p.add(phaseAdd, Step{
			Op: OpRestoreColumn, Target: target,
			Description: fmt.Sprintf("restore field %s (x-field-id %s) of %s with the data it kept", nf.Name, nf.ID, t),
			SQL:         []string{fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", Table(t), col, Literal(columnComment(nf)))},
		})
	} else if !softRemove && columnComment(of) != columnComment(nf) {
		p.add(phaseComment, Step{
			Op: OpSetComment, Target: target,
			Description: fmt.Sprintf("label of %s: %q → %q", target, columnComment(of), columnComment(nf)),
			SQL:         []string{fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", Table(t), col, Literal(columnComment(nf)))},
		})
	}

	if !notNull(of) && notNull(nf) {
		p.add(phaseConstraint, Step{
			Op: OpAddConstraint, Target: target,
			Description: fmt.Sprintf("make %s required (NOT NULL)", target),
			Check:       fmt.Sprintf("SELECT count(*) FROM %s WHERE %s IS NULL", Table(o.name), oldCol),
			SQL:         []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", Table(t), col)},
		})
	}
	// A table created from a definition that already had the field removed got its
	// constraints anyway (createTable does not skip removed fields): restoring replaces them.
	replace := func(name string) []string {
		if !restore {
			return nil
		}
		return []string{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", Table(t), Ident(name))}
	}
	if newCheck != "" && checkChanged {
		s := Step{
			Op: OpAddConstraint, Target: target,
			Description: fmt.Sprintf("allowed values of %s: %s", target, strings.Join(nf.Enum, ", ")),
			SQL: append(replace(checkName(t, nf)),
				fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s)", Table(t), Ident(checkName(t, nf)), newCheck)),
		}
		// Rows holding a value outside the new list: refused, never rewritten.
		s.Check = fmt.Sprintf("SELECT count(*) FROM %s WHERE NOT (%s)", Table(o.name), enumAllows(nf, value))
		p.add(phaseConstraint, s)
	}
	if newFK != "" && fkChanged {
		s := Step{
			Op: OpAddConstraint, Target: target,
			Description: fmt.Sprintf("%s references %s (on delete %s)", target, nf.Relation.Entity, nf.Relation.OnDelete),
			SQL: append(replace(fkName(t, nf)),
				fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", Table(t), Ident(fkName(t, nf)), newFK)),
		}
		// Only a new key, a new target or new values can leave references dangling; a
		// changed ON DELETE or name keeps what the old key already guaranteed.
		if oldFK == "" || of.Relation.Entity != nf.Relation.Entity || from != to {
			qualified := planCast(from, to).value("x." + oldCol)
			s.Check = fmt.Sprintf("SELECT count(*) FROM %s AS x WHERE (%s) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %s AS r WHERE r.id = %s)",
				Table(o.name), qualified, Table(nf.Relation.Entity), qualified)
		}
		p.add(phaseConstraint, s)
	}
	return value
}

// enumAllows is the CHECK condition of an enum or multi-select field over any value
// expression (checkExpr builds the same condition over the column itself).
func enumAllows(f *schema.Field, value string) string {
	vals := make([]string, len(f.Enum))
	for i, v := range f.Enum {
		vals[i] = Literal(v)
	}
	if f.Type == schema.TypeMultiSelect {
		return fmt.Sprintf("(%s) <@ ARRAY[%s]::text[]", value, strings.Join(vals, ", "))
	}
	return fmt.Sprintf("(%s) IN (%s)", value, strings.Join(vals, ", "))
}

// childPair plans a field that is child lines on at least one side.
func (p *planner) childPair(o, n tableSide, of, nf *schema.Field) {
	target := n.name + "." + nf.Name
	if of.Child == nil || nf.Child == nil {
		p.add(phaseType, Step{
			Op: OpAlterType, Target: target,
			Description: fmt.Sprintf("change field %s (x-field-id %s) of %s between child lines and a column", nf.Name, nf.ID, n.name),
			Problem:     "a field cannot change between child lines and a plain value; add a new field with a new x-field-id instead",
			Check:       "SELECT 1",
		})
		return
	}
	if of.Child.Table != nf.Child.Table {
		p.add(phaseRename, Step{
			Op: opRenameTable, Target: target,
			Description: fmt.Sprintf("move the lines of %s from table %s to %s", target, of.Child.Table, nf.Child.Table),
			Problem:     fmt.Sprintf("a lines table cannot be renamed: keep \"x-child\": {\"entity\": %q}", of.Child.Table),
			Check:       "SELECT 1",
		})
		return
	}
	table := nf.Child.Table
	before, after := linesComment(n.name, of), linesComment(n.name, nf)
	sql := []string{fmt.Sprintf("COMMENT ON TABLE %s IS %s", Table(table), Literal(after))}
	switch {
	case !of.Removed && nf.Removed:
		p.add(phaseDrop, Step{Op: OpSoftRemoveColumn, Target: target, SQL: sql,
			Description: fmt.Sprintf("remove child lines %s (x-field-id %s): table %s and its rows are kept, hidden from the API", nf.Name, nf.ID, table)})
	case of.Removed && !nf.Removed:
		p.add(phaseAdd, Step{Op: OpRestoreColumn, Target: target, SQL: sql,
			Description: fmt.Sprintf("restore child lines %s (x-field-id %s) with the rows table %s kept", nf.Name, nf.ID, table)})
	case before != after:
		p.add(phaseComment, Step{Op: OpSetComment, Target: table, SQL: sql,
			Description: fmt.Sprintf("comment of %s: %q → %q", table, before, after)})
	}
	p.table(
		tableSide{name: table, fields: of.Child.Fields, indexes: map[string]string{}, props: childProperties(o.props[of.Name])},
		tableSide{name: table, fields: nf.Child.Fields, indexes: map[string]string{}, props: childProperties(n.props[nf.Name])},
		false)
}

// addField plans a field new to the table and returns its value after the migration
// as an expression (for the checks of new unique indexes).
func (p *planner) addField(n tableSide, f *schema.Field) string {
	if f.Type == schema.TypeChild {
		p.add(phaseAdd, createChildTable(n.name, f)...)
		return "NULL"
	}
	t := n.name
	target := t + "." + f.Name
	col := Ident(f.Name)
	def := ""
	if notNull(f) {
		def = defaultLiteral(n.props[f.Name], f)
	}
	s := Step{Op: OpAddColumn, Target: target, Description: fmt.Sprintf("add field %s (%s) to %s", f.Name, f.Type, t)}
	if def != "" {
		// A DEFAULT on ADD COLUMN fills the existing rows without rewriting the table; it
		// is dropped at once because the engine, not the database, applies defaults.
		s.Description += " with " + def + " in existing rows"
		s.SQL = append(s.SQL,
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s DEFAULT %s", Table(t), columnDef(f), def),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT", Table(t), col))
	} else {
		s.SQL = append(s.SQL, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s", Table(t), columnDef(f)))
	}
	// The new column is NULL (or the default) everywhere, so its CHECK and foreign key
	// hold on every existing row.
	if c := fieldCheck(f); c != "" {
		s.SQL = append(s.SQL, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s)", Table(t), Ident(checkName(t, f)), c))
	}
	if fk := fieldFK(f); fk != "" {
		s.SQL = append(s.SQL, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", Table(t), Ident(fkName(t, f)), fk))
	}
	s.SQL = append(s.SQL, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", Table(t), col, Literal(columnComment(f))))
	p.add(phaseAdd, s)
	if notNull(f) {
		ns := Step{
			Op: OpAddConstraint, Target: target,
			Description: fmt.Sprintf("make new field %s required (NOT NULL)", target),
			SQL:         []string{fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", Table(t), col)},
		}
		if def == "" {
			// Every existing row, deleted or not, would hold NULL.
			ns.Check = "SELECT count(*) FROM " + Table(t)
			ns.Description += ": existing rows have no value and the definition gives no default"
		}
		p.add(phaseConstraint, ns)
	}
	if def != "" {
		return def
	}
	return "NULL::" + f.Column()
}

// defaultLiteral is the property's JSON Schema "default" as an SQL literal of the
// field's column type, or "" when there is none (or it does not fit the column).
func defaultLiteral(prop json.RawMessage, f *schema.Field) string {
	raw, ok := memberValue(prop, "default")
	if !ok {
		return ""
	}
	col := f.Column()
	if col == "jsonb" {
		return Literal(string(raw)) + "::jsonb"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		if col == "text[]" {
			return ""
		}
		return Literal(v) + "::" + col
	case json.Number:
		return Literal(v.String()) + "::" + col
	case bool:
		return Literal(strconv.FormatBool(v)) + "::" + col
	case []any:
		if col != "text[]" {
			return ""
		}
		vals := make([]string, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				return ""
			}
			vals[i] = Literal(s)
		}
		return "ARRAY[" + strings.Join(vals, ", ") + "]::text[]"
	}
	return ""
}

// castKind classifies a column type change.
type castKind int

const (
	castSame castKind = iota
	// castSafe never fails and never loses information.
	castSafe
	// castChecked fails or loses information on some values, which fails() finds.
	castChecked
	// castEmptyOnly has no useful conversion of values (from jsonb or text[]): it is
	// allowed only while the column holds none.
	castEmptyOnly
	// castImpossible is a change between unrelated types, allowed only on an empty column.
	castImpossible
)

type typeCast struct {
	kind     castKind
	from, to string
	// using converts the column; fails is true for a value that would fail the cast or
	// lose information. Both take the column expression.
	using func(c string) string
	fails func(c string) string
}

func planCast(from, to string) typeCast {
	tc := typeCast{from: from, to: to, using: func(c string) string { return c + "::" + to }}
	viaText := func(c string) string { return c + "::text::" + to }
	switch {
	case from == to:
		tc.kind = castSame
		tc.using = func(c string) string { return c }
	case to == "jsonb":
		// to_jsonb, not ::jsonb: a text value is rarely a JSON document.
		tc.kind = castSafe
		tc.using = func(c string) string { return "to_jsonb(" + c + ")" }
	case schema.Widens(from, to):
		tc.kind = castSafe
	case from == "text" && to == "text[]":
		// A single select becoming a multi-select keeps its value as a one-item list.
		tc.kind = castSafe
		tc.using = func(c string) string {
			return fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN NULL ELSE ARRAY[%[1]s] END", c)
		}
	case from == "jsonb" || from == "text[]":
		tc.kind = castEmptyOnly
		tc.using = viaText
	default:
		if fails := lossyCasts[from+">"+to]; fails != nil {
			tc.kind = castChecked
			tc.fails = fails
		} else {
			// Through text, so a value that is somehow still there makes the ALTER fail
			// instead of silently becoming NULL.
			tc.kind = castImpossible
			tc.using = viaText
		}
	}
	return tc
}

// value is the expression giving a row's value after the change, computed from the
// current column c without ever failing: checks of new constraints use it. Values the
// change cannot carry over count as NULL (their rows are counted by the type step).
func (tc typeCast) value(c string) string {
	switch tc.kind {
	case castSame:
		return c
	case castSafe:
		return tc.using(c)
	case castChecked:
		return fmt.Sprintf("CASE WHEN %s THEN NULL ELSE %s END", tc.fails(c), tc.using(c))
	}
	return "NULL::" + tc.to
}

// step is the alter_type step of a field. dropSearchFirst: the column feeds the search
// column, which must go before the type can change (it is rebuilt at the end).
func (tc typeCast) step(table string, f *schema.Field, col, oldCol, from string, dropSearchFirst bool) Step {
	s := Step{
		Op: OpAlterType, Target: table + "." + f.Name,
		Description: fmt.Sprintf("change the type of %s.%s from %s to %s", table, f.Name, from, tc.to),
	}
	if dropSearchFirst {
		s.SQL = append(s.SQL, dropSearch(table)...)
	}
	s.SQL = append(s.SQL, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s", Table(table), col, tc.to, tc.using(col)))
	switch tc.kind {
	case castChecked:
		s.Destructive = true
		s.Description += ": counting values that cannot be converted exactly"
		s.Check = fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", Table(table), tc.fails(oldCol))
	case castEmptyOnly:
		s.Destructive = true
		s.Description += ": only while no row has a value"
		s.Check = fmt.Sprintf("SELECT count(*) FROM %s WHERE %s IS NOT NULL", Table(table), oldCol)
	case castImpossible:
		s.Destructive = true
		s.Problem = fmt.Sprintf("%s values cannot be converted to %s: the type can only change while no row has a value in %s", from, tc.to, f.Name)
		s.Check = fmt.Sprintf("SELECT count(*) FROM %s WHERE %s IS NOT NULL", Table(table), oldCol)
	}
	return s
}

// Patterns of the text values that convert exactly. They are stricter than PostgreSQL's
// input functions on purpose: " 12", "007" or "TRUE" would convert, but not back to
// the same text.
const (
	integerPattern = `^-?(0|[1-9][0-9]{0,18})$`
	// decimalPattern of engine/schema: the decimals the engine writes and accepts.
	decimalPattern  = `^-?(0|[1-9][0-9]{0,27})([.][0-9]{1,12})?$`
	datePattern     = `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`
	dateTimePattern = `^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$`
	uuidPattern     = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
	bigintRange     = `BETWEEN -9223372036854775808 AND 9223372036854775807`
)

// badDate is true unless d is a real calendar date written YYYY-MM-DD. The day is
// checked by counting from the first of the month, so 2023-02-29 is caught without a
// cast that would raise an error; CASE guarantees the arithmetic only sees matching text.
func badDate(d string) string {
	return fmt.Sprintf("CASE WHEN %[1]s ~ '%[2]s' AND left(%[1]s, 4) <> '0000' "+
		"THEN extract(day FROM make_date(left(%[1]s, 4)::int, substr(%[1]s, 6, 2)::int, 1) + (substr(%[1]s, 9, 2)::int - 1)) <> substr(%[1]s, 9, 2)::int "+
		"ELSE true END", d, datePattern)
}

// lossyCasts are the narrowing changes the planner can check row by row, keyed
// "from>to". Each predicate is false for NULL (NULL converts to NULL) and never raises
// an error, whatever the text.
var lossyCasts = map[string]func(c string) string{
	"text>bigint": func(c string) string {
		return fmt.Sprintf("(%[1]s IS NOT NULL AND CASE WHEN %[1]s ~ '%[2]s' THEN %[1]s::numeric NOT %[3]s ELSE true END)", c, integerPattern, bigintRange)
	},
	"text>numeric": func(c string) string {
		return fmt.Sprintf("(%[1]s IS NOT NULL AND %[1]s !~ '%[2]s')", c, decimalPattern)
	},
	"text>boolean": func(c string) string {
		return fmt.Sprintf("(%[1]s IS NOT NULL AND %[1]s NOT IN ('true', 'false', 't', 'f'))", c)
	},
	"text>date": func(c string) string {
		return fmt.Sprintf("(%s IS NOT NULL AND %s)", c, badDate(c))
	},
	"text>timestamptz": func(c string) string {
		return fmt.Sprintf("(%[1]s IS NOT NULL AND (%[1]s !~ '%[2]s' OR %[3]s))", c, dateTimePattern, badDate("left("+c+", 10)"))
	},
	"text>uuid": func(c string) string {
		return fmt.Sprintf("(%[1]s IS NOT NULL AND %[1]s !~ '%[2]s')", c, uuidPattern)
	},
	"numeric>bigint": func(c string) string {
		return fmt.Sprintf("(%[1]s IS NOT NULL AND (%[1]s <> trunc(%[1]s) OR %[1]s NOT %[2]s))", c, bigintRange)
	},
	"timestamptz>date": func(c string) string {
		// A time of day would be lost.
		return fmt.Sprintf("(%[1]s IS NOT NULL AND %[1]s::date::timestamptz <> %[1]s)", c)
	},
}

// MergeRemoved keeps the fields an admin deleted: every field of old (live or already
// removed) whose x-field-id no longer appears in nextDefinition is appended to its
// "properties" as it was stored, with "x-removed": true, so the migration soft-removes
// it (column and data kept) and the stored definition still knows its name and id.
// Lines fields deleted from kept child lines are kept the same way inside
// items.properties. The submitted document is edited in place, byte for byte: key
// order and formatting stay the author's. A field whose name the new document gives to
// another field is not appended; diff then reports the clash.
func MergeRemoved(old *schema.Entity, nextDefinition []byte) ([]byte, error) {
	if old == nil {
		return nextDefinition, nil
	}
	start, end, ok, err := memberSpan(nextDefinition, "properties")
	if err != nil || !ok {
		// Not JSON, or no properties: schema.Parse reports it with a location.
		return nextDefinition, nil
	}
	if _, err := objectMembers(nextDefinition[start:end]); err != nil {
		return nextDefinition, nil
	}
	oldStart, oldEnd, ok, err := memberSpan(old.Definition, "properties")
	if err != nil || !ok {
		return nil, fmt.Errorf("stored definition of %s has no properties", old.Name)
	}
	ids := map[string]bool{}
	collectIDs(nextDefinition[start:end], ids)
	merged, err := mergeProperties(nextDefinition[start:end], old.Definition[oldStart:oldEnd], old.Fields, ids)
	if err != nil {
		return nil, err
	}
	return splice(nextDefinition, []edit{{start, end, merged}}), nil
}

// mergeProperties returns the properties object next with the removed fields of
// oldFields (described in the properties object old) appended.
func mergeProperties(next, old []byte, oldFields []*schema.Field, ids map[string]bool) ([]byte, error) {
	members, err := objectMembers(next)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	byID := map[string]member{}
	for _, m := range members {
		names[m.key] = true
		if id := fieldID(next[m.start:m.end]); id != "" {
			byID[id] = m
		}
	}
	oldProps := map[string][]byte{}
	oldMembers, err := objectMembers(old)
	if err != nil {
		return nil, err
	}
	for _, m := range oldMembers {
		oldProps[m.key] = old[m.start:m.end]
	}
	var edits []edit
	var appended []string
	for _, f := range oldFields {
		if ids[f.ID] {
			// Kept child lines: keep their deleted line fields too.
			m, ok := byID[f.ID]
			if f.Child == nil || !ok {
				continue
			}
			prop := next[m.start:m.end]
			s, e, ok, err := memberSpan(prop, "items", "properties")
			if err != nil || !ok {
				continue // not child lines any more: schema.Parse or diff reports it
			}
			os, oe, ok, err := memberSpan(oldProps[f.Name], "items", "properties")
			if err != nil || !ok {
				continue
			}
			lines, err := mergeProperties(prop[s:e], oldProps[f.Name][os:oe], f.Child.Fields, ids)
			if err != nil {
				return nil, err
			}
			edits = append(edits, edit{m.start + s, m.start + e, lines})
			continue
		}
		if names[f.Name] {
			continue
		}
		raw, ok := oldProps[f.Name]
		if !ok {
			return nil, fmt.Errorf("stored definition has no property %q", f.Name)
		}
		removed, err := setMember(raw, "x-removed", []byte("true"))
		if err != nil {
			return nil, fmt.Errorf("stored property %q: %w", f.Name, err)
		}
		key, _ := json.Marshal(f.Name)
		appended = append(appended, string(key)+": "+string(removed))
	}
	if len(appended) > 0 {
		text := strings.Join(appended, ", ")
		// After the last member, or just inside "{" when there is none.
		at := bytes.IndexByte(next, '{') + 1
		if len(members) > 0 {
			at = members[len(members)-1].end
			text = ", " + text
		}
		edits = append(edits, edit{at, at, []byte(text)})
	}
	return splice(next, edits), nil
}

// collectIDs gathers the x-field-id of every property, lines fields included.
func collectIDs(props []byte, ids map[string]bool) {
	members, err := objectMembers(props)
	if err != nil {
		return
	}
	for _, m := range members {
		prop := props[m.start:m.end]
		if id := fieldID(prop); id != "" {
			ids[id] = true
		}
		if s, e, ok, _ := memberSpan(prop, "items", "properties"); ok {
			collectIDs(prop[s:e], ids)
		}
	}
}

func fieldID(prop []byte) string {
	var p struct {
		ID string `json:"x-field-id"`
	}
	_ = json.Unmarshal(prop, &p)
	return p.ID
}

// member is one key of a JSON object and the byte span of its value in the object.
type member struct {
	key        string
	start, end int
}

// objectMembers lists an object's keys in document order with their values' spans.
func objectMembers(obj []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		// The value starts after the colon that follows the key.
		pos := int(dec.InputOffset())
		for pos < len(obj) && (obj[pos] == ':' || isSpace(obj[pos])) {
			pos++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if !bytes.HasPrefix(obj[pos:], raw) {
			return nil, fmt.Errorf("cannot locate the value of %q", key)
		}
		out = append(out, member{key: key, start: pos, end: pos + len(raw)})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// memberSpan finds the value at a path of keys, as a span of doc.
func memberSpan(doc []byte, path ...string) (start, end int, ok bool, err error) {
	start, end = 0, len(doc)
	for _, key := range path {
		members, err := objectMembers(doc[start:end])
		if err != nil {
			return 0, 0, false, err
		}
		i := slices.IndexFunc(members, func(m member) bool { return m.key == key })
		if i < 0 {
			return 0, 0, false, nil
		}
		start, end = start+members[i].start, start+members[i].end
	}
	return start, end, true, nil
}

func memberValue(doc []byte, key string) ([]byte, bool) {
	if len(doc) == 0 {
		return nil, false
	}
	s, e, ok, err := memberSpan(doc, key)
	if err != nil || !ok {
		return nil, false
	}
	return doc[s:e], true
}

// setMember sets key to value in an object, in place when present, else appended.
func setMember(obj []byte, key string, value []byte) ([]byte, error) {
	members, err := objectMembers(obj)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.key == key {
			return splice(obj, []edit{{m.start, m.end, value}}), nil
		}
	}
	k, _ := json.Marshal(key)
	text := string(k) + ": " + string(value)
	at := bytes.IndexByte(obj, '{') + 1
	if len(members) > 0 {
		at = members[len(members)-1].end
		text = ", " + text
	}
	return splice(obj, []edit{{at, at, []byte(text)}}), nil
}

// edit replaces doc[start:end] with text.
type edit struct {
	start, end int
	text       []byte
}

// splice applies non-overlapping edits, from the last so earlier offsets stay valid.
func splice(doc []byte, edits []edit) []byte {
	sort.Slice(edits, func(i, j int) bool { return edits[i].start > edits[j].start })
	out := slices.Clone(doc)
	for _, e := range edits {
		out = slices.Concat(out[:e.start], e.text, out[e.end:])
	}
	return out
}

// properties are a definition's property schemas by field name.
func properties(def []byte) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	s, e, ok, err := memberSpan(def, "properties")
	if err != nil || !ok {
		return out
	}
	members, err := objectMembers(def[s:e])
	if err != nil {
		return out
	}
	for _, m := range members {
		out[m.key] = json.RawMessage(def[s+m.start : s+m.end])
	}
	return out
}

// childProperties are the line property schemas of a child lines property.
func childProperties(prop json.RawMessage) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	if len(prop) == 0 {
		return out
	}
	s, e, ok, err := memberSpan(prop, "items", "properties")
	if err != nil || !ok {
		return out
	}
	members, err := objectMembers(prop[s:e])
	if err != nil {
		return out
	}
	for _, m := range members {
		out[m.key] = prop[s+m.start : s+m.end]
	}
	return out
}
