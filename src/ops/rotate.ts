import type { EncryptionKey } from "../crypto/encryption-key.js";
import { Keyring } from "../crypto/keyring.js";
import { DbcryptError } from "../errors.js";
import { takeCensus, type Census } from "./census.js";
import { assertKeysCoverDatabase, keySourceLines, unrecordedKeysInUse } from "./keys-state.js";
import { recordKeys } from "./keys-writer.js";
import type { SchemeKey } from "../crypto/schemes/value-scheme.js";
import type { OperationPlan, PlanLine, WriteRequest } from "./operation.js";
import { rotateTransform } from "./row-transform.js";
import { writeOperation } from "./write-operation.js";
import type { KeyRow } from "../db/dialect.js";

export interface RotateRequest extends WriteRequest {
  /** undefined where the scheme's configuration names the new key (--new-encryption-config). */
  newKey: EncryptionKey | undefined;
  oldKeys: EncryptionKey[];
  /** Values no supplied key opens (no key id stored) are reported and left, not a reason to refuse. */
  skipUnopenable?: boolean;
}

/**
 * Re-encrypts every value under the new key and encrypts leftover plaintext (per the column's
 * plaintext rule), then revokes the old keys the data no longer uses. Mirrors Coder's
 * `server dbcrypt rotate`, batched and including the tables Coder's CLI misses.
 */
export const rotateOperation = writeOperation<RotateRequest>("rotate", async (dialect, { schema, keys, dryRun }, request) => {
  const { scheme } = schema;
  await scheme.start?.(dryRun ? "plan" : "write");
  const configured = scheme.configuredKeys?.();
  const newKey = request.newKey?.toSchemeKey(scheme) ?? configured?.write;
  if (newKey === undefined) {
    throw new DbcryptError("usage", "no new key given: --new-key is required", {
      hint: configured === undefined ? "pass --new-key or set DBCRYPT_NEW_KEY" : "pass --new-encryption-config with the new key first in its first provider",
      subject: { flag: "--new-key" },
    });
  }
  const oldKeys = [...request.oldKeys.map((key) => key.toSchemeKey(scheme)), ...(configured?.read ?? [])].filter((key) => key.id !== newKey.id);
  const keyring = new Keyring(newKey, oldKeys);
  if (keys.some((row) => row.revokedKeyDigest === newKey.id)) {
    throw new DbcryptError("key_revoked", `the new key ${newKey.id} has been revoked and cannot be used again`, {
      hint: "generate a new key with `dbcrypt keys generate`",
      subject: { keyId: newKey.id, flag: "--new-key" },
    });
  }
  const census = await takeCensus(dialect, schema, keyring);
  assertKeysCoverDatabase(keys, keyring, census, "--old-keys", { skipUnopenable: request.skipUnopenable === true });
  const toRecord = unrecordedKeysInUse(keyring, census, keys, newKey.id);
  const plan = rotatePlan(dialect.target, schema.preset, census, keys, newKey.id, toRecord);
  plan.keySources = keySourceLines(scheme, request.newKey === undefined ? request.oldKeys : [request.newKey, ...request.oldKeys], [...(configured?.write === undefined ? [] : [configured.write]), ...(configured?.read ?? [])], newKey.id);
  if (newKey.id.startsWith("aescbc:")) plan.warnings.push(`new values are written with ${newKey.id}: aescbc has no MAC, so tampering with a value goes unnoticed (--allow-aescbc-writes)`);
  return {
    plan,
    schema,
    census,
    keyring,
    filter: { kind: "not-under-key", keyId: newKey.id },
    action: { kind: "rewrite", transform: rotateTransform(scheme, request.newKey, request.oldKeys) },
    revokeCandidates: [...activeIdsExcept(keys, newKey.id), ...toRecord.map((key) => key.id)],
    beforeWrites: async (keysWriter) => {
      const inserted = await recordKeys(keysWriter, toRecord, scheme.canaryPlaintext, request.emit);
      if (newKey.unkeyed === true || keys.some((row) => row.activeKeyDigest === newKey.id)) return inserted;
      return [...inserted, ...(await recordKeys(keysWriter, [newKey], scheme.canaryPlaintext, request.emit))];
    },
    continueWith: "dbcrypt rotate with the same keys",
  };
});

export const rotate = rotateOperation.run;

function activeIdsExcept(keys: KeyRow[], keep: string): string[] {
  return keys.flatMap((row) => (row.activeKeyDigest !== null && row.activeKeyDigest !== keep ? [row.activeKeyDigest] : []));
}

function rotatePlan(target: string, preset: string, census: Census, keys: KeyRow[], newKeyId: string, toRecord: SchemeKey[]): OperationPlan {
  const lines: PlanLine[] = [];
  for (const column of census.columns) {
    for (const [keyId, rows] of column.encryptedByKeyId) {
      if (keyId !== newKeyId) lines.push({ column: column.label, from: keyId, to: newKeyId, rows });
    }
    if (column.plaintext.toEncrypt > 0) lines.push({ column: column.label, from: "plaintext", to: newKeyId, rows: column.plaintext.toEncrypt });
  }
  const keyActions: string[] = toRecord.map((key) => `record key ${key.id} in the keys table, then revoke it once no value uses it`);
  const newKeyActive = newKeyId === "identity" || keys.some((row) => row.activeKeyDigest === newKeyId);
  if (!newKeyActive) keyActions.push(`insert key ${newKeyId} into the keys table`);
  const toRevoke = activeIdsExcept(keys, newKeyId);
  for (const keyId of toRevoke) keyActions.push(`revoke key ${keyId} once no value uses it`);
  const totalRows = lines.reduce((sum, line) => sum + line.rows, 0);
  return { command: "rotate", target, preset, lines, keyActions, totalRows, nothingToDo: totalRows === 0 && keyActions.length === 0, warnings: [], keySources: [] };
}
