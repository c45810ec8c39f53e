package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/schema"
)

// startRecorder stands in for Temporal where the service starts runs: it keeps what
// would have been started, and the test runs it in the test environment.
type startRecorder struct {
	client.Client
	starts []recordedStart
}

type recordedStart struct {
	id string
	in RunInput
}

// ScheduleClient has no schedules: saving a definition removes none.
func (c *startRecorder) ScheduleClient() client.ScheduleClient { return noSchedules{} }

type noSchedules struct{ client.ScheduleClient }

func (noSchedules) GetHandle(context.Context, string) client.ScheduleHandle { return noSchedule{} }

type noSchedule struct{ client.ScheduleHandle }

func (noSchedule) Delete(context.Context) error { return serviceerror.NewNotFound("no schedule") }

func (c *startRecorder) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	c.starts = append(c.starts, recordedStart{id: opts.ID, in: args[0].(RunInput)})
	return nil, nil
}

// runAsSetup adds to the bundle: a role that may create deals, dave who may only read
// and update them, and a service over a start recorder.
func runAsSetup(t *testing.T) (*bundle, *Service, *startRecorder, auth.User) {
	b := setup(t)
	ctx := context.Background()
	for _, r := range []auth.Role{
		{Name: "deal_creator", Entities: map[string]auth.EntityGrant{"deal": {Create: true, Read: true, Update: true}}},
		{Name: "deal_editor", Entities: map[string]auth.EntityGrant{"deal": {Read: true, Update: true}}},
		{Name: "deal_reader", Entities: map[string]auth.EntityGrant{"deal": {Read: true}}},
	} {
		if err := b.users.PutRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	dave := b.user("dave@example.com", "deal_editor")
	rec := &startRecorder{}
	return b, &Service{Pool: b.pool, Engine: b.eng, Temporal: rec, Log: b.acts.Log}, rec, dave
}

// execute runs a recorded start to its end.
func (b *bundle) execute(s recordedStart) (any, error) {
	b.t.Helper()
	return b.runInput(s.id, s.in)
}

// followUp creates a deal when a deal is won; with runAs it acts as its own identity.
func followUp(name, runAs string) string {
	return `{"name": "` + name + `", "trigger": {"type": "record", "entity": "deal", "on": ["update"], "when": "stage == \"won\""},` + runAs + `
	  "output": {"id": "$steps.next.record.id", "startedBy": "$run.actor", "as": "$run.as", "changedBy": "$trigger.actor"},
	  "steps": [{"id": "next", "type": "create", "entity": "deal", "data": {"name": "Follow-up of {{ $trigger.record.name }}"}}]}`
}

// TestRunAsRecordTrigger: dave, who may update deals but not create them, wins a deal.
// The runAs workflow it triggers creates a follow-up deal as "Workflow follow_up"; the
// same definition without runAs acts as dave and is refused.
func TestRunAsRecordTrigger(t *testing.T) {
	b, svc, rec, dave := runAsSetup(t)
	ctx := context.Background()
	admin := engine.ActorFor(b.admin)
	for name, runAs := range map[string]string{"follow_up": ` "runAs": {"roles": ["deal_creator"]},`, "follow_up_plain": ""} {
		if _, _, err := svc.PutDefinition(ctx, admin, name, []byte(followUp(name, runAs))); err != nil {
			t.Fatalf("save %s: %v", name, err)
		}
	}
	service := ServiceUserID("follow_up")
	var email, uname string
	var roles []string
	var isAdmin, isService bool
	if err := b.pool.QueryRow(ctx, `SELECT email, name, roles, is_admin, service FROM tessera.users WHERE id = $1`, service).
		Scan(&email, &uname, &roles, &isAdmin, &isService); err != nil {
		t.Fatalf("service user: %v", err)
	}
	if email != "workflow+follow_up@service.local" || uname != "Workflow follow_up" || strings.Join(roles, ",") != "deal_creator" || isAdmin || !isService {
		t.Fatalf("service user %s %q %v admin=%v service=%v", email, uname, roles, isAdmin, isService)
	}

	deal, err := b.eng.Create(ctx, admin, "deal", []byte(`{"name": "Acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	dealID := mustUUID(jsonObject(deal)["id"])
	if _, err := b.eng.Create(ctx, engine.ActorFor(dave), "deal", []byte(`{"name": "Dave's own"}`)); err == nil {
		t.Fatal("dave created a deal: the test needs a user without create rights")
	}
	if _, err := b.eng.Update(ctx, engine.ActorFor(dave), "deal", dealID, []byte(`{"stage": "won"}`), nil); err != nil {
		t.Fatal(err)
	}
	d := &Dispatcher{Pool: b.pool, Engine: b.eng, Temporal: rec, Log: b.acts.Log}
	if _, err := d.DispatchOnce(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if len(rec.starts) != 2 {
		t.Fatalf("%d runs started, want 2", len(rec.starts))
	}
	for _, s := range rec.starts {
		var actor, startedBy *uuid.UUID
		if err := b.pool.QueryRow(ctx, `SELECT actor, started_by FROM tessera.workflow_runs WHERE id = $1`, s.id).Scan(&actor, &startedBy); err != nil {
			t.Fatalf("run row %s: %v", s.id, err)
		}
		out, err := b.execute(s)
		switch s.in.Workflow {
		case "follow_up":
			if err != nil {
				t.Fatalf("runAs run failed: %v", err)
			}
			if *actor != service || *startedBy != dave.ID || s.in.Actor != service.String() || s.in.StartedBy != dave.ID.String() {
				t.Fatalf("runAs run acts as %v started by %v (input %+v)", actor, startedBy, s.in)
			}
			res := out.(map[string]any)
			if res["startedBy"] != dave.ID.String() || res["changedBy"] != dave.ID.String() || res["as"] != service.String() {
				t.Fatalf("output %v", res)
			}
			var createdBy, updatedBy uuid.UUID
			if err := b.pool.QueryRow(ctx, `SELECT created_by, updated_by FROM data.deal WHERE id = $1`, res["id"]).Scan(&createdBy, &updatedBy); err != nil {
				t.Fatal(err)
			}
			if createdBy != service || updatedBy != service {
				t.Fatalf("follow-up written by %s/%s, want the service user %s", createdBy, updatedBy, service)
			}
			if n := b.count(`SELECT count(*) FROM tessera.record_history WHERE record_id = $1 AND changed_by = $2`, res["id"], service); n != 1 {
				t.Fatalf("%d history rows by the service user", n)
			}
			if row := b.runRow(s.id); row.Status != StatusCompleted {
				t.Fatalf("run row %+v", row)
			}
		case "follow_up_plain":
			if *actor != dave.ID || *startedBy != dave.ID {
				t.Fatalf("plain run acts as %v started by %v", actor, startedBy)
			}
			if err == nil || !strings.Contains(err.Error(), "your roles do not allow create on deal") {
				t.Fatalf("plain run: err %v, want forbidden", err)
			}
			if row := b.runRow(s.id); row.Status != StatusFailed || row.Error["step"] != "next" {
				t.Fatalf("plain run row %+v", row)
			}
		}
	}
	if n := b.count(`SELECT count(*) FROM data.deal WHERE name = 'Follow-up of Acme'`); n != 1 {
		t.Fatalf("%d follow-ups, want 1", n)
	}

	// An administrator who disables the identity stops its runs, as for any user.
	if _, err := b.pool.Exec(ctx, `UPDATE tessera.users SET disabled_at = now() WHERE id = $1`, service); err != nil {
		t.Fatal(err)
	}
	again := rec.starts[0]
	if again.in.Workflow != "follow_up" {
		again = rec.starts[1]
	}
	again.id += ":again"
	if _, err := b.execute(again); err == nil || !strings.Contains(err.Error(), "disabled or gone") {
		t.Fatalf("run as a disabled identity: %v", err)
	}
}

// TestRunAsStart: bob, who has no rights on deals, starts a manual runAs workflow; it
// creates a deal as its identity, and bob sees the run he started.
func TestRunAsStart(t *testing.T) {
	b, svc, rec, _ := runAsSetup(t)
	ctx := context.Background()
	def := `{"name": "open_deal", "trigger": {"type": "manual"}, "runAs": {"roles": ["deal_creator"]},
	  "input": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
	  "output": {"id": "$steps.make.record.id", "startedBy": "$run.actor"},
	  "steps": [{"id": "make", "type": "create", "entity": "deal", "data": {"name": "$input.name"}}]}`
	if _, _, err := svc.PutDefinition(ctx, engine.ActorFor(b.admin), "open_deal", []byte(def)); err != nil {
		t.Fatal(err)
	}
	bob := engine.ActorFor(b.bob)
	run, err := svc.StartRun(ctx, bob, "open_deal", map[string]any{"name": "Globex"})
	if err != nil {
		t.Fatalf("bob starts: %v", err)
	}
	service := ServiceUserID("open_deal")
	if run.Actor == nil || *run.Actor != service || run.StartedBy == nil || *run.StartedBy != b.bob.ID {
		t.Fatalf("run %+v", run)
	}
	out, err := b.execute(rec.starts[0])
	if err != nil {
		t.Fatal(err)
	}
	res := out.(map[string]any)
	if res["startedBy"] != b.bob.ID.String() {
		t.Fatalf("output %v", res)
	}
	if n := b.count(`SELECT count(*) FROM data.deal WHERE id = $1 AND created_by = $2`, res["id"], service); n != 1 {
		t.Fatal("the deal was not created by the service user")
	}
	// Bob still sees and manages the run he started.
	page, err := svc.ListRuns(ctx, bob, RunFilter{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("bob's runs: %v %v", page, err)
	}
	if _, err := svc.runFor(ctx, bob, run.ID, true); err != nil {
		t.Fatalf("bob may not manage his run: %v", err)
	}
	if _, err := svc.runFor(ctx, engine.ActorFor(b.carol), run.ID, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("carol sees bob's run: %v", err)
	}
	// A subworkflow step starting it acts as its identity too.
	load, err := b.acts.LoadWorkflow(ctx, LoadInput{Workflow: "open_deal"})
	if err != nil || load.Actor != service.String() {
		t.Fatalf("load %+v %v", load, err)
	}
}

// TestRunAsSave: runAs needs an administrator and roles that exist; saving again keeps
// the identity's roles equal to the declared ones.
func TestRunAsSave(t *testing.T) {
	b, svc, _, _ := runAsSetup(t)
	ctx := context.Background()
	def := func(roles string) []byte {
		return []byte(`{"name": "delegated", "trigger": {"type": "manual"}, "runAs": {"roles": [` + roles + `]},
		  "steps": [{"id": "look", "type": "query", "entity": "deal"}]}`)
	}
	admin := engine.ActorFor(b.admin)

	_, _, err := svc.PutDefinition(ctx, admin, "delegated", def(`"deal_reader", "no_such_role", "deal_creator", "ghost"`))
	var defErr *schema.DefinitionError
	if !errors.As(err, &defErr) || len(defErr.Problems) != 2 || defErr.Problems[0].Path != "/runAs/roles/1" || defErr.Problems[1].Path != "/runAs/roles/3" {
		t.Fatalf("unknown roles: %v", err)
	}
	if n := b.count(`SELECT count(*) FROM tessera.workflows WHERE name = 'delegated'`) + b.count(`SELECT count(*) FROM tessera.users WHERE service`); n != 0 {
		t.Fatal("a refused definition left rows behind")
	}

	var forbidden *Forbidden
	if _, _, err := svc.PutDefinition(ctx, engine.ActorFor(b.carol), "delegated", def(`"deal_reader"`)); !errors.As(err, &forbidden) {
		t.Fatalf("a non-administrator saved runAs: %v", err)
	}

	for i, roles := range []string{`"deal_reader", "deal_creator"`, `"deal_reader"`, `"deal_reader"`} {
		if _, _, err := svc.PutDefinition(ctx, admin, "delegated", def(roles)); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	u, err := b.users.UserByID(ctx, ServiceUserID("delegated"))
	if err != nil {
		t.Fatal(err)
	}
	if !u.Service || u.IsAdmin || strings.Join(u.Roles, ",") != "deal_reader" || len(u.Policy.Roles) != 1 {
		t.Fatalf("service user after saves: %+v", u)
	}
	if _, _, err := b.users.Login(ctx, u.Email, "whatever password", "test"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("the service user signed in: %v", err)
	}
}
