import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BatchRow } from "../../src/db/dialect.js";
import { packPlans, packRows, packStrings, unpackPlans, unpackRows, unpackStrings } from "../../src/ops/packed-batch.js";
import type { RowPlan } from "../../src/ops/row-plans.js";

describe("batches packed for crypto workers", () => {
  it("round-trips any strings, nulls and empties exactly, in one transferable buffer", () => {
    fc.assert(fc.property(fc.array(fc.option(fc.string({ unit: "grapheme" }), { nil: null })), (values) => {
      const packed = packStrings(values);
      expect(packed.bytes.byteOffset).toBe(0);
      expect(packed.bytes.buffer.byteLength).toBe(packed.bytes.byteLength);
      expect(unpackStrings(packed)).toEqual(values);
    }));
  });

  it("round-trips rows with formats and contexts, leaving row keys behind", () => {
    const rows: BatchRow[] = [
      { rowKey: [1n], fields: [{ value: "sealed", keyId: "abc1234", format: "base64url" }, { value: null, keyId: null }] },
      { rowKey: [Buffer.from("k")], fields: [{ value: "", keyId: "" }, { value: "plain ✓ text", keyId: null }], context: { workspace: "w1", encrypted: null } },
    ];
    expect(unpackRows(packRows(rows, 2))).toEqual(rows.map((row) => ({ ...row, rowKey: [] })));
  });

  it("round-trips every kind of row plan", () => {
    const plans: RowPlan[] = [
      { kind: "write", next: [{ value: "new", keyId: "k" }, { value: null, keyId: null }], changedValues: 1 },
      { kind: "skip" },
      { kind: "fail", failure: { column: "a", keyId: "k", reason: "authentication failed" } },
      { kind: "write", next: [{ value: "x", keyId: null }, { value: "", keyId: "" }], changedValues: 2, flag: false },
      { kind: "write", next: [{ value: "y", keyId: "k" }, { value: "z", keyId: "k" }], changedValues: 2, flag: true },
    ];
    expect(unpackPlans(packPlans(plans, 2))).toEqual(plans);
  });
});
