import type { EncryptionKey } from "../crypto/encryption-key.js";
import { Keyring, UNIDENTIFIED_KEY_ID } from "../crypto/keyring.js";
import type { KeyRow } from "../db/dialect.js";
import type { SchemaPlan } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";
import { takeCensus, type Census } from "./census.js";
import { activeKeyProblems, keySourceLines, type KeySourceLine } from "./keys-state.js";
import { isPlaintextField, prepareToOpen, readCells } from "./cells.js";
import { openField, reportableKeyId } from "./row-plans.js";
import { describeRowKey } from "./runner.js";
import { loadSchema, type ReadSession } from "./session.js";

export interface StatusRequest {
  /** The keys to check the keys table and (with verify) the data against; empty: no such checks. */
  keys: EncryptionKey[];
  requireKeyId: string | undefined;
  requireEncrypted: boolean;
  verify: boolean;
  batchSize: number;
}

export interface StatusReport {
  target: string;
  preset: string;
  keysTable: { name: string; exists: boolean };
  keys: (KeyRow & { values: number })[];
  columns: {
    column: string;
    /** null when the scheme keeps key ids inside the values. */
    keyIdColumn: string | null;
    source: string;
    keepPlaintext: string;
    encrypted: Record<string, number>;
    plaintext: { total: number; nulls: number; toEncrypt: number; keptPlaintext: number };
  }[];
  refusedTables: { table: string; columns: string[]; reason: string }[];
  /** Which source supplied each key status was given (--keys, an encryption config). */
  keySources: KeySourceLine[];
  /** What the operator should know but that is not a problem (exit code unchanged): preset gaps. */
  warnings: { table: string; column: string; message: string }[];
  verified: { values: number; undecryptable: { column: string; rowKey: Record<string, string>; keyId: string | null; reason: string }[] } | undefined;
  problems: string[];
}

/** Read-only census and health check: the CI gate. Problems make the CLI exit 3. */
export async function status(session: ReadSession, request: StatusRequest): Promise<StatusReport> {
  const { dialect } = session;
  const keysTableExists = await dialect.keysTableExists();
  const schema = await loadSchema(session);
  try {
    return await statusOf(session, schema, keysTableExists, request);
  } finally {
    await schema.scheme.close?.();
  }
}

async function statusOf(session: ReadSession, schema: SchemaPlan, keysTableExists: boolean, request: StatusRequest): Promise<StatusReport> {
  const { dialect } = session;
  // Only decrypting needs a KMS plugin; the census reads key ids from the cells.
  if (request.verify) await schema.scheme.start?.("read");
  const keys = keysTableExists ? await dialect.readKeys() : [];
  const supplied = [...request.keys.map((key) => key.toSchemeKey(schema.scheme)), ...(schema.scheme.configuredKeys?.().read ?? [])];
  const keyring = supplied.length > 0 ? new Keyring(undefined, supplied) : undefined;
  const census = await takeCensus(dialect, schema, keyring);
  const problems = findProblems(dialect.keysTable, keysTableExists, keys, census, schema, keyring, request);
  const verified = request.verify && keyring ? await verifyValues(session, schema, keyring, request.batchSize) : undefined;
  for (const failure of verified?.undecryptable ?? []) {
    problems.push(`${failure.column} row ${JSON.stringify(failure.rowKey)} under key ${failure.keyId ?? "-"} does not decrypt: ${failure.reason}`);
  }
  const valuesByKey = new Map<string, number>();
  for (const column of census.columns) for (const [keyId, rows] of column.encryptedByKeyId) valuesByKey.set(keyId, (valuesByKey.get(keyId) ?? 0) + rows);
  return {
    target: dialect.target,
    preset: schema.preset,
    keysTable: { name: dialect.keysTable, exists: keysTableExists },
    keys: keys.map((row) => ({ ...row, test: "(canary)", values: valuesByKey.get(row.activeKeyDigest ?? row.revokedKeyDigest ?? "") ?? 0 })),
    columns: census.columns.map((column) => ({
      column: column.label,
      keyIdColumn: column.column.keyIdColumn ?? null,
      source: column.column.source,
      keepPlaintext: column.column.keepPlaintext,
      encrypted: Object.fromEntries(column.encryptedByKeyId),
      plaintext: column.plaintext,
    })),
    keySources: keySourceLines(schema.scheme, request.keys, schema.scheme.configuredKeys?.().read ?? []),
    refusedTables: schema.refused.map((table) => ({ table: tableLabel(table.ref), columns: table.columns, reason: table.reason })),
    warnings: schema.warnings.map((warning) => ({ table: tableLabel(warning.ref), column: warning.column, message: warning.message })),
    verified,
    problems,
  };
}

