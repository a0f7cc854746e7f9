import { describe, expect, it } from "vitest";
import type { BatchRow } from "../../src/db/dialect.js";
import { BatchByteBudget } from "../../src/ops/batch-budget.js";

function rows(count: number, valueBytes: number): BatchRow[] {
  return Array.from({ length: count }, (_, index) => ({ rowKey: [index], fields: [{ value: "x".repeat(valueBytes), keyId: "k" }, { value: null, keyId: null }] }));
}

describe("BatchByteBudget", () => {
  it("starts small, then asks for as many rows as fit the budget, capped by --batch-size", () => {
    const budget = new BatchByteBudget(1024 * 1024);
    expect(budget.rowsFor(1000)).toBe(16);
    budget.observe(rows(16, 100));
    expect(budget.rowsFor(1000)).toBe(1000);
    budget.observe(rows(1000, 256 * 1024));
    expect(budget.rowsFor(1000)).toBe(4);
  });

  it("rises at once when values grow and falls back slowly, never below one row", () => {
    const budget = new BatchByteBudget(4096);
    budget.observe(rows(10, 10));
    budget.observe(rows(1, 1_000_000));
    expect(budget.rowsFor(500)).toBe(1);
    budget.observe(rows(10, 10));
    expect(budget.rowsFor(500)).toBe(1);
    for (let round = 0; round < 60; round++) budget.observe(rows(10, 10));
    expect(budget.rowsFor(500)).toBe(409);
  });
});
