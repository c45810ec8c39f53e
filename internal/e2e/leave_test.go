package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestLeaveApproval runs the hr module's leave-approval workflow on the built binary
// with its embedded Temporal server: an employee files a request, only their manager
// may decide it, the decision sets the request's status and the employee hears of it;
// a request for an employee without a manager goes to the hr role instead.
func TestLeaveApproval(t *testing.T) {
	serve, admin, httpAddr, _ := serveWithModule(t, "hr")

	const pw = "a long password"
	users := map[string]string{}
	clients := map[string]*apiClient{}
	for email, role := range map[string]string{"mia@example.com": "employee", "eve@example.com": "employee", "harry@example.com": "hr"} {
		var out struct{ ID string }
		admin.expect("POST", "/api/v1/users", map[string]any{"email": email, "password": pw, "roles": []string{role}}, 201, &out)
		users[email] = out.ID
		clients[email] = newClient(t, httpAddr)
		clients[email].login(email, pw)
	}
	mia, eve, harry := clients["mia@example.com"], clients["eve@example.com"], clients["harry@example.com"]

	var dept, miaEmp, eveEmp, loneEmp map[string]any
	admin.expect("POST", "/api/v1/data/department", map[string]any{"name": "Engineering"}, 201, &dept)
	admin.expect("POST", "/api/v1/data/employee", map[string]any{"employee_no": "E1", "first_name": "Mia", "last_name": "Lund",
		"department": idOf(dept), "user_id": users["mia@example.com"]}, 201, &miaEmp)
	admin.expect("POST", "/api/v1/data/employee", map[string]any{"employee_no": "E2", "first_name": "Eve", "last_name": "Berg",
		"department": idOf(dept), "manager": idOf(miaEmp), "user_id": users["eve@example.com"]}, 201, &eveEmp)
	admin.expect("POST", "/api/v1/data/employee", map[string]any{"employee_no": "E3", "first_name": "Leo", "last_name": "Holm"}, 201, &loneEmp)

	// Self-service: Eve sees only her own employee record and files a request.
	if mine := eve.records("employee", ""); len(mine) != 1 || idOf(mine[0]) != idOf(eveEmp) {
		t.Fatalf("eve sees employees %v", mine)
	}
	var req map[string]any
	eve.expect("POST", "/api/v1/data/leave_request", map[string]any{"employee": idOf(eveEmp), "type": "annual",
		"start_date": "2026-12-21", "end_date": "2026-12-24", "days": "4", "reason": "Family visit"}, 201, &req)
	run := fmt.Sprintf("leave_approval:leave_request:%s:create:1", idOf(req))

	// Only the manager may decide; the request is submitted meanwhile.
	task := mia.waitTask(run, "manager_decides")
	eventually(t, "the request submitted", func() bool {
		return eve.one("leave_request", fmt.Sprintf("id == %q", idOf(req)))["status"] == "submitted"
	})
	eve.expect("POST", "/api/v1/tasks/"+task+"/complete", map[string]any{"outcome": "approve"}, 403, nil)
	harry.expect("POST", "/api/v1/tasks/"+task+"/complete", map[string]any{"outcome": "approve"}, 403, nil)
	mia.expect("POST", "/api/v1/tasks/"+task+"/complete", map[string]any{"outcome": "maybe"}, 422, nil)
	mia.expect("POST", "/api/v1/tasks/"+task+"/complete", map[string]any{"outcome": "approve", "data": map[string]any{"note": "Enjoy!"}}, 200, nil)
	r := admin.waitRun(run)
	if r.Status != "completed" || r.Output["decision"] != "approve" || r.Output["decided_by"] != users["mia@example.com"] {
		t.Fatalf("run %+v", r)
	}
	expectFields(t, "approved request", eve.one("leave_request", fmt.Sprintf("id == %q", idOf(req))), map[string]string{"status": "approved"})
	if note := eve.notified("Leave approved: 2026-12-21 to 2026-12-24"); !strings.Contains(note, "Enjoy!") {
		t.Errorf("approval notification %q", note)
	}

	// No manager: the hr role decides, and rejects.
	var lone map[string]any
	harry.expect("POST", "/api/v1/data/leave_request", map[string]any{"employee": idOf(loneEmp), "type": "unpaid", "status": "submitted",
		"start_date": "2027-01-04", "end_date": "2027-01-29", "reason": "Sabbatical"}, 201, &lone)
	loneRun := fmt.Sprintf("leave_approval:leave_request:%s:create:1", idOf(lone))
	hrTask := harry.waitTask(loneRun, "hr_decides")
	mia.expect("POST", "/api/v1/tasks/"+hrTask+"/complete", map[string]any{"outcome": "approve"}, 403, nil)
	harry.expect("POST", "/api/v1/tasks/"+hrTask+"/complete", map[string]any{"outcome": "reject", "data": map[string]any{"note": "Not this quarter."}}, 200, nil)
	if r := admin.waitRun(loneRun); r.Status != "completed" || r.Output["decision"] != "reject" {
		t.Fatalf("hr run %+v", r)
	}
	expectFields(t, "rejected request", harry.one("leave_request", fmt.Sprintf("id == %q", idOf(lone))), map[string]string{"status": "rejected"})
	harry.notified("Leave rejected: 2027-01-04 to 2027-01-29")
	// Eve can't see other people's requests.
	if theirs := eve.records("leave_request", ""); len(theirs) != 1 {
		t.Errorf("eve sees %d leave requests, want her own", len(theirs))
	}
	serve.stop()
}
