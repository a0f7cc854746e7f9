/**
 * The oracle the chaos tests judge the database by, built only on the test's own crypto
 * (test/support/coder-crypto.ts) and the documented rules (docs/config.md), never on src/.
 *
 * It reads every row of every encrypted Coder table and the keys table, and checks:
 *  - every value is what was seeded: plaintext equal to the seeded text, or ciphertext that opens,
 *    with the key its key id names, to the seeded text (so no key id disagrees with its key);
 *  - every key id in the data is an active row of the keys table (nothing revoked while in use, and
 *    the new key's row was there before any value used it), and every active row's canary opens;
 *  - across an operation, every row is either exactly as it was or completely done: no row is
 *    half-written, and no value changes except as the operation says.
 */
import { openValue, type TestKey } from "../../support/coder-crypto.js";
import { encryptedColumnsOf, primaryKeyOf } from "../../support/coder-schema.js";
import { coderKeepsPlaintext, type SeedManifest } from "../../support/seed.js";
import { quoteIdent, type TestDb } from "../../support/test-db.js";

export interface Field {
  value: string | null;
  keyId: string | null;
}

export interface StoredRow {
  pk: Record<string, string>;
  /** In encryptedColumnsOf(table) order. */
  fields: Field[];
  /** workspace_secrets.cleared_at, which delete stamps. */
  clearedAt: unknown;
}

/** table → primary-key label → row. */
export type DataState = Map<string, Map<string, StoredRow>>;

/** table → primary-key label → seeded plaintext per encrypted column. */
export type SeededValues = Map<string, Map<string, (string | null)[]>>;

export type Operation =
  | { kind: "rotate"; to: string }
  | { kind: "decrypt" }
  | { kind: "delete" };

export function pkLabel(pk: Record<string, string>): string {
  return JSON.stringify(pk);
}

export function encryptedTablesOf(manifest: SeedManifest): string[] {
  return [...new Set(manifest.entries.map((entry) => entry.table))].sort();
}

export function indexManifest(manifest: SeedManifest): SeededValues {
  const index: SeededValues = new Map();
  for (const entry of manifest.entries) {
    const columns = encryptedColumnsOf(entry.table).map((column) => column.column);
    const rows = index.get(entry.table) ?? new Map<string, (string | null)[]>();
    const label = pkLabel(entry.pk);
    const values = rows.get(label) ?? columns.map(() => null);
    values[columns.indexOf(entry.column)] = entry.plaintext;
    rows.set(label, values);
    index.set(entry.table, rows);
  }
  return index;
}

export async function readCoderState(db: TestDb, tables: readonly string[]): Promise<DataState> {
  const state: DataState = new Map();
  for (const table of tables) {
    const pkColumns = primaryKeyOf(table);
    const columns = encryptedColumnsOf(table);
    const select = [
      ...pkColumns.map(quoteIdent),
      ...columns.flatMap((column) => [quoteIdent(column.column), quoteIdent(column.keyIdColumn)]),
      ...(table === "workspace_secrets" ? ["cleared_at"] : []),
    ];
    const rows = await db.query(`SELECT ${select.join(", ")} FROM ${quoteIdent(table)}`);
    const byPk = new Map<string, StoredRow>();
    for (const row of rows) {
      const pk = Object.fromEntries(pkColumns.map((name) => [name, String(row[name])]));
      byPk.set(pkLabel(pk), {
        pk,
        fields: columns.map((column) => ({ value: (row[column.column] as string | null) ?? null, keyId: (row[column.keyIdColumn] as string | null) ?? null })),
        clearedAt: row.cleared_at ?? null,
      });
    }
    state.set(table, byPk);
  }
  return state;
}

export interface KeyTableState {
  active: Set<string>;
  revoked: Set<string>;
  rows: number;
}

export interface Inspection {
  state: DataState;
  keys: KeyTableState;
  /** Values per key id, plus "plaintext" and "null". */
  valuesByKey: Record<string, number>;
  rows: number;
  values: number;
  problems: string[];
}

const MAX_PROBLEMS = 40;

/** Problems found by a check: all counted, the first MAX_PROBLEMS kept for the message. */
class Problems {
  readonly #shown: string[] = [];
  #count = 0;

