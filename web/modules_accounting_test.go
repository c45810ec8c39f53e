package web

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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
	rows := trialBalance(t, b, map[string][2]string{
		"1000": {"65.97", "0.00"}, "1100": {"65.97", "65.97"}, "2200": {"0.00", "6.00"}, "4000": {"0.00", "59.97"}}, "131.94")
	// Receivable ends at zero: 65.97 − 65.97.
	if r := rows[1]; r["account_code"] != "1100" || r["debit"] != r["credit"] {
		t.Fatalf("receivable: %v", r)
	}

	// A balance at a date: only the first payment by 2026-11-10.
	var tb page
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

// TestAccountingCancelReversesInvoice: cancelling an issued invoice posts one reversing
// entry (the original's lines, debit and credit swapped, exact amounts) with its ledger
// rows, once; an invoice with payments cannot be cancelled, a cancelled one cannot be
// reopened, and a draft cancelled posts nothing.
func TestAccountingCancelReversesInvoice(t *testing.T) {
	b := setup(t)
	b.expect("POST", "/api/v1/modules/accounting/install", nil, 200, nil)
	acc := b.create("account", map[string]any{"name": "ACME"})

	// 3 × 19.99 − 10% = 53.97, 19% tax = 10.25, total 64.22.
	inv := b.create("invoice", map[string]any{"account": acc["id"], "invoice_date": "2026-01-15", "lines": []map[string]any{
		{"description": "widget", "quantity": "3", "unit_price": "19.99", "discount_percent": "10", "tax_rate": "19"}}})
	if inv["total"] != "64.22" || inv["tax_total"] != "10.25" {
		t.Fatalf("invoice: %v", inv)
	}
	id := inv["id"].(string)
	b.expect("PATCH", "/api/v1/data/invoice/"+id, map[string]any{"status": "issued"}, 200, nil)
	entries := b.journal()
	if len(entries) != 1 {
		t.Fatalf("after issue: %d entries", len(entries))
	}
	checkEntry(t, entries[0], "invoice:"+id, "2026-01-15", [][3]string{
		{"1100", "64.22", "0.00"}, {"4000", "0.00", "53.97"}, {"2200", "0.00", "10.25"}}, b)

	// A cancellation the rest of the save refuses posts nothing: one transaction.
	var refused apiError
	b.expect("PATCH", "/api/v1/data/invoice/"+id, map[string]any{"status": "cancelled", "currency": "euro"}, 422, &refused)
	if !refused.hasPath("/currency") {
		t.Fatalf("bad currency: %+v", refused)
	}
	if n := len(b.journal()); n != 1 {
		t.Fatalf("a refused cancellation posted: %d entries", n)
	}

	// Cancelled: one reversing entry, dated the cancellation day.
	before := time.Now().UTC().Format("2006-01-02")
	var got map[string]any
	b.expect("PATCH", "/api/v1/data/invoice/"+id, map[string]any{"status": "cancelled"}, 200, &got)
	after := time.Now().UTC().Format("2006-01-02")
	if got["status"] != "cancelled" {
		t.Fatalf("cancelled invoice: %v", got)
	}
	entries = b.journal()
	if len(entries) != 2 {
		t.Fatalf("after cancel: %d entries", len(entries))
	}
	if entries[0]["entry_date"] != "2026-01-15" || len(entries[0]["lines"].([]any)) != 3 {
		t.Fatalf("the original entry changed: %v", entries[0])
	}
	date := before
	if entries[1]["entry_date"] == after {
		date = after
	}
	reversal := [][3]string{{"1100", "0.00", "64.22"}, {"4000", "53.97", "0.00"}, {"2200", "10.25", "0.00"}}
	checkEntry(t, entries[1], "invoice-cancel:"+id, date, reversal, b)
	if memo, _ := entries[1]["memo"].(string); !strings.Contains(memo, inv["number"].(string)) {
		t.Errorf("reversal memo %q does not name the invoice", memo)
	}

	// Saving the cancelled invoice again, or cancelling it again, posts nothing.
	b.expect("PATCH", "/api/v1/data/invoice/"+id, map[string]any{"due_date": "2026-02-15"}, 200, nil)
	b.expect("PATCH", "/api/v1/data/invoice/"+id, map[string]any{"status": "cancelled"}, 200, nil)
	if n := len(b.journal()); n != 2 {
		t.Fatalf("after saving the cancelled invoice again: %d entries", n)
	}
	// It cannot be reopened.
	refused = apiError{}
	b.expect("PATCH", "/api/v1/data/invoice/"+id, map[string]any{"status": "issued"}, 422, &refused)
	if !refused.hasPath("/status") {
		t.Fatalf("reopened: %+v", refused)
	}

	// The reversal's ledger rows, written once each.
	var postings page
	b.expect("GET", "/api/v1/data/gl_posting?limit=100&filter="+urlQuery(fmt.Sprintf("journal_entry == %q", entries[1]["id"])), nil, 200, &postings)
	if len(postings.Items) != 3 {
		t.Fatalf("reversal postings: %v", postings.Items)
	}
	for _, p := range postings.Items {
		if p["entry_date"] != date {
			t.Errorf("reversal posting %v", p)
		}
	}
	// The invoice's receivable is back to zero, and every account with it.
	tb := trialBalance(t, b, map[string][2]string{
		"1100": {"64.22", "64.22"}, "2200": {"10.25", "10.25"}, "4000": {"53.97", "53.97"}}, "128.44")
	for _, row := range tb {
		if addMoney(t, str(row["debit"]), "-"+str(row["credit"])) != "0.00" {
			t.Errorf("account %v not back to zero", row)
		}
	}

	// An invoice with a payment applied cannot be cancelled: nothing is posted.
	paid := b.create("invoice", map[string]any{"account": acc["id"], "invoice_date": "2026-03-01", "status": "issued", "lines": []map[string]any{
		{"quantity": "1", "unit_price": "100.00"}}})
	paidID := paid["id"].(string)
	b.create("payment", map[string]any{"invoice": paidID, "amount": "30.00", "paid_on": "2026-03-05"})
	b.expect("GET", "/api/v1/data/invoice/"+paidID, nil, 200, &got)
	if got["status"] != "partially_paid" || got["amount_paid"] != "30.00" {
		t.Fatalf("paid invoice: %v", got)
	}
	if n := len(b.journal()); n != 4 {
		t.Fatalf("after the second invoice and its payment: %d entries", n)
	}
	refused = apiError{}
	b.expect("PATCH", "/api/v1/data/invoice/"+paidID, map[string]any{"status": "cancelled"}, 422, &refused)
	if !refused.hasPath("/status") || !strings.Contains(fmt.Sprint(refused.Error.Details), "credit note") {
		t.Fatalf("cancelling a paid invoice: %+v", refused)
	}
	b.expect("GET", "/api/v1/data/invoice/"+paidID, nil, 200, &got)
	if got["status"] != "partially_paid" {
		t.Fatalf("refused cancel changed the invoice: %v", got)
	}
	if n := len(b.journal()); n != 4 {
		t.Fatalf("a refused cancel posted: %d entries", n)
	}

	// A draft cancelled posts nothing.
	draft := b.create("invoice", map[string]any{"account": acc["id"], "lines": []map[string]any{
		{"quantity": "2", "unit_price": "5.00", "tax_rate": "10"}}})
	b.expect("PATCH", "/api/v1/data/invoice/"+draft["id"].(string), map[string]any{"status": "cancelled"}, 200, nil)
	b.expect("PATCH", "/api/v1/data/invoice/"+draft["id"].(string), map[string]any{"due_date": "2026-04-01"}, 200, nil)
	if n := len(b.journal()); n != 4 {
		t.Fatalf("a cancelled draft posted: %d entries", n)
	}

	// The trial balance still sums to zero: 128.44 + 100.00 + 30.00 on each side.
	trialBalance(t, b, map[string][2]string{
		"1000": {"30.00", "0.00"}, "1100": {"164.22", "94.22"}, "2200": {"10.25", "10.25"}, "4000": {"53.97", "153.97"}}, "258.44")
}

// trialBalance runs the trial balance query, checks each account's debit and credit and
// that both sides sum to total, and returns the rows.
func trialBalance(t *testing.T, b *testBundle, want map[string][2]string, total string) []map[string]any {
	t.Helper()
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
	if debit != credit || debit != total {
		t.Fatalf("trial balance: debit %s, credit %s, want %s", debit, credit, total)
	}
	return tb.Items
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
