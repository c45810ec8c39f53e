// New on-hand and reserved quantities of a stock level after a move: args.quantity and
// args.reserved are signed deltas (exact decimals). Reserved never goes below zero.
const level = args.level || {};
let reserved = decimal(level.reserved || 0).add(args.reserved || 0);
if (reserved.lt(0)) reserved = decimal(0);
return {
  quantity: decimal(level.quantity || 0).add(args.quantity || 0).toString(),
  reserved: reserved.toString(),
};
