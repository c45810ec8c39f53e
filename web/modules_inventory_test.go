package web

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// stockOf is a product's stock level in a warehouse: on hand and reserved.
func (b *testBundle) stockOf(product, warehouse any) (string, string) {
	b.t.Helper()
	var p page
	b.expect("GET", "/api/v1/data/stock_level?filter="+urlQuery(fmt.Sprintf("product == %q && warehouse == %q", product, warehouse)), nil, 200, &p)
	if len(p.Items) != 1 {
		b.t.Fatalf("%d stock levels of %v in %v", len(p.Items), product, warehouse)
	}
	return p.Items[0]["quantity"].(string), p.Items[0]["reserved"].(string)
}

func (b *testBundle) wantStock(product, warehouse any, quantity, reserved string) {
	b.t.Helper()
	if q, r := b.stockOf(product, warehouse); q != quantity || r != reserved {
		b.t.Fatalf("stock of %v: %s on hand, %s reserved; want %s and %s", product, q, r, quantity, reserved)
	}
}

// TestStockLedger: stock levels follow stock moves exactly; purchase receipts and
// completed production orders post their moves; stock never goes negative; posted
// moves can't be changed or deleted; concurrent reservations all count.
func TestStockLedger(t *testing.T) {
	b := setup(t)
	b.expect("POST", "/api/v1/modules/purchasing/install", nil, 200, nil)
	b.expect("POST", "/api/v1/modules/manufacturing/install", nil, 200, nil)
	wh := b.create("warehouse", map[string]any{"code": "MAIN", "name": "Main"})["id"]
	motor := b.create("product", map[string]any{"sku": "M-1", "name": "Motor"})["id"]
	wire := b.create("product", map[string]any{"sku": "W-1", "name": "Copper wire", "unit": "kg", "type": "raw_material"})["id"]
	bearing := b.create("product", map[string]any{"sku": "B-1", "name": "Bearing", "type": "raw_material"})["id"]
	supplier := b.create("supplier", map[string]any{"name": "Wire & Bearings"})["id"]

	// A purchase order received posts one receipt per line.
	po := b.create("purchase_order", map[string]any{"supplier": supplier, "warehouse": wh, "status": "sent", "lines": []map[string]any{
		{"product": wire, "quantity": "10.5", "unit_price": "31.75"}, {"product": bearing, "quantity": "7", "unit_price": "26.40"}}})
	if po["total"] != "518.18" {
		t.Fatalf("purchase order total: %v", po["total"])
	}
	b.expect("PATCH", "/api/v1/data/purchase_order/"+po["id"].(string), map[string]any{"status": "received"}, 200, nil)
	b.wantStock(wire, wh, "10.5", "0")
	b.wantStock(bearing, wh, "7", "0")
	// Levels change only through moves: nobody writes them directly, not even an admin.
	var levels page
	b.expect("GET", "/api/v1/data/stock_level?filter="+urlQuery(fmt.Sprintf("product == %q", wire)), nil, 200, &levels)
	var e apiError
	b.expect("PATCH", "/api/v1/data/stock_level/"+levels.Items[0]["id"].(string), map[string]any{"quantity": "1000"}, 422, &e)
	if !e.hasPath("/quantity") {
		t.Fatalf("direct stock change: %+v", e)
	}
	b.expect("POST", "/api/v1/data/stock_level", map[string]any{"product": bearing, "warehouse": wh, "quantity": "5"}, 422, nil)
	// Saving it again posts nothing twice.
	b.expect("PATCH", "/api/v1/data/purchase_order/"+po["id"].(string), map[string]any{"expected_date": "2026-12-01"}, 200, nil)
	b.wantStock(wire, wh, "10.5", "0")

	// Completing production consumes components per BOM (1.5 kg + 3% scrap, 2
	// bearings per motor) and receives the motors.
	b.create("bom", map[string]any{"name": "Motor", "product": motor, "quantity": "1", "lines": []map[string]any{
		{"component": wire, "quantity": "1.5", "scrap_percent": "3"}, {"component": bearing, "quantity": "2"}}})
	mo := b.create("production_order", map[string]any{"product": motor, "quantity": "3", "warehouse": wh, "status": "released"})
	b.expect("PATCH", "/api/v1/data/production_order/"+mo["id"].(string), map[string]any{"status": "done"}, 200, nil)
	b.wantStock(wire, wh, "5.865", "0") // 10.5 − 3 × 1.5 × 1.03 = 5.865
	b.wantStock(bearing, wh, "1", "0")
	b.wantStock(motor, wh, "3", "0")

	// A second order for 1 motor needs 2 bearings; 1 is left: refused, with the
	// component named, and nothing moved.
	mo2 := b.create("production_order", map[string]any{"product": motor, "quantity": "1", "warehouse": wh, "status": "released"})
	b.expect("PATCH", "/api/v1/data/production_order/"+mo2["id"].(string), map[string]any{"status": "done"}, 422, &e)
	if raw := fmt.Sprint(e); !strings.Contains(raw, "Bearing") || !strings.Contains(raw, "not enough stock") {
		t.Fatalf("short component: %+v", e)
	}
	b.wantStock(wire, wh, "5.865", "0")
	b.wantStock(motor, wh, "3", "0")

	// Deliveries and reservations can't take more than there is.
	move := func(fields map[string]any) map[string]any {
		rec := map[string]any{"product": motor, "reason": "delivery", "status": "done", "from_warehouse": wh}
		for k, v := range fields {
			rec[k] = v
		}
		return rec
	}
	b.expect("POST", "/api/v1/data/stock_move", move(map[string]any{"quantity": "4"}), 422, &e)
	if !e.hasPath("/quantity") {
		t.Fatalf("over-delivery: %+v", e)
	}
	b.expect("POST", "/api/v1/data/stock_move", move(map[string]any{"quantity": "0"}), 422, nil)
	b.expect("POST", "/api/v1/data/stock_move", move(map[string]any{"quantity": "1", "status": "issued"}), 422, nil)
	b.wantStock(motor, wh, "3", "0")

	// Three concurrent reservations of 1 all count; a fourth finds nothing free.
	var wg sync.WaitGroup
	ids := make([]string, 3)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.request("POST", "/api/v1/data/stock_move", move(map[string]any{"quantity": "1", "reason": "reservation", "status": "reserved"}))
			if r.Status != 201 {
				t.Errorf("reservation %d: %d %s", i, r.Status, r.Body)
				return
			}
			var rec struct{ ID string }
			if err := json.Unmarshal(r.Body, &rec); err != nil {
				t.Error(err)
			}
			ids[i] = rec.ID
		}()
	}
	wg.Wait()
	b.wantStock(motor, wh, "3", "3")
	b.expect("POST", "/api/v1/data/stock_move", move(map[string]any{"quantity": "1", "reason": "reservation", "status": "reserved"}), 422, &e)
	if !e.hasPath("/reserved") {
		t.Fatalf("over-reservation: %+v", e)
	}
	// Released gives stock back; issued takes it out of the warehouse.
	b.expect("PATCH", "/api/v1/data/stock_move/"+ids[0], map[string]any{"status": "released"}, 200, nil)
	b.wantStock(motor, wh, "3", "2")
	b.expect("PATCH", "/api/v1/data/stock_move/"+ids[1], map[string]any{"status": "issued"}, 200, nil)
	b.wantStock(motor, wh, "2", "1")
	// Posted moves are final.
	b.expect("PATCH", "/api/v1/data/stock_move/"+ids[1], map[string]any{"status": "reserved"}, 422, nil)
	b.expect("PATCH", "/api/v1/data/stock_move/"+ids[2], map[string]any{"quantity": "2"}, 422, &e)
	if !e.hasPath("/quantity") {
		t.Fatalf("changed quantity: %+v", e)
	}
	b.expect("DELETE", "/api/v1/data/stock_move/"+ids[2], nil, 422, nil)
	b.wantStock(motor, wh, "2", "1")

	// A warehouse that allows negative stock takes it.
	b.expect("PATCH", "/api/v1/data/warehouse/"+wh.(string), map[string]any{"allow_negative_stock": true}, 200, nil)
	b.create("stock_move", move(map[string]any{"quantity": "5"}))
	b.wantStock(motor, wh, "-3", "1")
}
