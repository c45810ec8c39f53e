// Whether a stock level can cover a quantity: available = on hand − reserved, exact.
// The level is the first of args.levels (a query's records), else args.created.
const level = (args.levels && args.levels.length > 0) ? args.levels[0] : args.created;
const need = decimal(args.quantity || 0);
const available = decimal(level.quantity || 0).sub(level.reserved || 0);
const shortage = need.sub(available.gt(0) ? available : 0);
return {
  level: level.id,
  warehouse: level.warehouse,
  available: available.toString(),
  enough: available.gte(need),
  shortage: shortage.gt(0) ? shortage.toString() : "0",
};
