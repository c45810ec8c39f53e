// Timesheets are the ledger behind project and task actuals; the totals follow them in
// the same transaction, by atomic adjustments (db.adjust), so concurrent bookings on one
// project never lose one. A timesheet costs its hours × the employee's hourly cost when
// it was booked: the rate is kept on the timesheet, so a later rate change rewrites no
// history (an edit keeps the rate unless the employee changes).
// A timesheet counts once it has a cost: create adds it to its project (and task); an
// edit moves the difference, out of the old project and task and into the new ones; a
// delete (beforeDelete, `record` is the stored timesheet) takes it out again. Timesheets
// booked before costs existed have none: the first save counts them.
// Time is not booked on, moved off or removed from a project that is done or cancelled.
const CLOSED = ["done", "cancelled"];
const deleting = ctx.hook === "beforeDelete";
let refused = false;
const refuse = (path, message) => { refused = true; error(path, message); };

// What the stored timesheet contributed: nothing unless it was counted (has a cost).
const before = deleting ? record : old;
const was = before && before.cost != null
  ? {project: before.project, task: before.task || null, hours: decimal(before.hours), cost: decimal(before.cost)}
  : null;
let now = null;

if (!deleting) {
  const hours = decimal(record.hours);
  if (!hours.gt(0) || hours.gt(24)) refuse("/hours", `an entry is more than 0 and at most 24 hours, not ${record.hours}`);

  const project = db.get("project", record.project);
  if (!project) refuse("/project", "no such project");
  if (record.task) {
    const task = db.get("task", record.task);
    if (!task) refuse("/task", "no such task");
    else if (project && task.project !== project.id) refuse("/task", `task "${task.title}" belongs to another project`);
  }

  let rate = old && old.employee === record.employee ? old.hourly_cost : undefined;
  if (rate == null) {
    const employee = db.get("employee", record.employee);
    if (!employee) refuse("/employee", "no such employee, or not one you may book time for");
    else rate = employee.hourly_cost;
  }
  if (rate != null && decimal(rate).lt(0)) refuse("/employee", `the hourly cost can't be negative (${rate})`);
  if (refused) return;

  // An employee without an hourly cost books hours at no cost (and no rate is kept, so
  // an edit after HR sets one prices it).
  if (rate != null) record.hourly_cost = rate;
  else delete record.hourly_cost;
  const cost = hours.mul(rate ?? 0).round(2);
  record.cost = cost.toFixed(2);
  now = {project: record.project, task: record.task || null, hours: hours, cost: cost};
}

// The net change per project and per task.
const deltas = new Map();
const add = (entity, id, hours, cost) => {
  if (!id) return;
  const key = entity + " " + id;
  const d = deltas.get(key) || {entity: entity, id: id, hours: decimal(0), cost: decimal(0)};
  d.hours = d.hours.add(hours);
  d.cost = d.cost.add(cost);
  deltas.set(key, d);
};
if (was) {
  add("project", was.project, was.hours.neg(), was.cost.neg());
  add("task", was.task, was.hours.neg(), 0);
}
if (now) {
  add("project", now.project, now.hours, now.cost);
  add("task", now.task, now.hours, 0);
}

// Projects before tasks, each by id: concurrent writers take the row locks in one order.
const changes = [...deltas.values()]
  .filter((d) => !d.hours.isZero() || !d.cost.isZero())
  .sort((a, b) => a.entity === b.entity ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : (a.entity === "project" ? -1 : 1));
for (const d of changes) {
  if (d.entity === "project") {
    const project = db.get("project", d.id);
    if (!project) continue; // deleted: nothing left to keep in step
    if (CLOSED.includes(project.status)) {
      refuse("/project", `project ${project.name} is ${project.status}: its booked time can't change`);
      return;
    }
    db.adjust("project", d.id, {actual_hours: d.hours.toString(), actual_cost: d.cost.toFixed(2)});
  } else if (db.get("task", d.id)) {
    db.adjust("task", d.id, {actual_hours: d.hours.toString()});
  }
}
