import type { EncryptionKey } from "../crypto/encryption-key.js";
import { Keyring } from "../crypto/keyring.js";
import { DbcryptError } from "../errors.js";
import type { KeyRow } from "../db/dialect.js";
import { takeCensus, type Census } from "./census.js";
import { recordKeys } from "./keys-writer.js";
import { assertKeysCoverDatabase, keySourceLines, unrecordedKeysInUse } from "./keys-state.js";
import type { OperationPlan, PlanLine, WriteRequest } from "./operation.js";
import { decryptTransform } from "./row-transform.js";
import { writeOperation } from "./write-operation.js";

export interface DecryptRequest extends WriteRequest {
  keys: EncryptionKey[];
  /** Values no supplied key opens (no key id stored) are reported and left, not a reason to refuse. */
  skipUnopenable?: boolean;
}

/**
 * Turns encryption off: writes plaintext with NULL key ids, then revokes the supplied keys.
 * Unlike Coder's, it inserts no key row and a second run after success is a no-op, not an error.
 */
export const decryptOperation = writeOperation<DecryptRequest>("decrypt", async (dialect, { schema, keys }, request) => {
  await schema.scheme.start?.("read");
  const keyring = new Keyring(undefined, [...request.keys.map((key) => key.toSchemeKey(schema.scheme)), ...(schema.scheme.configuredKeys?.().read ?? [])]);
  if (keyring.size === 0) {
    throw new DbcryptError("usage", "no keys given: --keys is required", { hint: "pass --keys or set DBCRYPT_DECRYPT_KEYS (for Kubernetes encryption configs, --encryption-config)", subject: { flag: "--keys" } });
  }
  const census = await takeCensus(dialect, schema, keyring);
  assertKeysCoverDatabase(keys, keyring, census, "--keys", { skipUnopenable: request.skipUnopenable === true });
  const toRecord = unrecordedKeysInUse(keyring, census, keys, undefined);
  const plan = decryptPlan(dialect.target, schema.preset, census, keys);
  plan.keySources = keySourceLines(schema.scheme, request.keys, schema.scheme.configuredKeys?.().read ?? []);
  plan.keyActions.unshift(...toRecord.map((key) => `record key ${key.id} in the keys table, then revoke it once no value uses it`));
  return {
    plan,
    schema,
    census,
    keyring,
    filter: { kind: "encrypted" },
    action: { kind: "rewrite", transform: decryptTransform(schema.scheme, request.keys) },
    revokeCandidates: [...activeIds(keys), ...toRecord.map((key) => key.id)],
    beforeWrites: (keysWriter) => recordKeys(keysWriter, toRecord, schema.scheme.canaryPlaintext, request.emit),
    continueWith: "dbcrypt decrypt with the same keys",
  };
});

function activeIds(keys: KeyRow[]): string[] {
  return keys.flatMap((row) => (row.activeKeyDigest === null ? [] : [row.activeKeyDigest]));
}

function decryptPlan(target: string, preset: string, census: Census, keys: KeyRow[]): OperationPlan {
  const lines: PlanLine[] = [];
  for (const column of census.columns) {
    for (const [keyId, rows] of column.encryptedByKeyId) lines.push({ column: column.label, from: keyId, to: "plaintext", rows });
  }
  const keyActions = activeIds(keys).map((keyId) => `revoke key ${keyId} once no value uses it`);
  const totalRows = lines.reduce((sum, line) => sum + line.rows, 0);
  return { command: "decrypt", target, preset, lines, keyActions, totalRows, nothingToDo: totalRows === 0 && keyActions.length === 0, warnings: [], keySources: [] };
}