  add(problem: string): void {
    this.#count++;
    if (this.#shown.length < MAX_PROBLEMS) this.#shown.push(problem);
  }

  get list(): string[] {
    const more = this.#count - this.#shown.length;
    return more > 0 ? [...this.#shown, `… and ${more} more`] : [...this.#shown];
  }
}

function isPlaintextKeyId(keyId: string | null): boolean {
  return keyId === null || keyId === "";
}

/**
 * Reads everything and checks the invariants that must hold at every moment, including straight
 * after a kill: values intact under the key their id names, key ids all active, keys table sane.
 * Rows missing from `seeded` are allowed only where `mayBeGone` says so (after delete).
 */
export async function inspectCoder(
  db: TestDb,
  seeded: SeededValues,
  keys: ReadonlyMap<string, TestKey>,
  mayBeGone: (table: string, label: string) => boolean = () => false,
  /** Values delete cleared: the row's seeded plaintext no longer applies to these fields. */
  cleared: (table: string, label: string, row: StoredRow) => boolean[] | undefined = () => undefined,
): Promise<Inspection> {
  const problems = new Problems();
  const keyState = await inspectKeysTable(db, keys, problems);
  const tables = [...seeded.keys()];
  const state = await readCoderState(db, tables);
  const valuesByKey: Record<string, number> = {};
  let rows = 0;
  let values = 0;
  for (const table of tables) {
    const columns = encryptedColumnsOf(table);
    const stored = state.get(table) as Map<string, StoredRow>;
    const expected = seeded.get(table) as Map<string, (string | null)[]>;
    for (const label of stored.keys()) if (!expected.has(label)) problems.add(`${table} ${label}: a row that was never seeded`);
    for (const [label, plaintexts] of expected) {
      const row = stored.get(label);
      if (row === undefined) {
        if (!mayBeGone(table, label)) problems.add(`${table} ${label}: row is missing`);
        continue;
      }
      rows++;
      const clearedFields = cleared(table, label, row);
      row.fields.forEach((field, index) => {
        values++;
        const where = `${table}.${columns[index]!.column} ${label}`;
        if (clearedFields?.[index]) {
          valuesByKey.cleared = (valuesByKey.cleared ?? 0) + 1;
          return;
        }
        const outcome = checkField(field, plaintexts[index] ?? null, keys);
        if (typeof outcome === "object") {
          problems.add(`${where}: ${outcome.problem}`);
          return;
        }
        valuesByKey[outcome] = (valuesByKey[outcome] ?? 0) + 1;
        if (!isPlaintextKeyId(field.keyId) && !keyState.active.has(field.keyId as string)) {
          problems.add(`${where}: under key ${field.keyId}, which is not an active row of dbcrypt_keys`);
        }
      });
    }
  }
  return { state, keys: keyState, valuesByKey, rows, values, problems: problems.list };
}

/** "null", "plaintext", or the key id the value is (correctly) under; or a problem. */
function checkField(field: Field, plaintext: string | null, keys: ReadonlyMap<string, TestKey>): string | { problem: string } {
  if (plaintext === null) {
    return field.value === null && isPlaintextKeyId(field.keyId) ? "null" : { problem: `seeded NULL, found ${field.value === null ? "NULL" : "a value"} with key id ${field.keyId}` };
  }
  if (isPlaintextKeyId(field.keyId)) {
    return field.value === plaintext ? "plaintext" : { problem: "plaintext differs from the seeded value" };
  }
  const key = keys.get(field.keyId as string);
  if (key === undefined) return { problem: `key id ${field.keyId} is none of the test's keys` };
  if (field.value === null) return { problem: `NULL value under key id ${field.keyId}` };
  let opened: string;
  try {
    opened = openValue(key.bytes, field.value);
  } catch {
    return { problem: `does not open with key ${field.keyId}, the key its key id names` };
  }
  return opened === plaintext ? (field.keyId as string) : { problem: `opens with key ${field.keyId} to something other than the seeded value` };
}

async function inspectKeysTable(db: TestDb, keys: ReadonlyMap<string, TestKey>, problems: Problems): Promise<KeyTableState> {
  const rows = await db.query<{ number: number | string; active_key_digest: string | null; revoked_key_digest: string | null; revoked_at: unknown; test: string }>(
    "SELECT number, active_key_digest, revoked_key_digest, revoked_at, test FROM dbcrypt_keys ORDER BY number",
  );
  const active = new Set<string>();
  const revoked = new Set<string>();
  const numbers = new Set<number>();
  for (const row of rows) {
    const number = Number(row.number);
    if (numbers.has(number) || number < 1) problems.add(`dbcrypt_keys: bad or repeated number ${number}`);
    numbers.add(number);
    const isActive = row.active_key_digest !== null;
    if (isActive === (row.revoked_key_digest !== null)) problems.add(`dbcrypt_keys row ${number}: exactly one of active/revoked digest must be set`);
    if ((row.revoked_at !== null) !== (row.revoked_key_digest !== null)) problems.add(`dbcrypt_keys row ${number}: revoked_at and revoked_key_digest disagree`);
    const digest = (row.active_key_digest ?? row.revoked_key_digest) as string;
    if (active.has(digest) || revoked.has(digest)) problems.add(`dbcrypt_keys: key ${digest} has two rows`);
    (isActive ? active : revoked).add(digest);
    if (isActive) {
      const key = keys.get(digest);
      if (key === undefined) problems.add(`dbcrypt_keys: active key ${digest} is none of the test's keys`);
      else {
        let canary: string | undefined;
        try {
          canary = openValue(key.bytes, row.test);
        } catch {
          canary = undefined;
        }
        if (canary !== "coder") problems.add(`dbcrypt_keys: the canary of active key ${digest} does not open to "coder" with that key`);
      }
    }
  }
  return { active, revoked, rows: rows.length };
}

/** Coder preset delete policies (docs/config.md "The Coder preset"), stated independently. */
const DELETE_ROW_TABLES = new Set(["user_links", "external_auth_links", "user_secrets", "user_ai_provider_keys", "user_chat_provider_keys", "ai_provider_keys", "chat_mcp_servers", "mcp_server_user_tokens"]);
const CLEAR_TO: Record<string, Record<string, string | null>> = {
  workspace_secrets: { value: null },
  gitsshkeys: { private_key: "" },
  crypto_keys: { secret: null },
  mcp_server_configs: { oauth2_client_secret: "", api_key_value: "", custom_headers: "{}", signing_secret: "" },
};

/** What a row must become when `delete` processes it: undefined for "deleted". */
export function afterDelete(table: string, row: StoredRow): StoredRow | undefined {
  if (!row.fields.some((field) => !isPlaintextKeyId(field.keyId))) return row;
  if (DELETE_ROW_TABLES.has(table)) return undefined;
  const clearTo = CLEAR_TO[table];
  if (clearTo === undefined) throw new Error(`no delete policy known for ${table}`);
  const columns = encryptedColumnsOf(table);
  return {
    pk: row.pk,
    fields: row.fields.map((field, index) => (isPlaintextKeyId(field.keyId) ? field : { value: clearTo[columns[index]!.column] as string | null, keyId: null })),
    clearedAt: table === "workspace_secrets" ? "(set)" : row.clearedAt,
  };
}

/** The state a value must reach for the operation to be done with it. */
function fieldIsDone(operation: Operation, table: string, field: Field, plaintext: string | null): boolean {
  switch (operation.kind) {
    case "rotate":
      if (plaintext === null) return field.value === null;
      return field.keyId === operation.to || (isPlaintextKeyId(field.keyId) && coderKeepsPlaintext(table, plaintext));
    case "decrypt":
      return isPlaintextKeyId(field.keyId);
    case "delete":
      return isPlaintextKeyId(field.keyId);
  }
}

function sameField(a: Field, b: Field): boolean {
  return a.value === b.value && a.keyId === b.keyId;
}

function sameRow(a: StoredRow, b: StoredRow): boolean {
  return a.fields.every((field, index) => sameField(field, b.fields[index] as Field)) && String(a.clearedAt) === String(b.clearedAt);
}

/**
 * Between `before` (taken when the operation started) and `now`: every row is exactly as it was,
 * or completely done. `done` demands the second for every row (the operation finished).
 */
export function checkTransition(operation: Operation, seeded: SeededValues, before: DataState, now: DataState, done: boolean): { problems: string[]; untouched: number; finished: number } {
  const problems = new Problems();
  let untouched = 0;
  let finished = 0;
  for (const [table, rowsBefore] of before) {
    const rowsNow = now.get(table) as Map<string, StoredRow>;
    for (const [label, rowBefore] of rowsBefore) {
      const rowNow = rowsNow.get(label);
      const where = `${table} ${label}`;
      if (operation.kind === "delete") {
        const target = afterDelete(table, rowBefore);
        const matchesTarget = target === undefined
          ? rowNow === undefined
          : rowNow !== undefined && target.fields.every((field, index) => sameField(field, rowNow.fields[index] as Field)) &&
            (target.clearedAt === "(set)" ? rowNow.clearedAt !== null : String(target.clearedAt) === String(rowNow.clearedAt));
        const unchanged = rowNow !== undefined && sameRow(rowBefore, rowNow);
        if (matchesTarget) finished++;
        else if (unchanged && !done) untouched++;
        else problems.add(`${where}: ${done ? "not deleted or cleared as its table's policy says" : "neither untouched nor completely deleted/cleared"}`);
        continue;
      }
      if (rowNow === undefined) {
        problems.add(`${where}: row disappeared during ${operation.kind}`);
        continue;
      }
      const plaintexts = seeded.get(table)?.get(label) ?? [];
      const needing = rowBefore.fields.map((field, index) => !fieldIsDone(operation, table, field, plaintexts[index] ?? null));
      const allDone = rowNow.fields.every((field, index) => (needing[index] ? fieldIsDone(operation, table, field, plaintexts[index] ?? null) : sameField(field, rowBefore.fields[index] as Field)));
      if (allDone && (needing.some(Boolean) || sameRow(rowBefore, rowNow))) finished++;
      else if (sameRow(rowBefore, rowNow) && !done) untouched++;
      else problems.add(`${where}: ${done ? `not finished by ${operation.kind}` : `half-written: some values changed by ${operation.kind} and others not, or a value changed that should not have`}`);
    }
  }
  return { problems: problems.list, untouched, finished };
}

/** Values (not rows) the operation still has to process, from the oracle's side. */
export function pendingValues(operation: Operation, seeded: SeededValues, now: DataState): number {
  let pending = 0;
  for (const [table, rows] of now) {
    for (const [label, row] of rows) {
      const plaintexts = seeded.get(table)?.get(label) ?? [];
      row.fields.forEach((field, index) => {
        if (!fieldIsDone(operation, table, field, plaintexts[index] ?? null)) pending++;
      });
    }
  }
  return pending;
}
