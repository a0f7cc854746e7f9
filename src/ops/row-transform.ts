import { EncryptionKey } from "../crypto/encryption-key.js";
import { Keyring } from "../crypto/keyring.js";
import { schemeNamed } from "../crypto/schemes/registry.js";
import type { ValueScheme } from "../crypto/schemes/value-scheme.js";
import type { BatchRow } from "../db/dialect.js";
import type { EncryptedTable } from "../schema/model.js";
import { decryptRowPlanner, rotateRowPlanner } from "./row-plans.js";
import type { RowPlan } from "./row-plans.js";

/**
 * What a rewrite does to each row, as data rather than a closure, so the same transform can be
 * rebuilt inside a worker thread: the scheme by name (a worker looks it up in its own registry)
 * and the keys as base64. Keys travel to workers as bytes inside this process only; they are
 * never printed or written anywhere.
 */
export type RowTransformSpec =
  | { kind: "rotate"; scheme: string; schemeOptions: Record<string, unknown>; newKey: string; keys: string[] }
  | { kind: "decrypt"; scheme: string; schemeOptions: Record<string, unknown>; keys: string[] };

export type PlanRow = (row: BatchRow, table: EncryptedTable) => RowPlan;

export function rotateTransform(scheme: ValueScheme, newKey: EncryptionKey, oldKeys: readonly EncryptionKey[]): RowTransformSpec {
  return { kind: "rotate", scheme: scheme.name, schemeOptions: { ...scheme.options }, newKey: newKey.exportBase64(), keys: oldKeys.map((key) => key.exportBase64()) };
}

export function decryptTransform(scheme: ValueScheme, keys: readonly EncryptionKey[]): RowTransformSpec {
  return { kind: "decrypt", scheme: scheme.name, schemeOptions: { ...scheme.options }, keys: keys.map((key) => key.exportBase64()) };
}

export function buildRowPlanner(spec: RowTransformSpec): PlanRow {
  const scheme = schemeNamed(spec.scheme, spec.schemeOptions);
  const keys = spec.keys.map((text, index) => EncryptionKey.parse(text, `key ${index + 1}`).toSchemeKey(scheme));
  if (spec.kind === "decrypt") return decryptRowPlanner(new Keyring(undefined, keys));
  const newKey = EncryptionKey.parse(spec.newKey, "new key").toSchemeKey(scheme);
  return rotateRowPlanner(newKey, new Keyring(newKey, keys.filter((key) => key.id !== newKey.id)), scheme);
}
