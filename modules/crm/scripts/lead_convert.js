// Lead conversion, as CRMs do it ("convert lead"): setting a lead's status to "converted"
// turns it, in the lead's own transaction and with the converting user's rights, into
//   - an account: the one named in convert_to_account; else the account whose name is
//     exactly the lead's company (reused, not duplicated); else a new one named after it;
//   - a contact from the lead's name, email and phone, at that account;
//   - unless create_opportunity is false, an opportunity at the first stage of the
//     pipeline, for opportunity_amount or else the estimated value, named
//     opportunity_name or else after the account and the lead.
// What it creates belongs to the lead's owner, so a rep who sees only their own rows
// keeps seeing it. The lead keeps read-only links to the three records; converting is
// final: a converted lead can neither be converted again nor changed.

const CONVERTED = "converted";
const FIRST_STAGE = "prospecting";

if (old && old.status === CONVERTED) {
  if (record.status !== CONVERTED) {
    error("/status", "a converted lead cannot go back to " + JSON.stringify(record.status || "no status") +
      "; work on its account, contact and opportunity instead");
    return;
  }
  let changed = false;
  for (const key of Object.keys(record)) {
    if (JSON.stringify(record[key]) !== JSON.stringify(old[key] == null ? undefined : old[key])) {
      error("/" + key, "a converted lead cannot be changed");
      changed = true;
    }
  }
  if (!changed) {
    error("/status", "this lead was already converted (at " + old.converted_at + "); it cannot be converted again");
  }
  return;
}
if (record.status !== CONVERTED) {
  return;
}

// Drops empty members, so an absent lead field stays absent on the new record.
function present(fields) {
  const out = {};
  for (const key of Object.keys(fields)) {
    const v = fields[key];
    if (v !== undefined && v !== null && v !== "") {
      out[key] = v;
    }
  }
  return out;
}

let ok = true;
function refuse(path, message) {
  error(path, message);
  ok = false;
}

const name = (record.name || "").trim();
const company = (record.company || "").trim();
// The contact's name: the last word is the last name, the rest the first name.
const words = name.split(/\s+/);
const lastName = words.pop();
const firstName = words.join(" ");
if (!name) {
  refuse("/name", "a lead needs a name to be converted: it becomes the contact");
} else if (lastName.length > 100 || firstName.length > 100) {
  refuse("/name", "the contact's first and last name may each have at most 100 characters");
}

let account = null;
if (record.convert_to_account) {
  account = db.get("account", record.convert_to_account);
  if (!account) {
    refuse("/convert_to_account", "there is no such account, or you may not see it");
  }
} else if (!company) {
  refuse("/company", "a lead needs a company, or an existing account to convert into (convert_to_account)");
} else if (company.length > 200) {
  refuse("/company", "an account name has at most 200 characters");
}
if (!ok) {
  return;
}

// The records belong to the lead's owner; a lead nobody owns gives them to the converter.
const NIL = "00000000-0000-0000-0000-000000000000";
const owner = record.owner || (ctx.user.id && ctx.user.id !== NIL ? ctx.user.id : undefined);

if (!account) {
  // An account of exactly that name (the oldest, among those the user may see) is reused.
  account = db.list("account", "name == " + JSON.stringify(company), {sort: "created_at", limit: 1})[0] || null;
}
if (!account) {
  account = db.create("account", present({name: company, owner: owner}));
}

const contact = db.create("contact", present({
  first_name: firstName,
  last_name: lastName,
  email: record.email,
  phone: record.phone,
  account: account.id,
  owner: owner,
}));

let opportunity = null;
if (record.create_opportunity !== false) {
  opportunity = db.create("opportunity", present({
    name: (record.opportunity_name || "").trim() || account.name + " – " + name,
    account: account.id,
    contact: contact.id,
    stage: FIRST_STAGE,
    amount: record.opportunity_amount != null ? record.opportunity_amount : record.estimated_value,
    owner: owner,
  }));
}

record.converted_account = account.id;
record.converted_contact = contact.id;
if (opportunity) {
  record.converted_opportunity = opportunity.id;
}
record.converted_at = ctx.now();
