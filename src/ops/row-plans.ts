import { TRIAL_KEY_ID, type Keyring } from "../crypto/keyring.js";
import { rowFlagSet, type RowContext, type SchemeKey, type ValueScheme } from "../crypto/schemes/value-scheme.js";
import type { BatchRow, StoredField } from "../db/dialect.js";
import type { EncryptedColumn, EncryptedTable } from "../schema/model.js";
import { staysPlaintext } from "../schema/plaintext-rule.js";
import { isPlaintextField } from "./cells.js";
import { RowKeyUnavailable } from "../crypto/schemes/value-scheme.js";


/** Why a row was left alone: the column and key id, and words safe to print (never the value). */
export interface RowFailure {
  column: string;
  keyId: string | null;
  reason: string;
}

/** `changedValues` counts the fields the write changes: progress is measured in values, like the plan. */
/** `flag` is what a table's row flag column (Obot's `encrypted`) must say after the write. */
export type RowPlan = { kind: "write"; next: StoredField[]; changedValues: number; flag?: boolean } | { kind: "skip" } | { kind: "fail"; failure: RowFailure };

type FieldPlan = { ok: true; field: StoredField; changed: boolean } | { ok: false; reason: string };

export type OpenedField = { ok: true; plaintext: Buffer; format?: string; keyId: string } | { ok: false; reason: string };

/**
 * Opens one stored value with the key its key id names, or, where the scheme stores no key id,
 * with whichever supplied key authenticates it. The failure says why, never what.
 */
export function openField(keyring: Keyring, field: StoredField, context?: RowContext): OpenedField {
  if (field.value === null) return { ok: false, reason: "value is NULL but a key id is set" };
  if (field.keyId === TRIAL_KEY_ID) {
    const found = keyring.openByTrial(field.value, context);
    return found.key === undefined ? { ok: false, reason: found.reason } : { ...found.opened, keyId: found.key.id };
  }
  const key = keyring.get(field.keyId as string);
  if (key === undefined) return { ok: false, reason: `no key supplied for key id ${field.keyId}` };
  const opened = key.open(field.value, context);
  return opened.ok ? { ...opened, keyId: key.id } : opened;
}

/** A key id fit to print: the trial sentinel means "not known", which reports show as none. */
export function reportableKeyId(keyId: string | null): string | null {
  return keyId === TRIAL_KEY_ID ? null : keyId;
}


/**
 * A row is rewritten whole or not at all: if any of its values cannot be decrypted, none of its
 * values is touched and the row is reported, so a half-rotated row never exists.
 */
function planRow(row: BatchRow, table: EncryptedTable, planField: (field: StoredField, index: number) => FieldPlan, flagAfter: boolean): RowPlan {
  const next: StoredField[] = [];
  let changedValues = 0;
  for (let index = 0; index < row.fields.length; index++) {
    const field = row.fields[index] as StoredField;
    let plan: FieldPlan;
    try {
      plan = planField(field, index);
    } catch (error) {
      // A scheme that cannot key this row (its workspace id is NULL, say) says so in words that
      // name no value; the row is reported and left alone like one that does not decrypt.
      if (!(error instanceof RowKeyUnavailable)) throw error;
      plan = { ok: false, reason: error.message };
    }
    if (!plan.ok) {
      return { kind: "fail", failure: { column: table.columns[index]?.column ?? "?", keyId: reportableKeyId(field.keyId), reason: plan.reason } };
    }
    next.push(plan.field);
    if (plan.changed) changedValues++;
  }
  if (table.rowFlag === undefined) return changedValues === 0 ? { kind: "skip" } : { kind: "write", next, changedValues };
  // decrypt clears the flag of a row whose values needed nothing (all NULL or ''): a flag left
  // set would claim encrypted fields that are not. rotate sets it only where it sealed a value.
  if (changedValues === 0 && (flagAfter || !rowFlagSet(row.context))) return { kind: "skip" };
  return { kind: "write", next, changedValues, flag: flagAfter };
}

/**
 * The spelling to write a rewritten cell in, where the scheme has several: the scheme decides from
 * the old cell, what its opening found, and the column's spelling (set in the config, or learned
 * by the census).
 */
function spellingFor(scheme: ValueScheme | undefined, column: EncryptedColumn | undefined, oldCell: string | null, opened: string | undefined): string | undefined {
  if (scheme?.rewriteSpelling === undefined) return opened;
  return scheme.rewriteSpelling(oldCell, opened, column?.cellFormat ?? column?.spelling);
}

/** rotate: everything ends under the new key; plaintext is encrypted unless its rule keeps it. */
export function rotateRowPlanner(newKey: SchemeKey, keyring: Keyring, scheme?: ValueScheme) {
  return (row: BatchRow, table: EncryptedTable): RowPlan =>
    planRow(row, table, (field, index) => {
      if (isPlaintextField(field)) {
        const rule = table.columns[index]?.keepPlaintext ?? "never";
        if (staysPlaintext(rule, field.value)) return { ok: true, field, changed: false };
        const sealed = newKey.seal(field.value as string, row.context, spellingFor(scheme, table.columns[index], null, undefined));
        // Sealing that changes nothing (Kubernetes' identity provider on '') is no change, or
        // every run would rewrite the same row.
        return { ok: true, field: { value: sealed, keyId: newKey.id }, changed: sealed !== field.value };
      }
      if (field.keyId === newKey.id) return { ok: true, field, changed: false };
      const opened = openField(keyring, field, row.context);
      if (!opened.ok) return opened;
      // Found by trial under the new key: already done (an earlier, interrupted run wrote it).
      if (opened.keyId === newKey.id) return { ok: true, field, changed: false };
      return { ok: true, field: { value: newKey.seal(opened.plaintext, row.context, spellingFor(scheme, table.columns[index], field.value, opened.format)), keyId: newKey.id }, changed: true };
    }, true);
}

/** decrypt: every encrypted value becomes plaintext with a NULL key id. */
export function decryptRowPlanner(keyring: Keyring) {
  return (row: BatchRow, table: EncryptedTable): RowPlan =>
    planRow(row, table, (field) => {
      if (isPlaintextField(field)) return { ok: true, field, changed: false };
      const opened = openField(keyring, field, row.context);
      if (!opened.ok) return opened;
      const text = opened.plaintext.toString("utf8");
      // A text column cannot hold bytes that are not UTF-8 (or NUL on PostgreSQL); writing a
      // lossy copy would destroy the value, so such a row is left encrypted and reported.
      if (!Buffer.from(text, "utf8").equals(opened.plaintext) || text.includes("\u0000")) {
        return { ok: false, reason: "decrypted value is not valid text for a text column" };
      }
      return { ok: true, field: { value: text, keyId: null }, changed: true };
    }, false);
}
