package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
)

// TestInvoiceOverdueSchedule installs accounting on the built binary with its embedded
// Temporal server and fires the module's daily schedule at once: issued and part-paid
// invoices past their due date become overdue and the accountants hear of each; the
// rest are left alone.
func TestInvoiceOverdueSchedule(t *testing.T) {
	serve, admin, httpAddr, temporalAddr := serveWithModule(t, "accounting")
	var alice struct{ ID string }
	admin.expect("POST", "/api/v1/users", map[string]any{"email": "alice@example.com", "password": "a long password", "roles": []string{"accountant"}}, 201, &alice)
	aliceC := newClient(t, httpAddr)
	aliceC.login("alice@example.com", "a long password")

	var acct map[string]any
	admin.expect("POST", "/api/v1/data/account", map[string]any{"name": "Acme Corp"}, 201, &acct)
	today := time.Now().UTC()
	day := func(d int) string { return today.AddDate(0, 0, d).Format("2006-01-02") }
	invoice := func(status, due string) map[string]any {
		var inv map[string]any
		admin.expect("POST", "/api/v1/data/invoice", map[string]any{"account": idOf(acct), "invoice_date": day(-40), "due_date": due,
			"status": status, "lines": []map[string]any{{"description": "Service", "quantity": "1", "unit_price": "100.00", "tax_rate": "0"}}}, 201, &inv)
		return inv
	}
	late := invoice("issued", day(-10))
	notYet := invoice("issued", day(5))
	draft := invoice("draft", day(-10))
	partLate := invoice("issued", day(-3))
	admin.expect("POST", "/api/v1/data/payment", map[string]any{"invoice": idOf(partLate), "account": idOf(acct),
		"amount": "40.00", "paid_on": day(-1), "method": "bank_transfer"}, 201, nil)

	// The schedule exists in Temporal; fire it now instead of at 06:00.
	c, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.ScheduleClient().GetHandle(ctx, "tessera-workflow-invoice_overdue").Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatalf("trigger the schedule: %v", err)
	}

	status := func(inv map[string]any) string {
		return fmt.Sprint(admin.one("invoice", fmt.Sprintf("id == %q", idOf(inv)))["status"])
	}
	eventually(t, "the overdue invoices marked", func() bool {
		return status(late) == "overdue" && status(partLate) == "overdue"
	})
	if s := status(notYet); s != "issued" {
		t.Errorf("invoice not yet due: %s", s)
	}
	if s := status(draft); s != "draft" {
		t.Errorf("draft invoice: %s", s)
	}
	aliceC.notified(fmt.Sprintf("Invoice %s is overdue", late["number"]))
	aliceC.notified(fmt.Sprintf("Invoice %s is overdue", partLate["number"]))
	// Paid in full later, it leaves overdue.
	admin.expect("POST", "/api/v1/data/payment", map[string]any{"invoice": idOf(late), "account": idOf(acct),
		"amount": "100.00", "paid_on": day(0), "method": "bank_transfer"}, 201, nil)
	if s := status(late); s != "paid" {
		t.Errorf("paid overdue invoice: %s", s)
	}
	serve.stop()
}
