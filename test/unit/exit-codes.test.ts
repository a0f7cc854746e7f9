import { describe, expect, it } from "vitest";
import { DONE, exitCodeForError, exitCodeForOutcome } from "../../src/cli/exit-codes.js";
import { DbcryptError } from "../../src/errors.js";

describe("exit codes (docs/exit-codes.md)", () => {
  it.each([
    ["done", 0],
    ["nothing-to-do", 0],
    ["dry-run", 0],
    ["stopped", 4],
    ["incomplete", 4],
    ["failed-rows", 3],
  ] as const)("an operation that ends %s exits %i", (status, code) => {
    expect(exitCodeForOutcome({ kind: "operation", status })).toBe(code);
  });

  it("status exits 0 when healthy and 3 with problems; other commands 0", () => {
    expect(exitCodeForOutcome({ kind: "health", healthy: true })).toBe(0);
    expect(exitCodeForOutcome({ kind: "health", healthy: false })).toBe(3);
    expect(exitCodeForOutcome(DONE)).toBe(0);
  });

  it.each([
    ["bad_key", 2],
    ["database_unreachable", 1],
    ["unknown_key", 3],
    ["lock_held", 5],
    ["internal", 1],
  ] as const)("error %s exits %i", (code, exitCode) => {
    expect(exitCodeForError(new DbcryptError(code, "x"))).toBe(exitCode);
  });
});
