// beforeValidate of an invoice (it runs in the write's transaction, so the status and the
// journal never disagree: if the save fails, the reversal is rolled back with it).
//
// Cancelling an invoice that was posted to the ledger posts one reversing journal entry:
// the lines of the invoice's original entry (source "invoice:<id>") with debit and credit
// swapped, the exact amounts, source "invoice-cancel:<id>".
// Posted entries are never edited or deleted. The reversal is dated the cancellation day
// (never before the invoice date), so a closed period stays untouched.
// It is driven by the ledger, not by the old status: a draft that was never issued has
// no original entry and posts nothing; a reversal already posted is not posted again.
//
// Refused: cancelling an invoice with payments applied (a credit note or refund is the
// tool then), and reopening a cancelled invoice.
if (!old) return;
if (old.status === "cancelled") {
  if (record.status !== "cancelled") {
    error("/status", "a cancelled invoice cannot be reopened; issue a new invoice instead");
  }
  return;
}
if (record.status !== "cancelled") return;

let paid = decimal(old.amount_paid || 0);
if (decimal(record.amount_paid || 0).gt(paid)) paid = decimal(record.amount_paid);
if (paid.gt(0)) {
  error("/status", "invoice " + (old.number || old.id) + " has payments applied (" + paid.toFixed(2) +
    "), so it cannot be cancelled; issue a credit note or refund the payments instead");
  return;
}

const id = old.id;
const found = db.find("journal_entry", "source == " + JSON.stringify("invoice:" + id));
const original = found && db.get("journal_entry", found.id);
if (!original || original.status !== "posted") return; // never posted: nothing to reverse
const source = "invoice-cancel:" + id;
if (db.find("journal_entry", "source == " + JSON.stringify(source))) return; // reversed already

let date = ctx.now().slice(0, 10);
if (original.entry_date && original.entry_date > date) date = original.entry_date;
const memo = "Cancellation of invoice " + (old.number || id) +
  (original.number ? " (reverses " + original.number + ")" : "");
const lines = (original.lines || []).map((l) => ({
  gl_account: l.gl_account,
  debit: decimal(l.credit || 0).toFixed(2),
  credit: decimal(l.debit || 0).toFixed(2),
  memo: memo,
}));
if (lines.length === 0) return;
// journal_post.js (the entry's afterSave) writes its ledger rows, as for every entry.
db.create("journal_entry", {
  entry_date: date,
  memo: memo,
  status: "posted",
  source: source,
  lines: lines,
});
