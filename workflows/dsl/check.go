package dsl

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/engine/schema"
)

// checker finds what the meta-schema cannot: duplicate step ids, expressions that do
// not parse, durations, and input and form schemas that do not compile.
type checker struct {
	ids      map[string]string // step id → pointer of its first use
	problems []schema.Problem
}

func check(def *Definition) []schema.Problem {
	c := &checker{ids: map[string]string{}}
	if def.Trigger.When != "" {
		c.expr("/trigger/when", def.Trigger.When)
	}
	if def.Trigger.Type == TriggerSchedule {
		c.cron("/trigger/cron", def.Trigger.Cron)
	}
	if len(def.Input) > 0 {
		if _, problems := CompileSchema(def.Input, "mem://tessera/workflows/"+def.Name+"/input.json"); len(problems) > 0 {
			c.add("/input", "schema", "the input schema does not compile: "+problems[0].Message)
		}
	}
	c.steps("/steps", def.Steps)
	return c.problems
}

func (c *checker) add(path, code, message string) {
	c.problems = append(c.problems, schema.Problem{Path: path, Code: code, Message: message})
}

func (c *checker) expr(path, src string) {
	if _, err := query.Parse(src); err != nil {
		c.add(path, "expression", err.Error())
	}
}

func (c *checker) duration(path, s string) {
	if s == "" {
		return
	}
	if _, err := ParseDuration(s); err != nil {
		c.add(path, "duration", err.Error())
	}
}

func (c *checker) cron(path, spec string) {
	fields := strings.Fields(spec)
	if strings.HasPrefix(spec, "@") || len(fields) == 5 || len(fields) == 6 {
		return
	}
	c.add(path, "cron", "a cron expression has 5 fields (minute hour day month weekday), e.g. \"0 8 * * 1-5\"")
}

func (c *checker) steps(base string, steps []*Step) {
	for i, s := range steps {
		c.step(at(base, i), s)
	}
}

func (c *checker) step(p string, s *Step) {
	if first, dup := c.ids[s.ID]; dup {
		c.add(p+"/id", "unique", fmt.Sprintf("step id %q is already used at %s; ids are unique in a definition so $steps.%s is unambiguous", s.ID, first, s.ID))
	} else {
		c.ids[s.ID] = p
	}
	if s.If != "" {
		c.expr(p+"/if", s.If)
	}
	c.duration(p+"/timeout", s.Timeout)
	if s.Retry != nil {
		c.duration(p+"/retry/initialInterval", s.Retry.InitialInterval)
	}
	switch s.Type {
	case TypeQuery:
		if s.Filter != "" {
			c.expr(p+"/filter", s.Filter)
		}
	case TypeCondition:
		c.steps(p+"/then", s.Then)
		c.steps(p+"/else", s.Else)
	case TypeSwitch:
		for i, cs := range s.Cases {
			c.expr(at(p, "cases", i, "when"), cs.When)
			c.steps(at(p, "cases", i, "steps"), cs.Steps)
		}
		c.steps(p+"/default", s.Default)
	case TypeParallel:
		for i, b := range s.Branches {
			c.steps(at(p, "branches", i, "steps"), b.Steps)
		}
	case TypeForeach:
		c.steps(p+"/steps", s.Steps)
	case TypeWait:
		c.duration(p+"/duration", s.Duration)
		if s.Until != "" && !IsReference(s.Until) && !strings.Contains(s.Until, "{{") {
			if _, err := ParseTime(s.Until); err != nil {
				c.add(p+"/until", "format", err.Error())
			}
		}
	case TypeWaitEvent:
		if s.Until != "" {
			c.expr(p+"/until", s.Until)
		}
	case TypeTask:
		c.duration(p+"/due", s.Due)
		if s.Reminder != nil {
			c.duration(p+"/reminder/after", s.Reminder.After)
			c.duration(p+"/reminder/every", s.Reminder.Every)
		}
		if s.Escalation != nil {
			c.duration(p+"/escalation/after", s.Escalation.After)
		}
		if len(s.Form) > 0 {
			if _, problems := CompileSchema(s.Form, "mem://tessera/forms/"+s.ID+".json"); len(problems) > 0 {
				c.add(p+"/form", "schema", "the form does not compile: "+problems[0].Message)
			}
		}
	}
	c.steps(p+"/compensate", s.Compensate)
}

// ParseTime reads a wait's until: an RFC 3339 date-time or a date (midnight UTC).
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date-time (2026-03-01T09:00:00Z) or a date (2026-03-01)", s)
}

// triggerKeys are what $trigger holds in a run a record change started: the change's
// outbox payload. The record's fields are under record (and old), not on $trigger.
var triggerKeys = []string{"entity", "id", "version", "event", "record", "old", "actor"}

var triggerRef = regexp.MustCompile(`\$trigger\.([A-Za-z_][A-Za-z0-9_]*)`)

// checkTriggerRefs finds $trigger.x references anywhere in a record-triggered
// definition whose x is not part of the payload, e.g. $trigger.status for
// $trigger.record.status, which would resolve to nothing at run time.
func checkTriggerRefs(raw []byte) []schema.Problem {
	doc, err := schema.DecodeValue(raw)
	if err != nil {
		return nil
	}
	var problems []schema.Problem
	var walk func(path []string, v any)
	walk = func(path []string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, item := range x {
				walk(append(slices.Clip(path), k), item)
			}
		case []any:
			for i, item := range x {
				walk(append(slices.Clip(path), strconv.Itoa(i)), item)
			}
		case string:
			for _, m := range triggerRef.FindAllStringSubmatch(x, -1) {
				if !slices.Contains(triggerKeys, m[1]) {
					problems = append(problems, schema.Problem{Path: schema.Pointer(path), Code: "reference", Message: fmt.Sprintf(
						"$trigger has no %q: it holds %s; the changed record's fields are $trigger.record.<field>", m[1], strings.Join(triggerKeys, ", "))})
				}
			}
		}
	}
	walk(nil, doc)
	slices.SortFunc(problems, func(a, b schema.Problem) int { return strings.Compare(a.Path, b.Path) })
	return problems
}
