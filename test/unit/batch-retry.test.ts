import { describe, expect, it } from "vitest";
import { DbcryptError } from "../../src/errors.js";
import { backoffDelayMs, growBatch, shrinkBatch, withBatchRetries, type RetryPolicy } from "../../src/ops/batch-retry.js";
import { exitCodeForError } from "../../src/cli/exit-codes.js";

const fastPolicy: RetryPolicy = { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 4 };
const lockTimeout = () => new DbcryptError("database_error", "write t: canceling statement due to lock timeout [55P03]", { retryable: true });

describe("batch retries", () => {
  it("backs off exponentially with jitter between half and the full delay, capped", () => {
    const policy: RetryPolicy = { maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 1_000 };
    expect(backoffDelayMs(policy, 1, () => 0)).toBe(50);
    expect(backoffDelayMs(policy, 1, () => 1)).toBe(100);
    expect(backoffDelayMs(policy, 3, () => 1)).toBe(400);
    expect(backoffDelayMs(policy, 9, () => 1)).toBe(1_000);
    expect(backoffDelayMs(policy, 9, () => 0)).toBe(500);
  });

  it("retries a retryable failure and returns the later success, reporting each retry", async () => {
    const retries: number[] = [];
    let calls = 0;
    const result = await withBatchRetries(fastPolicy, async () => {
      calls++;
      if (calls < 3) throw lockTimeout();
      return "written";
    }, (_error, attempt) => retries.push(attempt));
    expect(result).toBe("written");
    expect(retries).toEqual([1, 2]);
  });

  it("gives up after the last attempt with an error that says so and keeps the cause", async () => {
    const failure = await withBatchRetries(fastPolicy, async () => { throw lockTimeout(); }, () => undefined).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DbcryptError);
    expect((failure as DbcryptError).message).toMatch(/^gave up after 4 tries: .*lock timeout/);
    expect(exitCodeForError(failure as DbcryptError)).toBe(1);
  });

  it("does not retry other failures", async () => {
    let calls = 0;
    const failure = await withBatchRetries(fastPolicy, async () => {
      calls++;
      throw new DbcryptError("database_error", "syntax error");
    }, () => undefined).catch((error: unknown) => error);
    expect(calls).toBe(1);
    expect((failure as DbcryptError).message).toBe("syntax error");
  });

  it("halves the batch on failure and grows it back by a quarter, never past the configured size", () => {
    expect(shrinkBatch(1000)).toBe(500);
    expect(shrinkBatch(1)).toBe(1);
    expect(growBatch(500, 1000)).toBe(625);
    expect(growBatch(1, 1000)).toBe(2);
    expect(growBatch(900, 1000)).toBe(1000);
  });
});
