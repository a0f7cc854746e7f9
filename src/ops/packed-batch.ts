import type { BatchRow, StoredField } from "../db/dialect.js";
import type { RowContext } from "../crypto/schemes/value-scheme.js";
import type { RowFailure, RowPlan } from "./row-plans.js";

/**
 * Batches as they cross to a crypto worker and back: every string of the batch (values, key ids,
 * formats) packed into one UTF-8 buffer with a table of lengths, both transferred rather than
 * copied. Structured cloning a batch instead serialises thousands of small objects on the main
 * thread, which on SQLite is the thread that also reads and writes: that cost ate the gain of
 * moving the cipher off it.
 */
export interface PackedStrings {
  /** Byte length of each string, -1 for null. */
  lengths: Int32Array;
  bytes: Uint8Array;
}

export function packStrings(values: readonly (string | null | undefined)[]): PackedStrings {
  const lengths = new Int32Array(values.length);
  let total = 0;
  values.forEach((value, index) => {
    const length = value === null || value === undefined ? -1 : Buffer.byteLength(value, "utf8");
    lengths[index] = length;
    if (length > 0) total += length;
  });
  // Its own ArrayBuffer (not Node's shared pool), so it can be transferred.
  const bytes = Buffer.allocUnsafeSlow(total);
  let offset = 0;
  values.forEach((value, index) => {
    const length = lengths[index] as number;
    if (length > 0) offset += bytes.write(value as string, offset, length, "utf8");
  });
  return { lengths, bytes };
}

export function unpackStrings(packed: PackedStrings): (string | null)[] {
  const bytes = Buffer.from(packed.bytes.buffer, packed.bytes.byteOffset, packed.bytes.byteLength);
  const values: (string | null)[] = new Array(packed.lengths.length);
  let offset = 0;
  for (let index = 0; index < packed.lengths.length; index++) {
    const length = packed.lengths[index] as number;
    if (length < 0) {
      values[index] = null;
      continue;
    }
    values[index] = bytes.toString("utf8", offset, offset + length);
    offset += length;
  }
  return values;
}

export function transferablesOf(...packed: PackedStrings[]): ArrayBuffer[] {
  return packed.flatMap((strings) => [strings.lengths.buffer as ArrayBuffer, strings.bytes.buffer as ArrayBuffer]);
}

/** A batch's fields (value, key id, format of each) and the rows' contexts; row keys stay behind. */
export interface PackedRows {
  count: number;
  fieldsPerRow: number;
  strings: PackedStrings;
  /** Only where the table has context columns: small, and rare enough to clone. */
  contexts?: (RowContext | undefined)[];
}

const SLOTS_PER_FIELD = 3;

export function packRows(rows: readonly BatchRow[], fieldsPerRow: number): PackedRows {
  const strings: (string | null | undefined)[] = [];
  for (const row of rows) for (const field of row.fields) strings.push(field.value, field.keyId, field.format);
  const packed: PackedRows = { count: rows.length, fieldsPerRow, strings: packStrings(strings) };
  if (rows.some((row) => row.context !== undefined)) packed.contexts = rows.map((row) => row.context);
  return packed;
}

export function unpackRows(packed: PackedRows): BatchRow[] {
  const strings = unpackStrings(packed.strings);
  const rows: BatchRow[] = new Array(packed.count);
  for (let row = 0; row < packed.count; row++) {
    const fields: StoredField[] = new Array(packed.fieldsPerRow);
    for (let column = 0; column < packed.fieldsPerRow; column++) {
      const at = (row * packed.fieldsPerRow + column) * SLOTS_PER_FIELD;
      const field: StoredField = { value: strings[at] as string | null, keyId: strings[at + 1] as string | null };
      const format = strings[at + 2];
      if (format !== null && format !== undefined) field.format = format;
      fields[column] = field;
    }
    const context = packed.contexts?.[row];
    rows[row] = context === undefined ? { rowKey: [], fields } : { rowKey: [], fields, context };
  }
  return rows;
}

/** Row plans on the way back: kinds and counts as typed arrays, written fields packed, failures (rare) cloned. */
export interface PackedPlans {
  /** 0 write, 1 skip, 2 fail. */
  kinds: Uint8Array;
  changedValues: Int32Array;
  /** -1 none, 0 false, 1 true. */
  flags: Int8Array;
  fieldsPerRow: number;
  /** value, key id of each field of each written row, in order. */
  written: PackedStrings;
  failures: { index: number; failure: RowFailure }[];
}

export function packPlans(plans: readonly RowPlan[], fieldsPerRow: number): PackedPlans {
  const kinds = new Uint8Array(plans.length);
  const changedValues = new Int32Array(plans.length);
  const flags = new Int8Array(plans.length).fill(-1);
  const strings: (string | null)[] = [];
  const failures: PackedPlans["failures"] = [];
  plans.forEach((plan, index) => {
    if (plan.kind === "write") {
      changedValues[index] = plan.changedValues;
      if (plan.flag !== undefined) flags[index] = plan.flag ? 1 : 0;
      for (const field of plan.next) strings.push(field.value, field.keyId);
    } else if (plan.kind === "skip") {
      kinds[index] = 1;
    } else {
      kinds[index] = 2;
      failures.push({ index, failure: plan.failure });
    }
  });
  return { kinds, changedValues, flags, fieldsPerRow, written: packStrings(strings), failures };
}

export function unpackPlans(packed: PackedPlans): RowPlan[] {
  const strings = unpackStrings(packed.written);
  const failures = new Map(packed.failures.map((entry) => [entry.index, entry.failure]));
  const plans: RowPlan[] = new Array(packed.kinds.length);
  let at = 0;
  for (let index = 0; index < packed.kinds.length; index++) {
    const kind = packed.kinds[index];
    if (kind === 1) {
      plans[index] = { kind: "skip" };
      continue;
    }
    if (kind === 2) {
      plans[index] = { kind: "fail", failure: failures.get(index) as RowFailure };
      continue;
    }
    const next: StoredField[] = new Array(packed.fieldsPerRow);
    for (let column = 0; column < packed.fieldsPerRow; column++, at += 2) next[column] = { value: strings[at] as string | null, keyId: strings[at + 1] as string | null };
    const flag = packed.flags[index] as number;
    plans[index] = flag < 0 ? { kind: "write", next, changedValues: packed.changedValues[index] as number } : { kind: "write", next, changedValues: packed.changedValues[index] as number, flag: flag === 1 };
  }
  return plans;
}
