package web

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tessera/tessera/workflows/dsl"
)

// TestAccountingPostsBalancedJournal: issuing an invoice and paying it post balanced
// journal entries with exact amounts, and the trial balance sums to zero.
func TestAccountingPostsBalancedJournal(t *testing.T) {
	b := setup(t)
	b.expect("POST", "/api/v1/modules/accounting/install", nil, 200, nil)
	acc := b.create("account", map[string]any{"name": "ACME"})

	// 3 × 19.99 = 59.97, 10% tax = 6.00, total 65.97; a draft posts nothing.
	inv := b.create("invoice", map[string]any{"account": acc["id"], "invoice_date": "2026-11-02", "lines": []map[string]any{
		{"description": "widget", "quantity": "3", "unit_price": "19.99", "tax_rate": "10"}}})
	if inv["total"] != "65.97" || inv["subtotal"] != "59.97" || inv["tax_total"] != "6.00" || inv["status"] != "draft" {
		t.Fatalf("invoice: %v", inv)
	}
	id := inv["id"].(string)
	if n := len(b.journal()); n != 0 {
		t.Fatalf("a draft invoice posted %d entries", n)
	}
	b.expect("PATCH", "/api/v1/data/invoice/"+id, map[string]any{"status": "issued"}, 200, nil)
	// Saving it again (still issued) does not post twice.
	b.expect("PATCH", "/api/v1/data/invoice/"+id, map[string]any{"due_date": "2026-12-02"}, 200, nil)
	entries := b.journal()
	if len(entries) != 1 {
		t.Fatalf("after issue: %d entries", len(entries))
	}
	checkEntry(t, entries[0], "invoice:"+id, "2026-11-02", [][3]string{
		{"1100", "65.97", "0.00"}, {"4000", "0.00", "59.97"}, {"2200", "0.00", "6.00"}}, b)

	// Two payments: 40.00 then 25.97.
	p1 := b.create("payment", map[string]any{"invoice": id, "amount": "40.00", "paid_on": "2026-11-10", "reference": "P1"})
	var got map[string]any
	b.expect("GET", "/api/v1/data/invoice/"+id, nil, 200, &got)
	if got["status"] != "partially_paid" || got["amount_paid"] != "40.00" {
		t.Fatalf("after first payment: %v", got)
	}
	p2 := b.create("payment", map[string]any{"invoice": id, "amount": "25.97", "paid_on": "2026-11-20", "reference": "P2"})
	b.expect("GET", "/api/v1/data/invoice/"+id, nil, 200, &got)
	if got["status"] != "paid" || got["amount_paid"] != "65.97" {
		t.Fatalf("after second payment: %v", got)
	}
	// Editing a payment does not post it again.
	b.expect("PATCH", "/api/v1/data/payment/"+p1["id"].(string), map[string]any{"method": "card"}, 200, nil)
	entries = b.journal()
	if len(entries) != 3 {
		t.Fatalf("after payments: %d entries", len(entries))
	}
	checkEntry(t, entries[1], "payment:"+p1["id"].(string), "2026-11-10", [][3]string{
		{"1000", "40.00", "0.00"}, {"1100", "0.00", "40.00"}}, b)
	checkEntry(t, entries[2], "payment:"+p2["id"].(string), "2026-11-20", [][3]string{
		{"1000", "25.97", "0.00"}, {"1100", "0.00", "25.97"}}, b)

	// Trial balance: the documented report query.
	var tb struct {
		Items []map[string]any
	}
	b.expect("POST", "/api/v1/reports/query", map[string]any{
		"entity":  "gl_posting",
		"groupBy": []map[string]any{{"field": "account_code"}},
		"measures": []map[string]any{
			{"op": "sum", "field": "debit", "as": "debit"},
			{"op": "sum", "field": "credit", "as": "credit"}},
		"sort": "account_code",
	}, 200, &tb)
	want := map[string][2]string{
		"1000": {"65.97", "0.00"}, "1100": {"65.97", "65.97"}, "2200": {"0.00", "6.00"}, "4000": {"0.00", "59.97"}}
	if len(tb.Items) != len(want) {
		t.Fatalf("trial balance: %v", tb.Items)
	}
	debit, credit := "0.00", "0.00"
	for _, row := range tb.Items {
		code, _ := row["account_code"].(string)
		w, ok := want[code]
		if !ok || row["debit"] != w[0] || row["credit"] != w[1] {
			t.Errorf("trial balance row %v, want %v", row, w)
		}
		debit, credit = addMoney(t, debit, row["debit"]), addMoney(t, credit, row["credit"])
	}
	if debit != credit || debit != "131.94" {
		t.Fatalf("trial balance: debit %s, credit %s", debit, credit)
	}
	// Receivable ends at zero: 65.97 − 65.97.
	if r := tb.Items[1]; r["account_code"] != "1100" || r["debit"] != r["credit"] {
		t.Fatalf("receivable: %v", r)
	}

	// A balance at a date: only the first payment by 2026-11-10.
	b.expect("POST", "/api/v1/reports/query", map[string]any{
		"entity": "gl_posting", "filter": `entry_date <= "2026-11-10" && account_code == "1000"`,
		"groupBy":  []map[string]any{{"field": "account_code"}},
		"measures": []map[string]any{{"op": "sum", "field": "debit", "as": "debit"}},
	}, 200, &tb)
	if len(tb.Items) != 1 || tb.Items[0]["debit"] != "40.00" {
		t.Fatalf("cash at 2026-11-10: %v", tb.Items)
	}

	// A posted entry is final, and an unbalanced one is refused.
	var refused apiError
	je := entries[0]["id"].(string)
	b.expect("PATCH", "/api/v1/data/journal_entry/"+je, map[string]any{"status": "draft"}, 422, &refused)
	lines := entries[0]["lines"].([]any)
	l0 := lines[0].(map[string]any)
	bad := map[string]any{"entry_date": "2026-11-30", "status": "posted", "lines": []map[string]any{
		{"gl_account": l0["gl_account"], "debit": "10.00", "credit": "0.00"},
		{"gl_account": l0["gl_account"], "debit": "0.00", "credit": "9.99"}}}
	b.expect("POST", "/api/v1/data/journal_entry", bad, 422, &refused)
	if !refused.hasPath("/lines") {
		t.Fatalf("unbalanced entry: %+v", refused)
	}
}

