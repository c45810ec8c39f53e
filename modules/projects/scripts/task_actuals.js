// A task's actual hours are the sum of its timesheets, kept by the timesheet hook with
// db.adjust. A new task starts at zero; a task with booked hours stays in its project
// (its timesheets are booked on that project).
if (record.estimate_hours != null && decimal(record.estimate_hours).lt(0)) error("/estimate_hours", "an estimate can't be negative");
if (!old) {
  record.actual_hours = "0";
  return;
}
// Sums keep the longest scale they met (2.00 + 0.5 = 2.50): hours as plain numbers.
if (record.actual_hours != null) record.actual_hours = decimal(record.actual_hours).toString();
if (old.project !== record.project && !decimal(old.actual_hours || 0).isZero()) {
  error("/project", `${old.actual_hours} hours are booked on this task in its project; it can't move to another`);
}
