// Exact line totals and order total.
let total = decimal(0);
for (const l of record.lines || []) {
  const net = decimal(l.quantity).mul(l.unit_price).round(2);
  l.line_total = net.toFixed(2);
  total = total.add(net);
}
record.total = total.toFixed(2);
