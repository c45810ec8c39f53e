// afterSave of a payment: a new payment is posted to the ledger (debit 1000 Cash, credit
// 1100 Accounts receivable, exactly once: source "payment:<id>"); the invoice's paid
// amount is the exact sum of its payments, and its status follows (paid once the total
// is covered, else partially paid).
if (!old) {
  const source = "payment:" + record.id;
  const amount = decimal(record.amount || 0);
  if (!amount.isZero() && !db.find("journal_entry", "source == " + JSON.stringify(source))) {
    const cash = db.find("gl_account", "code == \"1000\"");
    const receivable = db.find("gl_account", "code == \"1100\"");
    if (!cash || !receivable) {
      error("/amount", "the chart of accounts needs ledger accounts 1000 and 1100 to post this payment");
      return;
    }
    const inv = record.invoice ? db.get("invoice", record.invoice) : null;
    const memo = "Payment " + (record.reference || record.id) + (inv ? " for " + (inv.number || inv.id) : "");
    db.create("journal_entry", {
      entry_date: record.paid_on || ctx.now().slice(0, 10),
      memo: memo,
      status: "posted",
      source: source,
      lines: [
        {gl_account: cash.id, debit: amount.toFixed(2), credit: "0.00", memo: memo},
        {gl_account: receivable.id, debit: "0.00", credit: amount.toFixed(2), memo: memo},
      ],
    });
  }
}
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
