// Completing a production order moves the stock in the same transaction: each component
// of the bill of materials is consumed from the order's warehouse (component quantity ×
// order quantity ÷ BOM output quantity, plus scrap) and the product is received into it.
// Stock levels refuse a consumption the stock can't cover, so an order whose components
// are short can't be completed.
if (record.status !== "done" || (old && old.status === "done")) return;
if (old && old.status === "cancelled") error("/status", "a cancelled production order can't be completed");
if (!record.warehouse) error("/warehouse", "a production order needs the warehouse it consumes from and produces into");
const bom = record.bom
  ? db.get("bom", record.bom)
  : db.find("bom", `product == "${record.product}" && active == true`);
if (!bom) error("/bom", "the product has no active bill of materials");
if (bom.product !== record.product) error("/bom", "the bill of materials is for another product");
record.bom = bom.id;

const now = ctx.now();
const reference = record.number || "production";
const runs = decimal(record.quantity).div(bom.quantity || 1, 6);
for (const line of bom.lines || []) {
  const scrap = decimal(100).add(line.scrap_percent || 0).div(100, 6);
  db.create("stock_move", {
    product: line.component,
    from_warehouse: record.warehouse,
    quantity: decimal(line.quantity).mul(runs).mul(scrap).round(4).toString(),
    reason: "consumption",
    status: "done",
    reference: reference,
    moved_at: now,
  });
}
db.create("stock_move", {
  product: record.product,
  to_warehouse: record.warehouse,
  quantity: decimal(record.quantity).toString(),
  reason: "production",
  status: "done",
  reference: reference,
  moved_at: now,
});
