// A posted entry must balance: total debits equal total credits, exactly.
let debit = decimal(0), credit = decimal(0);
for (const l of record.lines || []) {
  debit = debit.add(l.debit || 0);
  credit = credit.add(l.credit || 0);
}
if (record.status === "posted" && !debit.eq(credit)) {
  error("/lines", "debits (" + debit.toFixed(2) + ") and credits (" + credit.toFixed(2) + ") must balance");
}
