// The SLA follows the priority; the due time is set once, from the first save.
const hours = {low: 72, medium: 24, high: 8, urgent: 2};
record.sla_hours = hours[record.priority || "medium"];
if (!record.sla_due || (old && old.priority !== record.priority)) {
  const start = old && old.created_at ? new Date(old.created_at) : new Date();
  record.sla_due = new Date(start.getTime() + record.sla_hours * 3600 * 1000).toISOString();
}