// journal lists journal entries, oldest first.
func (b *testBundle) journal() []map[string]any {
	b.t.Helper()
	var out page
	b.expect("GET", "/api/v1/data/journal_entry?sort=number&limit=100", nil, 200, &out)
	return out.Items
}

// checkEntry asserts an entry's source, date, status, number and lines (account code,
// debit, credit) and that it balances.
func checkEntry(t *testing.T, e map[string]any, source, date string, want [][3]string, b *testBundle) {
	t.Helper()
	if e["source"] != source || e["entry_date"] != date || e["status"] != "posted" || !strings.HasPrefix(e["number"].(string), "JE-") {
		t.Fatalf("entry: %v", e)
	}
	lines, _ := e["lines"].([]any)
	if len(lines) != len(want) {
		t.Fatalf("entry %s lines: %v", source, lines)
	}
	debit, credit := "0.00", "0.00"
	for i, raw := range lines {
		l := raw.(map[string]any)
		var a map[string]any
		b.expect("GET", "/api/v1/data/gl_account/"+l["gl_account"].(string), nil, 200, &a)
		if got := [3]string{a["code"].(string), str(l["debit"]), str(l["credit"])}; got != want[i] {
			t.Errorf("entry %s line %d: %v, want %v", source, i, got, want[i])
		}
		debit, credit = addMoney(t, debit, l["debit"]), addMoney(t, credit, l["credit"])
	}
	if debit != credit {
		t.Errorf("entry %s does not balance: %s / %s", source, debit, credit)
	}
}

func str(v any) string { s, _ := v.(string); return s }

// addMoney adds two exact 2-place decimal strings without floats.
func addMoney(t *testing.T, a string, b any) string {
	t.Helper()
	cents := func(s string) int64 {
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		whole, frac, _ := strings.Cut(s, ".")
		frac = (frac + "00")[:2]
		var n int64
		for _, c := range whole + frac {
			if c < '0' || c > '9' {
				t.Fatalf("not a money amount: %q", s)
			}
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n
	}
	n := cents(a) + cents(str(b))
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	return fmt.Sprintf("%s%d.%02d", sign, n/100, n%100)
}

// TestLeaveApprovalWorkflowDefinition: the hr module's leave approval workflow passes
// the workflow DSL's validation (the run itself needs Temporal: not in this harness),
// and hr installs.
func TestLeaveApprovalWorkflowDefinition(t *testing.T) {
	raw, err := os.ReadFile("../modules/hr/workflows/leave_approval.json")
	if err != nil {
		t.Fatal(err)
	}
	def, err := dsl.Parse(raw)
	if err != nil {
		t.Fatalf("leave_approval: %v", err)
	}
	if def.Trigger.Type != "record" || def.Trigger.Entity != "leave_request" || !def.Trigger.Fires("leave_request", "create") {
		t.Fatalf("trigger: %+v", def.Trigger)
	}
	b := setup(t)
	b.expect("POST", "/api/v1/modules/hr/install", nil, 200, nil)
	emp := b.create("employee", map[string]any{"employee_no": "E-1", "first_name": "Ada", "last_name": "Lovelace"})
	b.create("leave_request", map[string]any{"employee": emp["id"], "start_date": "2026-12-01", "end_date": "2026-12-03"})
}
