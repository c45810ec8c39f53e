// Line and document totals, exact to the cent: no float ever touches money.
// line_total = quantity × unit_price × (1 − discount%) ; tax on the discounted amount.
let subtotal = decimal(0), discounts = decimal(0), taxes = decimal(0);
for (const l of record.lines || []) {
  const gross = decimal(l.quantity).mul(l.unit_price);
  const discount = gross.mul(l.discount_percent || 0).div(100, 2);
  const net = gross.sub(discount).round(2);
  l.line_total = net.toFixed(2);
  subtotal = subtotal.add(gross);
  discounts = discounts.add(discount);
  taxes = taxes.add(net.mul(l.tax_rate || 0).div(100, 2));
}
record.subtotal = subtotal.round(2).toFixed(2);
record.discount_total = discounts.toFixed(2);
record.tax_total = taxes.toFixed(2);
record.total = subtotal.sub(discounts).add(taxes).round(2).toFixed(2);
