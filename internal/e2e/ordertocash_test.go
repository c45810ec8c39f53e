package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// o2cCall is expect with the answer's body in the failure message.
func (c *apiClient) o2cCall(method, path string, body any, want int, out any) {
	c.t.Helper()
	var raw json.RawMessage
	st := c.do(method, path, body, &raw)
	if st != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

// o2cRecords lists an entity's records matching a filter.
func (c *apiClient) o2cRecords(entity, filter string) []map[string]any {
	c.t.Helper()
	var out struct{ Items []map[string]any }
	path := "/api/v1/data/" + entity + "?limit=500"
	if filter != "" {
		path += "&filter=" + urlEscape(filter)
	}
	c.expect("GET", path, nil, 200, &out)
	return out.Items
}

// o2cOne is the one record of an entity matching a filter.
func (c *apiClient) o2cOne(entity, filter string) map[string]any {
	c.t.Helper()
	items := c.o2cRecords(entity, filter)
	if len(items) != 1 {
		c.t.Fatalf("%s where %s: %d records, want 1: %v", entity, filter, len(items), items)
	}
	return items[0]
}

// o2cWaitTask polls the user's inbox until the run's task at step is open.
func (c *apiClient) o2cWaitTask(run, step string) string {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		var inbox struct {
			Items []struct{ ID, Run, Step, Title string }
		}
		c.expect("GET", "/api/v1/tasks?assignee=me&status=open", nil, 200, &inbox)
		for _, it := range inbox.Items {
			if it.Run == run && it.Step == step {
				return it.ID
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("no open task %s for run %s", step, run)
	return ""
}

// o2cNotified waits until the user has a notification whose title contains text.
func (c *apiClient) o2cNotified(text string) string {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var titles []string
	for time.Now().Before(deadline) {
		var out struct {
			Items []struct{ Title, Body string }
		}
		c.expect("GET", "/api/v1/notifications", nil, 200, &out)
		titles = titles[:0]
		for _, n := range out.Items {
			if strings.Contains(n.Title, text) {
				return n.Title + " / " + n.Body
			}
			titles = append(titles, n.Title)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("no notification %q; have %q", text, titles)
	return ""
}

// o2cEventually polls cond until it holds.
func o2cEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func o2cID(rec map[string]any) string { return fmt.Sprint(rec["id"]) }

// o2cExpect compares record fields with exact strings.
func o2cExpect(t *testing.T, what string, rec map[string]any, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := fmt.Sprint(rec[k]); got != v {
			t.Errorf("%s: %s = %q, want %q (record %v)", what, k, got, v, rec)
		}
	}
}

// TestOrderToCash runs the order_to_cash module's workflow on the built binary: a won
// opportunity becomes a sales order, stock is reserved or produced, shipped, issued,
// invoiced with exact totals, paid after an overdue reminder and closed; a second
// order is cancelled while production is pending and is compensated.
func TestOrderToCash(t *testing.T) {
	dir := dataDir(t)
	httpAddr, temporalAddr := freeAddr(t), freeAddr(t)
	serve := start(t, "serve", adminEnv(), "serve", "--data-dir", dir, "--addr", httpAddr, "--temporal-listen", temporalAddr)
	serve.waitReady(httpAddr)
	admin := newClient(t, httpAddr)
	admin.login(adminEmail, adminPassword)

	// The module and its dependencies.
	var installed struct{ Installed []string }
	admin.o2cCall("POST", "/api/v1/modules/order_to_cash/install", nil, 200, &installed)
	for _, m := range []string{"crm", "sales", "inventory", "manufacturing", "delivery", "accounting", "order_to_cash"} {
		if !strings.Contains(fmt.Sprint(installed.Installed), m) {
			t.Fatalf("install: %v lacks %s", installed.Installed, m)
		}
	}

	// The shipped definition with its payment terms shortened from 30 days to 2 s and
	// the reminder interval from 7 days to 3 s, so the overdue reminder shows here.
	_, file, _, _ := runtime.Caller(0)
	def, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "modules", "order_to_cash", "workflows", "order_to_cash.json"))
	if err != nil {
		t.Fatal(err)
	}
	short := strings.NewReplacer(`"timeout": "30d"`, `"timeout": "2s"`, `"timeout": "7d"`, `"timeout": "3s"`).Replace(string(def))
	if short == string(def) {
		t.Fatal("the definition has no payment timeouts to shorten")
	}
	admin.o2cCall("PUT", "/api/v1/workflows/order_to_cash", rawJSON(short), 201, nil)

	// People: the account owner (sales rep), the shop floor, delivery, accounting.
	const pw = "a long password"
	users := map[string]string{}
	for _, u := range []struct{ email, role string }{
		{"sam@example.com", "sales_rep"}, {"fred@example.com", "shop_floor"},
		{"dora@example.com", "delivery"}, {"alice@example.com", "accountant"},
	} {
		var out struct{ ID string }
		admin.expect("POST", "/api/v1/users", map[string]any{"email": u.email, "password": pw, "roles": []string{u.role}}, 201, &out)
		users[u.email] = out.ID
	}
	samC, fredC, doraC, aliceC := newClient(t, httpAddr), newClient(t, httpAddr), newClient(t, httpAddr), newClient(t, httpAddr)
	samC.login("sam@example.com", pw)
	fredC.login("fred@example.com", pw)
	doraC.login("dora@example.com", pw)
	aliceC.login("alice@example.com", pw)
	adminC := admin

	// Master data: a warehouse, a product in stock and one short of it.
	var wh, widget, gadget, acct map[string]any
	admin.o2cCall("POST", "/api/v1/data/warehouse", map[string]any{"code": "MAIN", "name": "Main warehouse"}, 201, &wh)
	admin.o2cCall("POST", "/api/v1/data/product", map[string]any{"sku": "W-1", "name": "Widget", "list_price": "100.00"}, 201, &widget)
	admin.o2cCall("POST", "/api/v1/data/product", map[string]any{"sku": "G-1", "name": "Gadget", "list_price": "19.99"}, 201, &gadget)
	admin.o2cCall("POST", "/api/v1/data/stock_level", map[string]any{"product": o2cID(widget), "warehouse": o2cID(wh), "quantity": "10", "reserved": "0"}, 201, nil)
	admin.o2cCall("POST", "/api/v1/data/stock_level", map[string]any{"product": o2cID(gadget), "warehouse": o2cID(wh), "quantity": "2", "reserved": "0"}, 201, nil)
	admin.o2cCall("POST", "/api/v1/data/account", map[string]any{"name": "Acme Corp", "type": "customer", "owner": users["sam@example.com"]}, 201, &acct)

	// win creates an opportunity with lines and marks it won; it returns the run id.
	win := func(t *testing.T, name string, lines []map[string]any) (string, string) {
		t.Helper()
		admin := &apiClient{t: t, base: adminC.base, token: adminC.token}
		var opp map[string]any
		admin.o2cCall("POST", "/api/v1/data/opportunity", map[string]any{"name": name, "account": o2cID(acct), "stage": "negotiation",
			"owner": users["sam@example.com"]}, 201, &opp)
		for _, l := range lines {
			l["opportunity"] = o2cID(opp)
			admin.o2cCall("POST", "/api/v1/data/opportunity_line", l, 201, nil)
		}
		var won map[string]any
		admin.o2cCall("PATCH", "/api/v1/data/opportunity/"+o2cID(opp), map[string]any{"stage": "closed_won"}, 200, &won)
		return o2cID(opp), fmt.Sprintf("order_to_cash:opportunity:%s:update:%v", o2cID(opp), won["version"])
	}
	// Subtests fail through their own t.
	clients := func(t *testing.T) (admin, sam, fred, dora, alice *apiClient, level func(map[string]any) map[string]any) {
		with := func(c *apiClient) *apiClient { return &apiClient{t: t, base: c.base, token: c.token} }
		admin = with(adminC)
		level = func(product map[string]any) map[string]any {
			return admin.o2cOne("stock_level", fmt.Sprintf("product == %q", o2cID(product)))
		}
		return admin, with(samC), with(fredC), with(doraC), with(aliceC), level
	}

	t.Run("won opportunity to cash", func(t *testing.T) {
		admin, sam, fred, dora, alice, level := clients(t)
		oppID, run := win(t, "Acme rollout", []map[string]any{
			{"product": o2cID(widget), "description": "Widget", "quantity": "3", "unit_price": "100.00", "discount_percent": "10", "tax_rate": "20"},
			{"product": o2cID(gadget), "description": "Gadget", "quantity": "5", "unit_price": "19.99", "tax_rate": "20"},
		})

		// The sales order, with the sales totals computed exactly.
		var order map[string]any
		o2cEventually(t, "the sales order", func() bool {
			items := admin.o2cRecords("sales_order", fmt.Sprintf("opportunity == %q", oppID))
			if len(items) == 1 {
				order = items[0]
			}
			return order != nil
		})
		o2cExpect(t, "order", order, map[string]string{"account": o2cID(acct), "subtotal": "399.95", "discount_total": "30.00", "tax_total": "73.99", "total": "443.94"})
		number := fmt.Sprint(order["number"])

		// The gadget is short: the account owner hears of it at once, and the shop
		// floor (not delivery, not sales) is asked to produce the difference.
		note := sam.o2cNotified("Stock short: Gadget")
		if !strings.Contains(note, number) || !strings.Contains(note, "5 ordered, 2 available") {
			t.Errorf("shortage notification %q", note)
		}
		produce := fred.o2cWaitTask(run, "produce")
		mo := admin.o2cOne("production_order", fmt.Sprintf("source_reference == %q", number))
		o2cExpect(t, "production order", mo, map[string]string{"product": o2cID(gadget), "quantity": "3", "status": "released"})
		// The widget was reserved from stock meanwhile.
		o2cExpect(t, "widget level", level(widget), map[string]string{"quantity": "10", "reserved": "3"})
		dora.expect("POST", "/api/v1/tasks/"+produce+"/complete", map[string]any{"outcome": "completed"}, 403, nil)
		sam.expect("POST", "/api/v1/tasks/"+produce+"/complete", map[string]any{"outcome": "completed"}, 403, nil)
		fred.expect("POST", "/api/v1/tasks/"+produce+"/complete", map[string]any{"outcome": "completed"}, 200, nil)

		// Delivery picks, ships (the shop floor may not) and confirms delivery.
		pick := dora.o2cWaitTask(run, "pick")
		o2cExpect(t, "gadget level after production", level(gadget), map[string]string{"quantity": "5", "reserved": "5"})
		o2cExpect(t, "production order", admin.o2cOne("production_order", fmt.Sprintf("source_reference == %q", number)), map[string]string{"status": "done"})
		shipment := admin.o2cOne("shipment", fmt.Sprintf("sales_order == %q", o2cID(order)))
		o2cExpect(t, "shipment", shipment, map[string]string{"status": "planned", "account": o2cID(acct)})
		fred.expect("POST", "/api/v1/tasks/"+pick+"/complete", map[string]any{"outcome": "picked"}, 403, nil)
		dora.expect("POST", "/api/v1/tasks/"+pick+"/complete", map[string]any{"outcome": "picked"}, 200, nil)
		ship := dora.o2cWaitTask(run, "ship")
		dora.expect("POST", "/api/v1/tasks/"+ship+"/complete", map[string]any{"outcome": "shipped",
			"data": map[string]any{"carrier": "DHL", "tracking_number": "JD0123"}}, 200, nil)
		deliver := dora.o2cWaitTask(run, "deliver")
		// Shipped goods left the warehouse: issue moves, stock and reservations down.
		o2cExpect(t, "widget level after issue", level(widget), map[string]string{"quantity": "7", "reserved": "0"})
		o2cExpect(t, "gadget level after issue", level(gadget), map[string]string{"quantity": "0", "reserved": "0"})
		if moves := admin.o2cRecords("stock_move", fmt.Sprintf("reference == %q && reason == \"delivery\"", number)); len(moves) != 2 {
			t.Errorf("issue moves %v", moves)
		}
		if res := admin.o2cRecords("stock_move", fmt.Sprintf("reference == %q && reason == \"reservation\" && status == \"issued\"", number)); len(res) != 2 {
			t.Errorf("issued reservations %v", res)
		}
		dora.expect("POST", "/api/v1/tasks/"+deliver+"/complete", map[string]any{"outcome": "delivered"}, 200, nil)

		// Exactly one invoice, with the order's lines and exact totals.
		var invoice map[string]any
		o2cEventually(t, "the invoice", func() bool {
			items := admin.o2cRecords("invoice", fmt.Sprintf("sales_order == %q", o2cID(order)))
			if len(items) > 1 {
				t.Fatalf("%d invoices", len(items))
			}
			if len(items) == 1 {
				invoice = items[0]
			}
			return invoice != nil
		})
		o2cExpect(t, "invoice", invoice, map[string]string{"status": "issued", "subtotal": "399.95", "discount_total": "30.00", "tax_total": "73.99", "total": "443.94"})
		o2cExpect(t, "shipment", admin.o2cOne("shipment", fmt.Sprintf("sales_order == %q", o2cID(order))),
			map[string]string{"status": "delivered", "carrier": "DHL", "tracking_number": "JD0123"})

		// Unpaid past its (shortened) terms: the account owner is reminded.
		sam.o2cNotified("is overdue (reminder 1)")
		alice.o2cCall("POST", "/api/v1/data/payment", map[string]any{"invoice": o2cID(invoice), "account": o2cID(acct),
			"amount": "443.94", "paid_on": time.Now().UTC().Format("2006-01-02"), "method": "bank_transfer"}, 201, nil)
		r := admin.waitRun(run)
		if r.Status != "completed" || r.Output["paid"] != true || r.Output["order"] != o2cID(order) {
			t.Fatalf("run %+v", r)
		}
		o2cExpect(t, "paid invoice", admin.o2cOne("invoice", fmt.Sprintf("sales_order == %q", o2cID(order))), map[string]string{"status": "paid", "amount_paid": "443.94"})
		o2cExpect(t, "closed order", admin.o2cOne("sales_order", fmt.Sprintf("opportunity == %q", oppID)), map[string]string{"status": "closed"})
	})

	t.Run("cancelled order is compensated", func(t *testing.T) {
		admin, sam, fred, _, _, level := clients(t)
		oppID, run := win(t, "Acme second order", []map[string]any{
			{"product": o2cID(widget), "quantity": "2", "unit_price": "100.00", "tax_rate": "20"},
			{"product": o2cID(gadget), "quantity": "4", "unit_price": "19.99", "tax_rate": "20"},
		})
		// The widget is reserved and production of the gadget is pending.
		fred.o2cWaitTask(run, "produce")
		order := admin.o2cOne("sales_order", fmt.Sprintf("opportunity == %q", oppID))
		number := fmt.Sprint(order["number"])
		o2cExpect(t, "widget level", level(widget), map[string]string{"quantity": "7", "reserved": "2"})
		o2cExpect(t, "production order", admin.o2cOne("production_order", fmt.Sprintf("source_reference == %q", number)), map[string]string{"status": "released", "quantity": "4"})

		// The customer cancels.
		admin.o2cCall("PATCH", "/api/v1/data/sales_order/"+o2cID(order), map[string]any{"status": "cancelled"}, 200, nil)
		r := admin.waitRun(run)
		if r.Status != "failed" || !strings.Contains(fmt.Sprint(r.Error["message"]), "was cancelled") {
			t.Fatalf("cancelled run %+v", r)
		}
		o2cExpect(t, "widget level", level(widget), map[string]string{"quantity": "7", "reserved": "0"})
		o2cExpect(t, "reservation", admin.o2cOne("stock_move", fmt.Sprintf("reference == %q && reason == \"reservation\"", number)), map[string]string{"status": "released", "quantity": "2"})
		o2cExpect(t, "production order", admin.o2cOne("production_order", fmt.Sprintf("source_reference == %q", number)), map[string]string{"status": "cancelled"})
		o2cExpect(t, "order", admin.o2cOne("sales_order", fmt.Sprintf("opportunity == %q", oppID)), map[string]string{"status": "cancelled"})
		if inv := admin.o2cRecords("invoice", fmt.Sprintf("sales_order == %q", o2cID(order))); len(inv) != 0 {
			t.Errorf("invoices of a cancelled order: %v", inv)
		}
		if sh := admin.o2cRecords("shipment", fmt.Sprintf("sales_order == %q", o2cID(order))); len(sh) != 0 {
			t.Errorf("shipments of a cancelled order: %v", sh)
		}
		var tasks struct {
			Items []struct{ Step, Status string }
		}
		admin.expect("GET", "/api/v1/tasks?assignee=all&run="+urlEscape(run), nil, 200, &tasks)
		for _, tk := range tasks.Items {
			if tk.Step == "produce" && tk.Status != "cancelled" {
				t.Errorf("production task %+v", tk)
			}
		}
		sam.o2cNotified("Order " + number + " cancelled")
	})

	t.Run("cancelled run is compensated", func(t *testing.T) {
		admin, sam, _, dora, _, level := clients(t)
		oppID, run := win(t, "Acme third order", []map[string]any{
			{"product": o2cID(widget), "quantity": "1", "unit_price": "100.00", "tax_rate": "20"},
		})
		// In stock: reserved at once, and the shipment waits to be picked.
		dora.o2cWaitTask(run, "pick")
		order := admin.o2cOne("sales_order", fmt.Sprintf("opportunity == %q", oppID))
		number := fmt.Sprint(order["number"])
		o2cExpect(t, "widget level", level(widget), map[string]string{"quantity": "7", "reserved": "1"})
		if mo := admin.o2cRecords("production_order", fmt.Sprintf("source_reference == %q", number)); len(mo) != 0 {
			t.Errorf("production for a line in stock: %v", mo)
		}
		admin.expect("POST", "/api/v1/runs/"+run+"/cancel", nil, 202, nil)
		if r := admin.waitRun(run); r.Status != "cancelled" {
			t.Fatalf("cancelled run %+v", r)
		}
		o2cExpect(t, "widget level", level(widget), map[string]string{"quantity": "7", "reserved": "0"})
		o2cExpect(t, "reservation", admin.o2cOne("stock_move", fmt.Sprintf("reference == %q && reason == \"reservation\"", number)), map[string]string{"status": "released"})
		o2cExpect(t, "shipment", admin.o2cOne("shipment", fmt.Sprintf("sales_order == %q", o2cID(order))), map[string]string{"status": "cancelled"})
		o2cExpect(t, "order", admin.o2cOne("sales_order", fmt.Sprintf("opportunity == %q", oppID)), map[string]string{"status": "cancelled"})
		if inv := admin.o2cRecords("invoice", fmt.Sprintf("sales_order == %q", o2cID(order))); len(inv) != 0 {
			t.Errorf("invoices of a cancelled run: %v", inv)
		}
		sam.o2cNotified("Order " + number + " cancelled")
	})

	// Each order had one run; the first order has exactly one invoice in all.
	var runs struct{ Total int }
	adminC.expect("GET", "/api/v1/runs?workflow=order_to_cash", nil, 200, &runs)
	if runs.Total != 3 {
		t.Errorf("%d order_to_cash runs, want 3", runs.Total)
	}
	if inv := adminC.o2cRecords("invoice", ""); len(inv) != 1 {
		t.Errorf("%d invoices in all, want 1", len(inv))
	}
	serve.stop()
}
