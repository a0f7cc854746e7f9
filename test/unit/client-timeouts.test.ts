import { describe, expect, it } from "vitest";
import { clientTimeouts, DEFAULT_POSTGRES_LIMITS, QUERY_TIMEOUT_MARGIN_MS } from "../../src/db/postgres.js";

describe("clientTimeouts", () => {
  it("waits longer than the server's statement_timeout by default, so the server cancels first", () => {
    expect(clientTimeouts(DEFAULT_POSTGRES_LIMITS)).toEqual({ connectTimeoutMs: 10_000, queryTimeoutMs: 120_000 + QUERY_TIMEOUT_MARGIN_MS, keepAliveMs: 10_000 });
    expect(clientTimeouts({ ...DEFAULT_POSTGRES_LIMITS, statementTimeoutMs: 5_000 }).queryTimeoutMs).toBe(5_000 + QUERY_TIMEOUT_MARGIN_MS);
  });

  it("still has a deadline when statement_timeout is off", () => {
    expect(clientTimeouts({ ...DEFAULT_POSTGRES_LIMITS, statementTimeoutMs: 0 }).queryTimeoutMs).toBe(600_000);
  });

  it("takes --query-timeout as given", () => {
    expect(clientTimeouts({ ...DEFAULT_POSTGRES_LIMITS, queryTimeoutMs: 3_000 }).queryTimeoutMs).toBe(3_000);
  });
});
