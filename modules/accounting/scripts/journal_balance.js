// A posted entry must balance: total debits equal total credits, exactly.
// A posted entry is final: its lines and status no longer change (post a reversing
// entry instead), so the ledger postings made from it stay true.
let debit = decimal(0), credit = decimal(0);
for (const l of record.lines || []) {
  debit = debit.add(l.debit || 0);
  credit = credit.add(l.credit || 0);
}
if (record.status === "posted" && !debit.eq(credit)) {
  error("/lines", "debits (" + debit.toFixed(2) + ") and credits (" + credit.toFixed(2) + ") must balance");
}
if (old && old.status === "posted") {
  if (record.status !== "posted") {
    error("/status", "a posted entry cannot be unposted; post a reversing entry instead");
  }
  const key = (lines) => JSON.stringify((lines || []).map((l) =>
    [l.gl_account, decimal(l.debit || 0).toFixed(2), decimal(l.credit || 0).toFixed(2)]));
  if (Array.isArray(record.lines) && key(record.lines) !== key(old.lines)) {
    error("/lines", "a posted entry's lines cannot be changed; post a reversing entry instead");
  }
}
