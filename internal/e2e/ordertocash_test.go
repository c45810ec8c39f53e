package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tessera/tessera/internal/testdb"
)

// TestOrderToCash runs the order_to_cash module's workflows on the built binary in the
// scaled topology (Temporal, an API node without a worker, a worker process): a sales
// rep wins an opportunity and the process — acting as its own service identity —
// creates the sales order, reserves what is in stock, buys the missing components and
// has the rest produced per bill of materials, ships (with a delay alert to the
// account owner), issues the stock, invoices with exact totals, reminds when overdue
// and closes when paid. The worker is killed twice mid-run, once right as the invoice
// is written, and exactly one invoice results. Two more orders are cancelled mid-way:
// one by its order status, one by cancelling the run; both are compensated.
func TestOrderToCash(t *testing.T) {
	dbURL := testdb.New(t)
	temporalAddr, httpAddr := freeAddr(t), freeAddr(t)
	temporal := start(t, "temporal", nil, "temporal", "--data-dir", dataDir(t), "--listen", temporalAddr)
	env := []string{"DATABASE_URL=" + dbURL, "TEMPORAL_ADDRESS=" + temporalAddr,
		"TESSERA_ADMIN_EMAIL=" + adminEmail, "TESSERA_ADMIN_PASSWORD=" + adminPassword}
	api := start(t, "api", env, "serve", "--no-worker", "--addr", httpAddr)
	worker := start(t, "worker", env, "worker")
	workers := 1
	restartWorker := func() {
		worker.kill()
		workers++
		worker = start(t, fmt.Sprintf("worker-%d", workers), env, "worker")
	}
	api.waitReady(httpAddr)
	admin := newClient(t, httpAddr)
	admin.login(adminEmail, adminPassword)

	// The module and its dependencies.
	var installed struct{ Installed []string }
	admin.expect("POST", "/api/v1/modules/order_to_cash/install", nil, 200, &installed)
	for _, m := range []string{"crm", "sales", "inventory", "manufacturing", "purchasing", "delivery", "accounting", "order_to_cash"} {
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
	admin.expect("PUT", "/api/v1/workflows/order_to_cash", rawJSON(short), 201, nil)

	// People: the account owner (a sales rep at the order desk), the shop floor,
	// purchasing, delivery, accounting. None of them may do what the process does.
	const pw = "a long password"
	users := map[string]string{}
	clientsByEmail := map[string]*apiClient{}
	for _, u := range []struct {
		email string
		roles []string
	}{
		{"sam@example.com", []string{"sales_rep", "order_desk"}}, {"fred@example.com", []string{"shop_floor"}},
		{"bob@example.com", []string{"buyer"}}, {"dora@example.com", []string{"delivery"}}, {"alice@example.com", []string{"accountant"}},
	} {
		var out struct{ ID string }
		admin.expect("POST", "/api/v1/users", map[string]any{"email": u.email, "password": pw, "roles": u.roles}, 201, &out)
		users[u.email] = out.ID
		c := newClient(t, httpAddr)
		c.login(u.email, pw)
		clientsByEmail[u.email] = c
	}
	adminC := admin

	// Master data: a warehouse; a widget in stock; a gadget short of stock, made of
	// two bolts and half a kilo of wire; bolts are short too and bought from a supplier.
	var wh, widget, gadget, bolt, wire, acct, supplier map[string]any
	admin.expect("POST", "/api/v1/data/warehouse", map[string]any{"code": "MAIN", "name": "Main warehouse"}, 201, &wh)
	admin.expect("POST", "/api/v1/data/product", map[string]any{"sku": "W-1", "name": "Widget", "list_price": "100.00"}, 201, &widget)
	admin.expect("POST", "/api/v1/data/product", map[string]any{"sku": "G-1", "name": "Gadget", "list_price": "19.99"}, 201, &gadget)
	admin.expect("POST", "/api/v1/data/product", map[string]any{"sku": "B-8", "name": "Bolt M8", "type": "raw_material"}, 201, &bolt)
	admin.expect("POST", "/api/v1/data/product", map[string]any{"sku": "CW", "name": "Copper wire", "type": "raw_material", "unit": "kg"}, 201, &wire)
	admin.expect("POST", "/api/v1/data/bom", map[string]any{"name": "Gadget", "product": idOf(gadget), "quantity": "1", "lines": []map[string]any{
		{"component": idOf(bolt), "quantity": "2"}, {"component": idOf(wire), "quantity": "0.5"}}}, 201, nil)
	admin.expect("POST", "/api/v1/data/supplier", map[string]any{"name": "Rhein Fasteners"}, 201, &supplier)
	admin.expect("POST", "/api/v1/data/supplier_item", map[string]any{"supplier": idOf(supplier), "product": idOf(bolt), "unit_price": "0.25", "preferred": true}, 201, nil)
	for product, qty := range map[*map[string]any]string{&widget: "10", &gadget: "2", &bolt: "4", &wire: "10"} {
		admin.expect("POST", "/api/v1/data/stock_move", map[string]any{"product": idOf(*product), "to_warehouse": idOf(wh),
			"quantity": qty, "reason": "receipt", "status": "done", "reference": "opening"}, 201, nil)
	}
	admin.expect("POST", "/api/v1/data/account", map[string]any{"name": "Acme Corp", "type": "customer", "owner": users["sam@example.com"]}, 201, &acct)

	// win: the sales rep creates an opportunity with lines and marks it won; it
	// returns the opportunity and the id of the run that starts.
	win := func(t *testing.T, name string, lines []map[string]any) (string, string) {
		t.Helper()
		sam := &apiClient{t: t, base: adminC.base, token: clientsByEmail["sam@example.com"].token}
		var opp map[string]any
		sam.expect("POST", "/api/v1/data/opportunity", map[string]any{"name": name, "account": idOf(acct), "stage": "negotiation",
			"owner": users["sam@example.com"]}, 201, &opp)
		for _, l := range lines {
			l["opportunity"] = idOf(opp)
			sam.expect("POST", "/api/v1/data/opportunity_line", l, 201, nil)
		}
		var won map[string]any
		sam.expect("PATCH", "/api/v1/data/opportunity/"+idOf(opp), map[string]any{"stage": "closed_won"}, 200, &won)
		return idOf(opp), fmt.Sprintf("order_to_cash:opportunity:%s:update:%v", idOf(opp), won["version"])
	}
	// Subtests fail through their own t.
	type people struct{ admin, sam, fred, bob, dora, alice *apiClient }
	clients := func(t *testing.T) (people, func(map[string]any) map[string]any) {
		with := func(c *apiClient) *apiClient { return &apiClient{t: t, base: c.base, token: c.token} }
		p := people{with(adminC), with(clientsByEmail["sam@example.com"]), with(clientsByEmail["fred@example.com"]),
			with(clientsByEmail["bob@example.com"]), with(clientsByEmail["dora@example.com"]), with(clientsByEmail["alice@example.com"])}
		level := func(product map[string]any) map[string]any {
			return p.admin.one("stock_level", fmt.Sprintf("product == %q", idOf(product)))
		}
		return p, level
	}

	t.Run("won opportunity to cash", func(t *testing.T) {
		p, level := clients(t)
		admin, sam, fred, bob, dora, alice := p.admin, p.sam, p.fred, p.bob, p.dora, p.alice
		// The rep may not write what the process writes.
		sam.expect("POST", "/api/v1/data/invoice", map[string]any{"account": idOf(acct)}, 403, nil)
		sam.expect("POST", "/api/v1/data/stock_move", map[string]any{"product": idOf(widget), "quantity": "1", "reason": "receipt"}, 403, nil)
		// The rep watches the realtime stream: the worker writes the alert, the API node
		// streams it.
		stream := sam.notificationStream()
		oppID, run := win(t, "Acme rollout", []map[string]any{
			{"product": idOf(widget), "description": "Widget", "quantity": "3", "unit_price": "100.00", "discount_percent": "10", "tax_rate": "20"},
			{"product": idOf(gadget), "description": "Gadget", "quantity": "5", "unit_price": "19.99", "tax_rate": "20"},
		})

		// The sales order, with the sales totals computed exactly.
		var order map[string]any
		eventually(t, "the sales order", func() bool {
			items := admin.records("sales_order", fmt.Sprintf("opportunity == %q", oppID))
			if len(items) == 1 {
				order = items[0]
			}
			return order != nil
		})
		expectFields(t, "order", order, map[string]string{"account": idOf(acct), "subtotal": "399.95", "discount_total": "30.00", "tax_total": "73.99", "total": "443.94"})
		number := fmt.Sprint(order["number"])

		// The gadget is short: the account owner hears of it at once; a production
		// order for the difference is raised; its bolts are short (6 needed, 4 in
		// stock), so 2 are bought from the preferred supplier and the buyer (not the
		// shop floor) is asked to receive them.
		note := sam.notified("Stock short: Gadget")
		if !strings.Contains(note, number) || !strings.Contains(note, "5 ordered, 2 available") {
			t.Errorf("shortage notification %q", note)
		}
		select {
		case ev := <-stream:
			if !strings.Contains(ev, "Stock short: Gadget") {
				t.Errorf("first streamed notification %s", ev)
			}
		case <-time.After(30 * time.Second):
			t.Error("the shortage alert did not arrive on the realtime stream")
		}
		receive := bob.waitTask(run, "receive")
		mo := admin.one("production_order", fmt.Sprintf("source_reference == %q", number))
		expectFields(t, "production order", mo, map[string]string{"product": idOf(gadget), "quantity": "3", "status": "released"})
		po := admin.one("purchase_order", fmt.Sprintf("source_reference == %q", mo["number"]))
		expectFields(t, "purchase order", po, map[string]string{"supplier": idOf(supplier), "status": "sent", "total": "0.50"})
		// The widget was reserved from stock meanwhile.
		expectFields(t, "widget level", level(widget), map[string]string{"quantity": "10", "reserved": "3"})

		// A worker crash while the run waits for people changes nothing.
		restartWorker()
		fred.expect("POST", "/api/v1/tasks/"+receive+"/complete", map[string]any{"outcome": "received"}, 403, nil)
		bob.expect("POST", "/api/v1/tasks/"+receive+"/complete", map[string]any{"outcome": "received"}, 200, nil)
		produce := fred.waitTask(run, "produce")
		expectFields(t, "bolts received", level(bolt), map[string]string{"quantity": "6", "reserved": "0"})
		expectFields(t, "purchase order", admin.one("purchase_order", fmt.Sprintf("id == %q", idOf(po))), map[string]string{"status": "received"})
		dora.expect("POST", "/api/v1/tasks/"+produce+"/complete", map[string]any{"outcome": "completed"}, 403, nil)
		sam.expect("POST", "/api/v1/tasks/"+produce+"/complete", map[string]any{"outcome": "completed"}, 403, nil)
		fred.expect("POST", "/api/v1/tasks/"+produce+"/complete", map[string]any{"outcome": "completed"}, 200, nil)

		// Production consumed its components per BOM and produced the gadgets, which
		// are reserved; delivery picks.
		pick := dora.waitTask(run, "pick")
		expectFields(t, "bolts consumed", level(bolt), map[string]string{"quantity": "0", "reserved": "0"})
		expectFields(t, "wire consumed", level(wire), map[string]string{"quantity": "8.5", "reserved": "0"})
		expectFields(t, "gadget level after production", level(gadget), map[string]string{"quantity": "5", "reserved": "5"})
		expectFields(t, "production order", admin.one("production_order", fmt.Sprintf("source_reference == %q", number)), map[string]string{"status": "done"})
		shipment := admin.one("shipment", fmt.Sprintf("sales_order == %q", idOf(order)))
		expectFields(t, "shipment", shipment, map[string]string{"status": "planned", "account": idOf(acct)})
		fred.expect("POST", "/api/v1/tasks/"+pick+"/complete", map[string]any{"outcome": "picked"}, 403, nil)
		dora.expect("POST", "/api/v1/tasks/"+pick+"/complete", map[string]any{"outcome": "picked"}, 200, nil)

		// The carrier is late: delivery marks the shipment delayed and the account
		// owner is told at once.
		ship := dora.waitTask(run, "ship")
		dora.expect("PATCH", "/api/v1/data/shipment/"+idOf(shipment), map[string]any{"status": "delayed", "delay_reason": "Carrier strike until Monday"}, 200, nil)
		if note := sam.notified("is delayed"); !strings.Contains(note, "Carrier strike") || !strings.Contains(note, "Acme Corp") {
			t.Errorf("delay notification %q", note)
		}
		dora.expect("POST", "/api/v1/tasks/"+ship+"/complete", map[string]any{"outcome": "shipped",
			"data": map[string]any{"carrier": "DHL", "tracking_number": "JD0123"}}, 200, nil)
		deliver := dora.waitTask(run, "deliver")
		// Shipped goods left the warehouse: the reservations were issued.
		expectFields(t, "widget level after issue", level(widget), map[string]string{"quantity": "7", "reserved": "0"})
		expectFields(t, "gadget level after issue", level(gadget), map[string]string{"quantity": "0", "reserved": "0"})
		if res := admin.records("stock_move", fmt.Sprintf("reference == %q && reason == \"reservation\" && status == \"issued\"", number)); len(res) != 2 {
			t.Errorf("issued reservations %v", res)
		}

		// Delivery confirmed; the worker is killed the moment the invoice exists —
		// between the invoice being written and the run moving on — and restarted.
		dora.expect("POST", "/api/v1/tasks/"+deliver+"/complete", map[string]any{"outcome": "delivered"}, 200, nil)
		eventually(t, "the invoice being written", func() bool {
			return len(admin.records("invoice", fmt.Sprintf("sales_order == %q", idOf(order)))) > 0
		})
		restartWorker()

		// Unpaid past its (shortened) terms: the account owner is reminded.
		sam.notified("is overdue (reminder 1)")
		invoices := admin.records("invoice", fmt.Sprintf("sales_order == %q", idOf(order)))
		if len(invoices) != 1 {
			t.Fatalf("%d invoices after the worker restart: %v", len(invoices), invoices)
		}
		invoice := invoices[0]
		expectFields(t, "invoice", invoice, map[string]string{"status": "issued", "subtotal": "399.95", "discount_total": "30.00", "tax_total": "73.99", "total": "443.94"})
		if invoice["created_by"] == users["sam@example.com"] || invoice["created_by"] == nil {
			t.Errorf("invoice created by %v, want the process's service identity", invoice["created_by"])
		}
		expectFields(t, "shipment", admin.one("shipment", fmt.Sprintf("sales_order == %q", idOf(order))),
			map[string]string{"status": "delivered", "carrier": "DHL", "tracking_number": "JD0123"})
		alice.expect("POST", "/api/v1/data/payment", map[string]any{"invoice": idOf(invoice), "account": idOf(acct),
			"amount": "443.94", "paid_on": time.Now().UTC().Format("2006-01-02"), "method": "bank_transfer"}, 201, nil)
		r := admin.waitRun(run)
		if r.Status != "completed" || r.Output["paid"] != true || r.Output["order"] != idOf(order) {
			t.Fatalf("run %+v", r)
		}
		expectFields(t, "paid invoice", admin.one("invoice", fmt.Sprintf("sales_order == %q", idOf(order))), map[string]string{"status": "paid", "amount_paid": "443.94"})
		expectFields(t, "closed order", admin.one("sales_order", fmt.Sprintf("opportunity == %q", oppID)), map[string]string{"status": "closed"})
	})

	t.Run("cancelled order is compensated", func(t *testing.T) {
		p, level := clients(t)
		admin, sam, bob := p.admin, p.sam, p.bob
		oppID, run := win(t, "Acme second order", []map[string]any{
			{"product": idOf(widget), "quantity": "2", "unit_price": "100.00", "tax_rate": "20"},
			{"product": idOf(gadget), "quantity": "4", "unit_price": "19.99", "tax_rate": "20"},
		})
		// The widget is reserved; the gadget's bolts are being bought for production.
		bob.waitTask(run, "receive")
		order := admin.one("sales_order", fmt.Sprintf("opportunity == %q", oppID))
		number := fmt.Sprint(order["number"])
		expectFields(t, "widget level", level(widget), map[string]string{"quantity": "7", "reserved": "2"})
		expectFields(t, "production order", admin.one("production_order", fmt.Sprintf("source_reference == %q", number)), map[string]string{"status": "released", "quantity": "4"})

		// The customer cancels.
		admin.expect("PATCH", "/api/v1/data/sales_order/"+idOf(order), map[string]any{"status": "cancelled"}, 200, nil)
		r := admin.waitRun(run)
		if r.Status != "failed" || !strings.Contains(fmt.Sprint(r.Error["message"]), "was cancelled") {
			t.Fatalf("cancelled run %+v", r)
		}
		expectFields(t, "widget level", level(widget), map[string]string{"quantity": "7", "reserved": "0"})
		expectFields(t, "reservation", admin.one("stock_move", fmt.Sprintf("reference == %q && reason == \"reservation\"", number)), map[string]string{"status": "released", "quantity": "2"})
		expectFields(t, "production order", admin.one("production_order", fmt.Sprintf("source_reference == %q", number)), map[string]string{"status": "cancelled"})
		expectFields(t, "order", admin.one("sales_order", fmt.Sprintf("opportunity == %q", oppID)), map[string]string{"status": "cancelled"})
		if inv := admin.records("invoice", fmt.Sprintf("sales_order == %q", idOf(order))); len(inv) != 0 {
			t.Errorf("invoices of a cancelled order: %v", inv)
		}
		if sh := admin.records("shipment", fmt.Sprintf("sales_order == %q", idOf(order))); len(sh) != 0 {
			t.Errorf("shipments of a cancelled order: %v", sh)
		}
		var tasks struct {
			Items []struct{ Step, Status string }
		}
		admin.expect("GET", "/api/v1/tasks?assignee=all&run="+urlEscape(run), nil, 200, &tasks)
		for _, tk := range tasks.Items {
			if tk.Step == "receive" && tk.Status != "cancelled" {
				t.Errorf("receipt task %+v", tk)
			}
		}
		sam.notified("Order " + number + " cancelled")
	})

	t.Run("cancelled run is compensated", func(t *testing.T) {
		p, level := clients(t)
		admin, sam, dora := p.admin, p.sam, p.dora
		oppID, run := win(t, "Acme third order", []map[string]any{
			{"product": idOf(widget), "quantity": "1", "unit_price": "100.00", "tax_rate": "20"},
		})
		// In stock: reserved at once, and the shipment waits to be picked.
		dora.waitTask(run, "pick")
		order := admin.one("sales_order", fmt.Sprintf("opportunity == %q", oppID))
		number := fmt.Sprint(order["number"])
		expectFields(t, "widget level", level(widget), map[string]string{"quantity": "7", "reserved": "1"})
		if mo := admin.records("production_order", fmt.Sprintf("source_reference == %q", number)); len(mo) != 0 {
			t.Errorf("production for a line in stock: %v", mo)
		}
		admin.expect("POST", "/api/v1/runs/"+run+"/cancel", nil, 202, nil)
		if r := admin.waitRun(run); r.Status != "cancelled" {
			t.Fatalf("cancelled run %+v", r)
		}
		expectFields(t, "widget level", level(widget), map[string]string{"quantity": "7", "reserved": "0"})
		expectFields(t, "reservation", admin.one("stock_move", fmt.Sprintf("reference == %q && reason == \"reservation\"", number)), map[string]string{"status": "released"})
		expectFields(t, "shipment", admin.one("shipment", fmt.Sprintf("sales_order == %q", idOf(order))), map[string]string{"status": "cancelled"})
		expectFields(t, "order", admin.one("sales_order", fmt.Sprintf("opportunity == %q", oppID)), map[string]string{"status": "cancelled"})
		if inv := admin.records("invoice", fmt.Sprintf("sales_order == %q", idOf(order))); len(inv) != 0 {
			t.Errorf("invoices of a cancelled run: %v", inv)
		}
		sam.notified("Order " + number + " cancelled")
	})

	// Each order had one run; the first order has exactly one invoice in all.
	var runs struct{ Total int }
	adminC.expect("GET", "/api/v1/runs?workflow=order_to_cash", nil, 200, &runs)
	if runs.Total != 3 {
		t.Errorf("%d order_to_cash runs, want 3", runs.Total)
	}
	if inv := adminC.records("invoice", ""); len(inv) != 1 {
		t.Errorf("%d invoices in all, want 1", len(inv))
	}
	api.stop()
	worker.stop()
	temporal.stop()
}
