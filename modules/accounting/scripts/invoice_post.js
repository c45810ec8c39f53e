// afterSave of an invoice: when it leaves draft (issued, or paid at once) it is posted to
// the ledger exactly once, as a balanced journal entry with exact amounts:
//   debit 1100 Accounts receivable  total
//   credit 4000 Revenue             total − tax (the net of discounts)
//   credit 2200 Tax payable         tax
// The entry's source "invoice:<id>" makes the posting idempotent.
const open = ["issued", "partially_paid", "paid", "overdue"];
if (!open.includes(record.status)) return;
if (old && open.includes(old.status)) return; // posted on an earlier transition
// Cancelled since (this runs after the commit): there is nothing to post, and the
// cancellation (scripts/invoice_cancel.js) found nothing to reverse.
const current = db.get("invoice", record.id);
if (current && current.status === "cancelled") return;
const source = "invoice:" + record.id;
if (db.find("journal_entry", "source == " + JSON.stringify(source))) return;

const accounts = {};
for (const code of ["1100", "4000", "2200"]) {
  const a = db.find("gl_account", "code == " + JSON.stringify(code));
  if (!a) {
    error("/status", "the chart of accounts has no ledger account " + code + " to post this invoice to");
    return;
  }
  accounts[code] = a.id;
}
const total = decimal(record.total || 0);
const tax = decimal(record.tax_total || 0);
if (total.isZero() && tax.isZero()) return;
const revenue = total.sub(tax);
const memo = "Invoice " + (record.number || record.id);
const lines = [
  {gl_account: accounts["1100"], debit: total.toFixed(2), credit: "0.00", memo: memo},
  {gl_account: accounts["4000"], debit: "0.00", credit: revenue.toFixed(2), memo: memo},
];
if (!tax.isZero()) {
  lines.push({gl_account: accounts["2200"], debit: "0.00", credit: tax.toFixed(2), memo: memo});
}
db.create("journal_entry", {
  entry_date: record.invoice_date || ctx.now().slice(0, 10),
  memo: memo,
  status: "posted",
  source: source,
  lines: lines,
});
