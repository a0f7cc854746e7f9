import type { EncryptionKey } from "../crypto/encryption-key.js";
import { Keyring } from "../crypto/keyring.js";
import { DbcryptError } from "../errors.js";
import { takeCensus, type Census } from "./census.js";
import { assertKeysCoverDatabase } from "./keys-state.js";
import type { OperationPlan, PlanLine, WriteRequest } from "./operation.js";
import { rotateTransform } from "./row-transform.js";
import { writeOperation } from "./write-operation.js";
import type { KeyRow } from "../db/dialect.js";

export interface RotateRequest extends WriteRequest {
  newKey: EncryptionKey;
  oldKeys: EncryptionKey[];
}

/**
 * Re-encrypts every value under the new key and encrypts leftover plaintext (per the column's
 * plaintext rule), then revokes the old keys the data no longer uses. Mirrors Coder's
 * `server dbcrypt rotate`, batched and including the tables Coder's CLI misses.
 */
export const rotateOperation = writeOperation<RotateRequest>("rotate", async (dialect, { schema, keys }, request) => {
  const { scheme } = schema;
  const newKey = request.newKey.toSchemeKey(scheme);
  const keyring = new Keyring(newKey, request.oldKeys.map((key) => key.toSchemeKey(scheme)));
  if (keys.some((row) => row.revokedKeyDigest === newKey.id)) {
    throw new DbcryptError("key_revoked", `the new key ${newKey.id} has been revoked and cannot be used again`, {
      hint: "generate a new key with `dbcrypt keys generate`",
      subject: { keyId: newKey.id, flag: "--new-key" },
    });
  }
  const census = await takeCensus(dialect, schema);
  assertKeysCoverDatabase(keys, keyring, census, "--old-keys");
  const plan = rotatePlan(dialect.target, schema.preset, census, keys, newKey.id);
  return {
    plan,
    schema,
    census,
    filter: { kind: "not-under-key", keyId: newKey.id },
    action: { kind: "rewrite", transform: rotateTransform(scheme, request.newKey, request.oldKeys) },
    revokeCandidates: activeIdsExcept(keys, newKey.id),
    beforeWrites: async (keysWriter) => {
      if (keys.some((row) => row.activeKeyDigest === newKey.id)) return [];
      const row = await keysWriter.insertActiveKey(newKey.id, newKey.seal(scheme.canaryPlaintext));
      request.emit({ type: "key-inserted", keyId: newKey.id, number: row.number });
      return [newKey.id];
    },
    continueWith: "dbcrypt rotate with the same keys",
  };
});

export const rotate = rotateOperation.run;

function activeIdsExcept(keys: KeyRow[], keep: string): string[] {
  return keys.flatMap((row) => (row.activeKeyDigest !== null && row.activeKeyDigest !== keep ? [row.activeKeyDigest] : []));
}

function rotatePlan(target: string, preset: string, census: Census, keys: KeyRow[], newKeyId: string): OperationPlan {
  const lines: PlanLine[] = [];
  for (const column of census.columns) {
    for (const [keyId, rows] of column.encryptedByKeyId) {
      if (keyId !== newKeyId) lines.push({ column: column.label, from: keyId, to: newKeyId, rows });
    }
    if (column.plaintext.toEncrypt > 0) lines.push({ column: column.label, from: "plaintext", to: newKeyId, rows: column.plaintext.toEncrypt });
  }
  const keyActions: string[] = [];
  const newKeyActive = keys.some((row) => row.activeKeyDigest === newKeyId);
  if (!newKeyActive) keyActions.push(`insert key ${newKeyId} into the keys table`);
  const toRevoke = activeIdsExcept(keys, newKeyId);
  for (const keyId of toRevoke) keyActions.push(`revoke key ${keyId} once no value uses it`);
  const totalRows = lines.reduce((sum, line) => sum + line.rows, 0);
  return { command: "rotate", target, preset, lines, keyActions, totalRows, nothingToDo: totalRows === 0 && keyActions.length === 0 };
}
