// The sales order lines of a won opportunity, copied from its opportunity lines (the
// sales totals hook computes line and document totals exactly when the order is saved).
const pick = (l, keys) => {
  const out = {};
  for (const k of keys) {
    if (l[k] != null && l[k] !== "") out[k] = l[k];
  }
  return out;
};
// Every optional line field gets a value: a line field left null makes later updates of
// the order fail validation (child rows read back as null).
const defaults = {description: "", discount_percent: "0", tax_rate: "0"};
const keys = ["product", "description", "quantity", "unit_price", "discount_percent", "tax_rate"];
return {
  lines: (args.lines || []).map((l) => Object.assign({}, defaults, pick(l, keys))),
  today: String(args.now || ctx.now()).slice(0, 10),
};
