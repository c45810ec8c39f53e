// Stock moves are the ledger and stock levels follow them, in the same transaction, by
// atomic adjustments (db.adjust), so concurrent moves of one product never lose one.
// A move that is done changes quantities on hand: out of from_warehouse, into
// to_warehouse (a transfer has both). A reservation (status reserved) holds stock in
// from_warehouse; released gives it back, issued takes the reserved goods out of the
// warehouse (on hand and reserved both go down, in one adjustment, so the stock is
// never counted as free in between). Posted moves are final; a mistake is corrected by
// another move.
const q = decimal(record.quantity);
if (!q.gt(0)) error("/quantity", "a move's quantity must be more than zero");

const levelIn = (warehouse) =>
  db.find("stock_level", `product == "${record.product}" && warehouse == "${warehouse}"`) ||
  db.create("stock_level", {product: record.product, warehouse: warehouse, quantity: "0", reserved: "0"});
const adjust = (warehouse, amounts) => db.adjust("stock_level", levelIn(warehouse).id, amounts);

if (old) {
  for (const k of ["product", "quantity", "from_warehouse", "to_warehouse", "reason"]) {
    if (String(old[k] ?? "") !== String(record[k] ?? "")) {
      error("/" + k, "a posted move can't be changed; post a correcting move instead");
    }
  }
  if (old.status === record.status) return;
  if (old.status !== "reserved" || (record.status !== "released" && record.status !== "issued")) {
    error("/status", `a move can't go from ${old.status} to ${record.status}`);
  }
  const amounts = {reserved: q.neg().toString()};
  if (record.status === "issued") amounts.quantity = q.neg().toString();
  adjust(record.from_warehouse, amounts);
  return;
}

if (record.status === "reserved") {
  if (!record.from_warehouse) error("/from_warehouse", "a reservation holds stock in a warehouse");
  adjust(record.from_warehouse, {reserved: q.toString()});
} else if (record.status === "done") {
  if (!record.from_warehouse && !record.to_warehouse) {
    error("/to_warehouse", "a move needs a warehouse to come from or go to");
  }
  if (record.from_warehouse) adjust(record.from_warehouse, {quantity: q.neg().toString()});
  if (record.to_warehouse) adjust(record.to_warehouse, {quantity: q.toString()});
} else {
  error("/status", "a new move is either done or reserved");
}
