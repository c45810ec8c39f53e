// What producing args.quantity of args.product in args.warehouse needs: the product's
// active bill of materials and, per component that the warehouse can't cover, the
// shortfall — grouped into one purchase per preferred (else cheapest) supplier, or
// listed as unsourced when no supplier sells it. Reads only; the workflow writes.
const bom = db.find("bom", `product == "${args.product}" && active == true`);
if (!bom) return {bom: null, purchases: [], unsourced: []};
const runs = decimal(args.quantity).div(bom.quantity || 1, 6);
const purchases = {};
const unsourced = [];
for (const line of bom.lines || []) {
  const scrap = decimal(100).add(line.scrap_percent || 0).div(100, 6);
  const need = decimal(line.quantity).mul(runs).mul(scrap).round(4);
  const level = db.find("stock_level", `product == "${line.component}" && warehouse == "${args.warehouse}"`);
  const available = level ? decimal(level.quantity || 0).sub(level.reserved || 0) : decimal(0);
  if (available.gte(need)) continue;
  const short = need.sub(available.gt(0) ? available : 0).toString();
  const offer = db.list("supplier_item", `product == "${line.component}"`, {sort: "-preferred,unit_price", limit: 1})[0];
  if (!offer) {
    const product = db.get("product", line.component) || {};
    unsourced.push({product: line.component, name: product.name, quantity: short});
    continue;
  }
  const po = purchases[offer.supplier] || (purchases[offer.supplier] = {supplier: offer.supplier, lines: []});
  po.lines.push({product: line.component, quantity: short, unit_price: offer.unit_price});
}
return {bom: bom.id, purchases: Object.values(purchases), unsourced: unsourced};
