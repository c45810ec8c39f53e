// Whether stock can cover a quantity: available = on hand − reserved, exact. The level
// is the first of args.levels (a query's records, best stocked first); with none, the
// product has no stock anywhere yet and args.warehouse is where it will be made.
const level = (args.levels && args.levels.length > 0) ? args.levels[0] : {warehouse: args.warehouse};
const need = decimal(args.quantity || 0);
const available = decimal(level.quantity || 0).sub(level.reserved || 0);
const shortage = need.sub(available.gt(0) ? available : 0);
return {
  warehouse: level.warehouse,
  available: available.toString(),
  enough: available.gte(need),
  shortage: shortage.gt(0) ? shortage.toString() : "0",
};
