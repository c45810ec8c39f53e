// Default the probability from the stage and keep the expected amount exact:
// amount × probability / 100, rounded to cents.
const byStage = {prospecting: 10, qualification: 25, proposal: 50, negotiation: 75, closed_won: 100, closed_lost: 0};
if (record.probability == null || (old && old.stage !== record.stage)) {
  record.probability = String(byStage[record.stage || "prospecting"]);
}
if (record.amount != null) {
  record.expected_amount = decimal(record.amount).mul(record.probability).div(100, 2).toFixed(2);
} else {
  // No amount, no expected amount (null would fail the field's type).
  delete record.expected_amount;
}
