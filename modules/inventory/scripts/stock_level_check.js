// Stock never goes below zero and no more is reserved than is on hand, unless the
// warehouse allows negative stock. Levels change through stock moves, so this is what
// refuses a delivery, consumption or reservation the stock can't cover.
const quantity = decimal(record.quantity || 0);
const reserved = decimal(record.reserved || 0);
if (reserved.lt(0)) error("/reserved", "reserved stock can't be negative");
if (!quantity.lt(0) && !reserved.gt(quantity)) return;
const warehouse = db.get("warehouse", record.warehouse) || {};
if (warehouse.allow_negative_stock) return;
const product = db.get("product", record.product) || {};
const what = `${product.name} (${product.sku}) in ${warehouse.code}`;
const had = old ? decimal(old.quantity || 0).sub(old.reserved || 0).toString() : "0";
if (quantity.lt(0)) {
  error("/quantity", `not enough stock of ${what}: ${had} available, this would leave ${quantity}`);
  return;
}
error("/reserved", `not enough stock of ${what} to reserve: ${quantity} on hand, ${reserved} would be reserved`);
