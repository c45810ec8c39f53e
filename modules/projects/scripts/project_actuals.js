// A project's actual hours and cost are the sum of its timesheets, kept by the timesheet
// hook with db.adjust (read-only fields: only scripts write them). A new project starts
// at zero.
if (record.budget != null && decimal(record.budget).lt(0)) error("/budget", "a budget can't be negative");
if (old) {
  // Sums keep the longest scale they met (2.00 + 0.5 = 2.50): hours as plain numbers,
  // cost to the cent.
  if (record.actual_hours != null) record.actual_hours = decimal(record.actual_hours).toString();
  if (record.actual_cost != null) record.actual_cost = decimal(record.actual_cost).toFixed(2);
  return;
}
record.actual_hours = "0";
record.actual_cost = "0.00";
