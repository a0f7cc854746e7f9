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
  | { kind: "rotate"; scheme: string; schemeOptions: Record<string, unknown>; newKey: string | "configured"; keys: string[] }
  | { kind: "decrypt"; scheme: string; schemeOptions: Record<string, unknown>; keys: string[] };

export type PlanRow = (row: BatchRow, table: EncryptedTable) => RowPlan;

/**
 * `newKey` undefined: the scheme's configuration names the key to write with (Kubernetes'
 * providers[0]), and a worker finds it, and the keys to read with, by rebuilding the scheme.
 */
export function rotateTransform(scheme: ValueScheme, newKey: EncryptionKey | undefined, oldKeys: readonly EncryptionKey[]): RowTransformSpec {
  return { kind: "rotate", scheme: scheme.name, schemeOptions: { ...scheme.options }, newKey: newKey?.exportBase64() ?? "configured", keys: oldKeys.map((key) => key.exportBase64()) };
}

export function decryptTransform(scheme: ValueScheme, keys: readonly EncryptionKey[]): RowTransformSpec {
  return { kind: "decrypt", scheme: scheme.name, schemeOptions: { ...scheme.options }, keys: keys.map((key) => key.exportBase64()) };
}

/** `built`: the scheme instance to use when the caller has it (the main thread); a worker builds its own. */
export function buildRowPlanner(spec: RowTransformSpec, built?: ValueScheme): PlanRow {
  const scheme = built ?? schemeNamed(spec.scheme, spec.schemeOptions);
  const configured = scheme.configuredKeys?.();
  const keys = [...spec.keys.map((text, index) => EncryptionKey.parse(text, `key ${index + 1}`).toSchemeKey(scheme)), ...(configured?.read ?? [])];
  if (spec.kind === "decrypt") return decryptRowPlanner(new Keyring(undefined, keys));
  const newKey = spec.newKey === "configured" ? configured?.write : EncryptionKey.parse(spec.newKey, "new key").toSchemeKey(scheme);
  if (newKey === undefined) throw new Error("rotate without a new key reached a worker");
  return rotateRowPlanner(newKey, new Keyring(newKey, keys.filter((key) => key.id !== newKey.id)), scheme);
}