function findProblems(keysTable: string, exists: boolean, keys: KeyRow[], census: Census, schema: SchemaPlan, keyring: Keyring | undefined, request: StatusRequest): string[] {
  const problems: string[] = [];
  if (!exists) problems.push(`the database has no ${keysTable} table`);
  for (const table of schema.refused) problems.push(`${tableLabel(table.ref)} ${table.reason}`);
  const active = new Set(keys.flatMap((row) => (row.activeKeyDigest === null ? [] : [row.activeKeyDigest])));
  const revoked = new Set(keys.flatMap((row) => (row.revokedKeyDigest === null ? [] : [row.revokedKeyDigest])));
  for (const column of census.columns) {
    for (const [keyId, rows] of column.encryptedByKeyId) {
      if (keyId === UNIDENTIFIED_KEY_ID) {
        // The scheme stores no key id: only trial decryption with supplied keys can tell.
        if (keyring) problems.push(`${column.label}: ${rows} encrypted value(s) that none of the supplied keys opens`);
        else if (request.requireKeyId !== undefined) problems.push(`${column.label}: ${rows} encrypted value(s) whose key cannot be told without --key (this scheme stores no key ids)`);
        continue;
      }
      if (revoked.has(keyId)) problems.push(`${column.label}: ${rows} value(s) under revoked key ${keyId}`);
      // Where values carry no key id the application never reads the keys table: it is dbcrypt's
      // record only, and a key it has not recorded yet (before the first run) is no fault.
      else if (!active.has(keyId) && schema.scheme.keysTableIsDbcrypts !== true) problems.push(`${column.label}: ${rows} value(s) under key ${keyId}, which is not in ${keysTable}`);
      if (keyring && !keyring.has(keyId)) problems.push(`${column.label}: ${rows} value(s) under key ${keyId}, which was not supplied`);
      if (request.requireKeyId !== undefined && keyId !== request.requireKeyId) problems.push(`${column.label}: ${rows} value(s) under key ${keyId}, not the required key ${request.requireKeyId}`);
    }
    const plaintextToEncrypt = column.plaintext.toEncrypt;
    if (plaintextToEncrypt > 0 && (request.requireEncrypted || request.requireKeyId !== undefined)) {
      problems.push(`${column.label}: ${plaintextToEncrypt} plaintext value(s) that should be encrypted`);
    }
  }
  // Identity and KMS keys are never recorded in the keys table; the census above is the whole check for them.
  const neverRecorded = request.requireKeyId !== undefined && keyring?.get(request.requireKeyId)?.unkeyed === true;
  if (request.requireKeyId !== undefined && !active.has(request.requireKeyId) && !neverRecorded) {
    problems.push(`the required key ${request.requireKeyId} is not an active key in ${keysTable}`);
  }
  if (keyring) {
    const { unknown, canaryFailures } = activeKeyProblems(keys, keyring);
    for (const keyId of unknown) problems.push(`active key ${keyId} in ${keysTable} was not supplied`);
    for (const keyId of canaryFailures) problems.push(`the canary of active key ${keyId} does not decrypt with the supplied key`);
  }
  return problems;
}

/** Decrypts every encrypted value, batch by batch; reports failures by row key, never by value. */
async function verifyValues(session: ReadSession, schema: SchemaPlan, keyring: Keyring, batchSize: number): Promise<NonNullable<StatusReport["verified"]>> {
  const undecryptable: NonNullable<StatusReport["verified"]>["undecryptable"] = [];
  let values = 0;
  for (const table of schema.tables) {
    let after: readonly unknown[] | undefined;
    for (;;) {
      const rows = await readCells(session.dialect, schema.scheme, table, { kind: "encrypted" }, after, batchSize);
      if (rows.length === 0) break;
      await prepareToOpen(schema.scheme, table, rows);
      after = rows[rows.length - 1]?.rowKey;
      for (const row of rows) {
        row.fields.forEach((field, index) => {
          if (isPlaintextField(field)) return;
          values++;
          const column = `${tableLabel(table.ref)}.${table.columns[index]?.column}`;
          const opened = openField(keyring, field, row.context);
          const reason = opened.ok ? undefined : opened.reason;
          if (reason !== undefined) undecryptable.push({ column, rowKey: describeRowKey(table, row.rowKey), keyId: reportableKeyId(field.keyId), reason });
        });
      }
      if (rows.length < batchSize) break;
    }
  }
  return { values, undecryptable };
}
