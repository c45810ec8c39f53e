// afterSave of a journal entry: when it becomes posted, each line is written to the
// ledger (gl_posting) once, with its account code, so a trial balance is one report
// query: gl_posting grouped by account_code summing debit and credit.
if (record.status !== "posted" || (old && old.status === "posted")) return;
// Once per entry, however often it is saved.
if (db.find("gl_posting", "journal_entry == " + JSON.stringify(record.id))) return;
const codes = {};
for (const l of record.lines || []) {
  if (!(l.gl_account in codes)) {
    const a = db.get("gl_account", l.gl_account);
    codes[l.gl_account] = a ? a.code : null;
  }
  db.create("gl_posting", {
    journal_entry: record.id,
    entry_date: record.entry_date,
    gl_account: l.gl_account,
    account_code: codes[l.gl_account],
    debit: decimal(l.debit || 0).toFixed(2),
    credit: decimal(l.credit || 0).toFixed(2),
    memo: l.memo || record.memo || null,
  });
}
