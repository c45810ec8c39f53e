// afterSave of a payment: the invoice's paid amount is the exact sum of its payments,
// and its status follows (paid once the total is covered, else partially paid).
if (!record.invoice) return;
const invoice = db.get("invoice", record.invoice);
if (!invoice || invoice.status === "cancelled") return;
let paid = decimal(0);
for (const p of db.list("payment", "invoice == " + JSON.stringify(record.invoice), {limit: 500})) {
  paid = paid.add(p.amount || 0);
}
let status = invoice.status;
if (paid.gte(invoice.total || 0)) {
  status = "paid";
} else if (!paid.isZero()) {
  status = "partially_paid";
}
if (invoice.amount_paid !== paid.toFixed(2) || invoice.status !== status) {
  db.update("invoice", invoice.id, {amount_paid: paid.toFixed(2), status: status});
}
