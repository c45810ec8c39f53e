// Shipment and invoice lines from a sales order's lines, the invoice date and the due
// date (payment terms in days after today).
const pick = (l, keys) => {
  const out = {};
  for (const k of keys) {
    if (l[k] != null && l[k] !== "") out[k] = l[k];
  }
  return out;
};
const order = args.order || {};
const lines = order.lines || [];
const now = String(args.now || ctx.now());
const terms = Number(args.terms_days || 30);
const due = new Date(Date.parse(now) + terms * 86400000).toISOString().slice(0, 10);
return {
  shipment_lines: lines.map((l) => pick(l, ["product", "quantity"])),
  invoice_lines: lines.map((l) => Object.assign({description: "", discount_percent: "0", tax_rate: "0"},
    pick(l, ["description", "quantity", "unit_price", "discount_percent", "tax_rate"]))),
  today: now.slice(0, 10),
  due: due,
};
