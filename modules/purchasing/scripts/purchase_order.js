// Exact line totals and order total; and when the order becomes received, its lines
// are received into its warehouse as stock moves (in the same transaction, so the
// status and the stock can't disagree).
let total = decimal(0);
for (const l of record.lines || []) {
  const net = decimal(l.quantity).mul(l.unit_price).round(2);
  l.line_total = net.toFixed(2);
  total = total.add(net);
}
record.total = total.toFixed(2);

if (record.status !== "received" || (old && old.status === "received")) return;
if (old && old.status === "cancelled") error("/status", "a cancelled purchase order can't be received");
if (!record.warehouse) error("/warehouse", "a purchase order is received into a warehouse");
const now = ctx.now();
for (const l of record.lines || []) {
  db.create("stock_move", {
    product: l.product,
    to_warehouse: record.warehouse,
    quantity: l.quantity,
    reason: "receipt",
    status: "done",
    reference: record.number || "purchase",
    moved_at: now,
  });
}
