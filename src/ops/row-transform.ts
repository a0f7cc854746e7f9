import { EncryptionKey } from "../crypto/encryption-key.js";
import { Keyring } from "../crypto/keyring.js";
import type { BatchRow } from "../db/dialect.js";
import type { EncryptedTable } from "../schema/model.js";
import { decryptRowPlanner, rotateRowPlanner } from "./row-plans.js";
import type { RowPlan } from "./runner.js";

/**
 * What a rewrite does to each row, as data rather than a closure, so the same transform can be
 * rebuilt inside a worker thread. Keys travel to workers as bytes inside this process only; they
 * are never printed or written anywhere.
 */
export type RowTransformSpec =
  | { kind: "rotate"; newKey: string; keys: string[] }
  | { kind: "decrypt"; keys: string[] };

export type PlanRow = (row: BatchRow, table: EncryptedTable) => RowPlan;

export function rotateTransform(newKey: EncryptionKey, keyring: Keyring): RowTransformSpec {
  return { kind: "rotate", newKey: newKey.exportBase64(), keys: keyring.keys.map((key) => key.exportBase64()) };
}

export function decryptTransform(keyring: Keyring): RowTransformSpec {
  return { kind: "decrypt", keys: keyring.keys.map((key) => key.exportBase64()) };
}

export function buildRowPlanner(spec: RowTransformSpec): PlanRow {
  const keys = spec.keys.map((text, index) => EncryptionKey.parse(text, `key ${index + 1}`));
  if (spec.kind === "decrypt") return decryptRowPlanner(new Keyring(undefined, keys));
  const newKey = EncryptionKey.parse(spec.newKey, "new key");
  return rotateRowPlanner(newKey, new Keyring(newKey, keys.filter((key) => key.id !== newKey.id)));
}
