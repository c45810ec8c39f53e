package web

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tessera/tessera/engine/module"
)

// wantRecordFields checks string fields of a record exactly ("" for absent).
func (b *testBundle) wantRecordFields(entity string, id any, want map[string]string) {
	b.t.Helper()
	rec := b.record(entity, id)
	for k, v := range want {
		got, _ := rec[k].(string)
		if got != v {
			b.t.Fatalf("%s %v: %s is %q, want %q (record %v)", entity, id, k, got, v, rec)
		}
	}
}

// TestProjectBudgetVsActual: timesheets cost hours × the employee's hourly cost at
// booking, and project and task actuals follow them exactly: create adds, edits and
// moves shift the difference, delete subtracts, concurrent bookings all count; refused
// entries change nothing; budget remaining and used percent are exact.
func TestProjectBudgetVsActual(t *testing.T) {
	b := setup(t)
	var res module.Result
	b.expect("POST", "/api/v1/modules/projects/install", nil, 200, &res)
	installed := strings.Join(res.Installed, ",")
	if !strings.Contains(installed, "crm@") || !strings.Contains(installed, "hr@") || !strings.HasSuffix(installed, "projects@1.1.0") {
		t.Fatalf("installed: %v", res.Installed)
	}
	var e apiError
	b.expect("POST", "/api/v1/data/employee", map[string]any{"employee_no": "E0", "last_name": "Minus", "hourly_cost": "-1.00"}, 422, &e)
	if !e.hasPath("/hourly_cost") {
		t.Fatalf("negative hourly cost: %+v", e)
	}
	ann := b.create("employee", map[string]any{"employee_no": "E1", "last_name": "Ann", "hourly_cost": "80.10"})["id"]
	bob := b.create("employee", map[string]any{"employee_no": "E2", "last_name": "Bob", "hourly_cost": "95.00"})["id"]
	cal := b.create("employee", map[string]any{"employee_no": "E3", "last_name": "Cal"})["id"] // no hourly cost

	// A new project starts at zero; actuals can't be brought in.
	b.expect("POST", "/api/v1/data/project", map[string]any{"name": "Forged", "actual_cost": "500.00"}, 422, &e)
	if !e.hasPath("/actual_cost") {
		t.Fatalf("forged actual cost: %+v", e)
	}
	web := b.create("project", map[string]any{"code": "WEB", "name": "Website", "status": "active", "budget": "1000.00"})["id"]
	app := b.create("project", map[string]any{"code": "APP", "name": "App", "status": "active", "budget": "3000.00"})["id"]
	done := b.create("project", map[string]any{"code": "OLD", "name": "Old site", "status": "done", "budget": "10.00"})["id"]
	b.wantRecordFields("project", web, map[string]string{"actual_hours": "0", "actual_cost": "0.00", "budget_remaining": "1000.00", "budget_used_percent": "0.00"})
	design := b.create("task", map[string]any{"project": web, "title": "Design", "estimate_hours": "10"})["id"]
	build := b.create("task", map[string]any{"project": app, "title": "Build", "estimate_hours": "40"})["id"]

	book := func(fields map[string]any) map[string]any {
		rec := map[string]any{"employee": ann, "project": web, "work_date": "2026-11-02", "hours": "1"}
		for k, v := range fields {
			rec[k] = v
		}
		return rec
	}
	// 1.25 h × 80.10 = 100.125 → 100.13; 7.5 h × 95.00 = 712.50.
	ts1 := b.create("timesheet", book(map[string]any{"task": design, "hours": "1.25"}))
	if ts1["cost"] != "100.13" || ts1["hourly_cost"] != "80.10" {
		t.Fatalf("timesheet cost: %v", ts1)
	}
	ts2 := b.create("timesheet", book(map[string]any{"employee": bob, "hours": "7.5"}))
	if ts2["cost"] != "712.50" {
		t.Fatalf("timesheet cost: %v", ts2)
	}
	// 812.63 of 1000.00: 187.37 left, 81.263% → 81.26.
	b.wantRecordFields("project", web, map[string]string{"actual_hours": "8.75", "actual_cost": "812.63", "budget_remaining": "187.37", "budget_used_percent": "81.26"})
	b.wantRecordFields("task", design, map[string]string{"actual_hours": "1.25", "remaining_hours": "8.75"})
	// Without an hourly cost the hours count at no cost.
	ts3 := b.create("timesheet", book(map[string]any{"employee": cal, "hours": "2"}))
	if ts3["cost"] != "0.00" || ts3["hourly_cost"] != nil {
		t.Fatalf("timesheet without a rate: %v", ts3)
	}
	b.wantRecordFields("project", web, map[string]string{"actual_hours": "10.75", "actual_cost": "812.63"})

	// Refused entries change nothing.
	for _, c := range []struct {
		fields map[string]any
		path   string
	}{
		{map[string]any{"hours": "0"}, "/hours"},
		{map[string]any{"hours": "-1"}, "/hours"},
		{map[string]any{"hours": "24.01"}, "/hours"},
		{map[string]any{"project": done}, "/project"},
		{map[string]any{"task": build}, "/task"},
	} {
		b.expect("POST", "/api/v1/data/timesheet", book(c.fields), 422, &e)
		if !e.hasPath(c.path) {
			t.Fatalf("%v: %+v", c.fields, e)
		}
	}
	b.create("timesheet", book(map[string]any{"hours": "24", "project": app})) // 24 h is the most: 1922.40
	b.wantRecordFields("project", web, map[string]string{"actual_hours": "10.75", "actual_cost": "812.63"})
	b.wantRecordFields("project", app, map[string]string{"actual_hours": "24", "actual_cost": "1922.40"})
	b.wantRecordFields("project", done, map[string]string{"actual_hours": "0", "actual_cost": "0.00"})

	// A later rate change rewrites no history; editing the hours keeps the booked rate:
	// 2 × 80.10 = 160.20, +60.07 on the project.
	b.expect("PATCH", "/api/v1/data/employee/"+ann.(string), map[string]any{"hourly_cost": "90.00"}, 200, nil)
	b.wantRecordFields("timesheet", ts1["id"], map[string]string{"cost": "100.13", "hourly_cost": "80.10"})
	b.expect("PATCH", "/api/v1/data/timesheet/"+ts1["id"].(string), map[string]any{"hours": "2"}, 200, nil)
	b.wantRecordFields("timesheet", ts1["id"], map[string]string{"cost": "160.20", "hourly_cost": "80.10"})
	b.wantRecordFields("project", web, map[string]string{"actual_hours": "11.5", "actual_cost": "872.70"})
	b.wantRecordFields("task", design, map[string]string{"actual_hours": "2", "remaining_hours": "8"})

	// Moving a timesheet to another project (and task) moves its hours and cost.
	b.expect("PATCH", "/api/v1/data/timesheet/"+ts2["id"].(string), map[string]any{"project": app, "task": build}, 200, nil)
	b.wantRecordFields("project", web, map[string]string{"actual_hours": "4", "actual_cost": "160.20", "budget_remaining": "839.80", "budget_used_percent": "16.02"})
	b.wantRecordFields("project", app, map[string]string{"actual_hours": "31.5", "actual_cost": "2634.90"})
	b.wantRecordFields("task", build, map[string]string{"actual_hours": "7.5", "remaining_hours": "32.5"})
	// Another employee is priced at their current rate: 7.5 × 90.00 = 675.00.
	b.expect("PATCH", "/api/v1/data/timesheet/"+ts2["id"].(string), map[string]any{"employee": ann}, 200, nil)
	b.wantRecordFields("timesheet", ts2["id"], map[string]string{"cost": "675.00", "hourly_cost": "90.00"})
	b.wantRecordFields("project", app, map[string]string{"actual_hours": "31.5", "actual_cost": "2597.40"})
	// Refused moves change nothing: to a done project, to a task of another project.
	b.expect("PATCH", "/api/v1/data/timesheet/"+ts2["id"].(string), map[string]any{"project": done, "task": nil}, 422, &e)
	if !e.hasPath("/project") {
		t.Fatalf("move to a done project: %+v", e)
	}
	b.expect("PATCH", "/api/v1/data/timesheet/"+ts2["id"].(string), map[string]any{"project": web}, 422, &e)
	if !e.hasPath("/task") {
		t.Fatalf("task of another project: %+v", e)
	}
	b.expect("PATCH", "/api/v1/data/timesheet/"+ts2["id"].(string), map[string]any{"hours": "25"}, 422, &e)
	if !e.hasPath("/hours") {
		t.Fatalf("25 hours: %+v", e)
	}
	b.wantRecordFields("project", app, map[string]string{"actual_hours": "31.5", "actual_cost": "2597.40"})
	b.wantRecordFields("project", done, map[string]string{"actual_hours": "0", "actual_cost": "0.00"})
	b.wantRecordFields("task", build, map[string]string{"actual_hours": "7.5"})
	// A task with booked hours stays in its project.
	b.expect("PATCH", "/api/v1/data/task/"+build.(string), map[string]any{"project": web}, 422, &e)
	if !e.hasPath("/project") {
		t.Fatalf("task move: %+v", e)
	}

	// Deleting subtracts.
	b.expect("DELETE", "/api/v1/data/timesheet/"+ts1["id"].(string), nil, 204, nil)
	b.wantRecordFields("project", web, map[string]string{"actual_hours": "2", "actual_cost": "0.00", "budget_remaining": "1000.00", "budget_used_percent": "0.00"})
	b.wantRecordFields("task", design, map[string]string{"actual_hours": "0", "remaining_hours": "10"})
	// A closed project's booked time stays: no delete, no edit of its hours.
	b.expect("PATCH", "/api/v1/data/project/"+web.(string), map[string]any{"status": "done"}, 200, nil)
	b.expect("DELETE", "/api/v1/data/timesheet/"+ts3["id"].(string), nil, 422, &e)
	if !e.hasPath("/project") {
		t.Fatalf("delete on a done project: %+v", e)
	}
	b.expect("PATCH", "/api/v1/data/timesheet/"+ts3["id"].(string), map[string]any{"hours": "3"}, 422, nil)
	b.expect("PATCH", "/api/v1/data/timesheet/"+ts3["id"].(string), map[string]any{"note": "kick-off"}, 200, nil)
	b.wantRecordFields("project", web, map[string]string{"actual_hours": "2", "actual_cost": "0.00"})
	b.expect("PATCH", "/api/v1/data/project/"+web.(string), map[string]any{"status": "active", "budget": "0"}, 200, nil)
	b.wantRecordFields("project", web, map[string]string{"budget_remaining": "0.00", "budget_used_percent": ""})

	// Ten concurrent bookings on one project and task all count: 10 × 0.75 h × 90.00.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.request("POST", "/api/v1/data/timesheet", book(map[string]any{"project": app, "task": build, "hours": "0.75", "note": fmt.Sprint(i)}))
			if r.Status != 201 {
				t.Errorf("booking %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	// 31.5 + 7.5 h; 2597.40 + 675.00; 3272.40 of 3000.00 is 109.08%.
	b.wantRecordFields("project", app, map[string]string{"actual_hours": "39", "actual_cost": "3272.40", "budget_remaining": "-272.40", "budget_used_percent": "109.08"})
	b.wantRecordFields("task", build, map[string]string{"actual_hours": "15", "remaining_hours": "25"})
}

// TestProjectMemberBooksOwnTime: a project member reads projects and tasks, books and
// edits their own timesheets (the hook's adjustments run with their rights), can't
// book for someone else, see others' timesheets or change a project's plan.
func TestProjectMemberBooksOwnTime(t *testing.T) {
	b := setup(t)
	b.expect("POST", "/api/v1/modules/projects/install", nil, 200, nil)
	member := b.signedIn("member@example.com", "project_member")
	me := b.create("employee", map[string]any{"employee_no": "E1", "last_name": "Member", "hourly_cost": "50.00", "user_id": b.userID("member@example.com")})["id"]
	other := b.create("employee", map[string]any{"employee_no": "E2", "last_name": "Other", "hourly_cost": "70.00"})["id"]
	p := b.create("project", map[string]any{"code": "P", "name": "P", "status": "active", "budget": "200.00"})["id"]
	task := b.create("task", map[string]any{"project": p, "title": "Do", "estimate_hours": "4"})["id"]
	b.create("timesheet", map[string]any{"employee": other, "project": p, "work_date": "2026-11-02", "hours": "1"}) // 70.00, by admin

	ts := member.create("timesheet", map[string]any{"employee": me, "project": p, "task": task, "work_date": "2026-11-02", "hours": "1.5"})
	if ts["cost"] != "75.00" {
		t.Fatalf("member's timesheet: %v", ts)
	}
	member.expect("PATCH", "/api/v1/data/timesheet/"+ts["id"].(string), map[string]any{"hours": "2"}, 200, nil)
	member.wantRecordFields("project", p, map[string]string{"actual_hours": "3", "actual_cost": "170.00", "budget_remaining": "30.00", "budget_used_percent": "85.00"})
	member.wantRecordFields("task", task, map[string]string{"actual_hours": "2", "remaining_hours": "2"})

	var e apiError
	member.expect("POST", "/api/v1/data/timesheet", map[string]any{"employee": other, "project": p, "work_date": "2026-11-02", "hours": "1"}, 422, &e)
	if !e.hasPath("/employee") {
		t.Fatalf("booking for another: %+v", e)
	}
	var list page
	member.expect("GET", "/api/v1/data/timesheet", nil, 200, &list)
	if len(list.Items) != 1 {
		t.Fatalf("member sees %d timesheets", len(list.Items))
	}
	member.expect("PATCH", "/api/v1/data/project/"+p.(string), map[string]any{"budget": "1000.00"}, 403, nil)
	member.expect("DELETE", "/api/v1/data/timesheet/"+ts["id"].(string), nil, 403, nil)
	b.wantRecordFields("project", p, map[string]string{"actual_hours": "3", "actual_cost": "170.00", "budget": "200.00"})
}
