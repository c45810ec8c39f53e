// Type declarations for Tessera script hooks (goja, ES2020-ish, strict mode).
// Reference it from an editor with:  /// <reference path="tessera-script.d.ts" />
// A script is the body of a function: `return` a value where one is expected
// (endpoints, expressions), change `record` in before-hooks, call error() to reject.

/** A record as JSON: decimals and money are exact strings ("12.50"), dates are
 * "YYYY-MM-DD", date-times RFC 3339 strings, relations are ids, child lines arrays. */
type TesseraRecord = { id?: string; version?: number; [field: string]: unknown };

/** The record being written. Mutable in beforeValidate and beforeSave. */
declare const record: TesseraRecord;

/** The stored version on updates and deletes; null on create. */
declare const old: TesseraRecord | null;

declare const ctx: {
  /** Who triggered the write or the request. */
  readonly user: { readonly id: string; readonly is_admin: boolean; readonly roles: readonly string[] };
  /** The entity the hook belongs to. */
  readonly entity: string;
  /** beforeValidate | beforeSave | afterSave | beforeDelete | endpoint. */
  readonly hook: string;
  /** The module of an endpoint script. */
  readonly module?: string;
  /** True in POST /scripts/test and `tessera script test`: nothing will be kept. */
  readonly dryRun?: boolean;
  /** The current time as an RFC 3339 string (UTC). */
  now(): string;
};

/** Data access through the engine, in the transaction of the write that ran the hook and
 * with the caller's permissions. Writes go through the one write path (validation, hooks,
 * history, outbox); hooks may nest writes at most 4 deep. */
declare const db: {
  /** A record by id, or null. */
  get(entity: string, id: string): TesseraRecord | null;
  /** The first record matching a filter expression (e.g. `status == "open" && amount > "100"`), or null. */
  find(entity: string, filter: string): TesseraRecord | null;
  /** Records matching a filter; at most 500. */
  list(entity: string, filter: string, options?: { sort?: string; limit?: number }): TesseraRecord[];
  /** Creates a record; throws with the validation problems when it is not valid. */
  create(entity: string, record: Record<string, unknown>): TesseraRecord;
  /** Applies a JSON merge patch to a record. */
  update(entity: string, id: string, patch: Record<string, unknown>): TesseraRecord;
  /** Adds signed amounts (decimal strings, e.g. `{quantity: "-2.5"}`) to number fields of a
   * record, exactly and atomically: the sum is taken under the row's lock, so concurrent
   * adjustments of one record all count. Then saved like an update (rules, hooks, history). */
  adjust(entity: string, id: string, amounts: Record<string, string | number>): TesseraRecord;
};

/** An exact decimal. Never use JavaScript numbers for money. */
interface Decimal {
  add(y: DecimalLike): Decimal;
  sub(y: DecimalLike): Decimal;
  mul(y: DecimalLike): Decimal;
  /** Rounded half away from zero to `places` (default 16). Throws on division by zero. */
  div(y: DecimalLike, places?: number): Decimal;
  round(places: number): Decimal;
  neg(): Decimal;
  abs(): Decimal;
  cmp(y: DecimalLike): -1 | 0 | 1;
  eq(y: DecimalLike): boolean;
  gt(y: DecimalLike): boolean;
  gte(y: DecimalLike): boolean;
  lt(y: DecimalLike): boolean;
  lte(y: DecimalLike): boolean;
  isZero(): boolean;
  /** Exactly `places` decimals, e.g. decimal("1.5").toFixed(2) === "1.50". */
  toFixed(places: number): string;
  toString(): string;
  toJSON(): string;
}
type DecimalLike = Decimal | string | number;

/** Makes an exact decimal from a string ("12.50"), an integer or another decimal. */
declare function decimal(value?: DecimalLike | null): Decimal;

/** Rejects the write: the client gets 422 with this message at this JSON pointer
 * (e.g. "/lines/0/qty"). Several calls report several problems. */
declare function error(path: string, message: string): void;

/** Captured per call (at most 200 lines), returned by POST /scripts/test and kept in
 * GET /scripts/{name}/logs. */
declare const console: {
  log(...values: unknown[]): void;
  info(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  error(...values: unknown[]): void;
};

/** In endpoint scripts (/api/v1/x/{module}/{name}): the request. Return the response body. */
declare const request: {
  readonly method: "GET" | "POST";
  readonly query: Readonly<Record<string, string>>;
  readonly body: unknown;
};
