import type { Keyring } from "../crypto/keyring.js";
import type { SchemeKey } from "../crypto/schemes/value-scheme.js";
import type { BatchRow, StoredField } from "../db/dialect.js";
import type { EncryptedTable } from "../schema/model.js";
import { staysPlaintext } from "../schema/plaintext-rule.js";
import { isPlaintextField } from "./cells.js";


/** Why a row was left alone: the column and key id, and words safe to print (never the value). */
export interface RowFailure {
  column: string;
  keyId: string | null;
  reason: string;
}

/** `changedValues` counts the fields the write changes: progress is measured in values, like the plan. */
export type RowPlan = { kind: "write"; next: StoredField[]; changedValues: number } | { kind: "skip" } | { kind: "fail"; failure: RowFailure };

type FieldPlan = { ok: true; field: StoredField; changed: boolean } | { ok: false; reason: string };

/** Opens one stored value with the key its key id names; the failure says why, never what. */
export function openField(keyring: Keyring, field: StoredField): { ok: true; plaintext: Buffer } | { ok: false; reason: string } {
  const key = keyring.get(field.keyId as string);
  if (key === undefined) return { ok: false, reason: `no key supplied for key id ${field.keyId}` };
  if (field.value === null) return { ok: false, reason: "value is NULL but a key id is set" };
  return key.open(field.value);
}

/**
 * A row is rewritten whole or not at all: if any of its values cannot be decrypted, none of its
 * values is touched and the row is reported, so a half-rotated row never exists.
 */
function planRow(row: BatchRow, table: EncryptedTable, planField: (field: StoredField, index: number) => FieldPlan): RowPlan {
  const next: StoredField[] = [];
  let changedValues = 0;
  for (let index = 0; index < row.fields.length; index++) {
    const field = row.fields[index] as StoredField;
    const plan = planField(field, index);
    if (!plan.ok) {
      return { kind: "fail", failure: { column: table.columns[index]?.column ?? "?", keyId: field.keyId, reason: plan.reason } };
    }
    next.push(plan.field);
    if (plan.changed) changedValues++;
  }
  return changedValues > 0 ? { kind: "write", next, changedValues } : { kind: "skip" };
}

/** rotate: everything ends under the new key; plaintext is encrypted unless its rule keeps it. */
export function rotateRowPlanner(newKey: SchemeKey, keyring: Keyring) {
  return (row: BatchRow, table: EncryptedTable): RowPlan =>
    planRow(row, table, (field, index) => {
      if (isPlaintextField(field)) {
        const rule = table.columns[index]?.keepPlaintext ?? "never";
        if (staysPlaintext(rule, field.value)) return { ok: true, field, changed: false };
        return { ok: true, field: { value: newKey.seal(field.value as string), keyId: newKey.id }, changed: true };
      }
      if (field.keyId === newKey.id) return { ok: true, field, changed: false };
      const opened = openField(keyring, field);
      if (!opened.ok) return opened;
      return { ok: true, field: { value: newKey.seal(opened.plaintext), keyId: newKey.id }, changed: true };
    });
}

/** decrypt: every encrypted value becomes plaintext with a NULL key id. */
export function decryptRowPlanner(keyring: Keyring) {
  return (row: BatchRow, table: EncryptedTable): RowPlan =>
    planRow(row, table, (field) => {
      if (isPlaintextField(field)) return { ok: true, field, changed: false };
      const opened = openField(keyring, field);
      if (!opened.ok) return opened;
      const text = opened.plaintext.toString("utf8");
      // A text column cannot hold bytes that are not UTF-8 (or NUL on PostgreSQL); writing a
      // lossy copy would destroy the value, so such a row is left encrypted and reported.
      if (!Buffer.from(text, "utf8").equals(opened.plaintext) || text.includes("\u0000")) {
        return { ok: false, reason: "decrypted value is not valid text for a text column" };
      }
      return { ok: true, field: { value: text, keyId: null }, changed: true };
    });
}
