/**
 * The test command's own canary: it must FAIL. `.ci/run` runs it on its own
 * (DBCRYPT_TEST_CANARY=1 npm test, on the external and the embedded PostgreSQL) and fails CI unless
 * the test command then exits non-zero and reports exactly this one failed test. It exists because
 * `npm test` once exited 0 with failing tests (see test/support/global-setup.ts).
 */
import pg from "pg";
import { expect, inject, it } from "vitest";

it("reaches the suite's PostgreSQL (this one passes)", async () => {
  const client = new pg.Client({ connectionString: inject("pgAdminUrl") });
  await client.connect();
  try {
    const result = await client.query<{ answer: number }>("SELECT 1 AS answer");
    expect(result.rows[0]?.answer).toBe(1);
  } finally {
    await client.end();
  }
});

it("fails on purpose: the test command must exit non-zero because of it", () => {
  expect(1, "deliberate canary failure").toBe(2);
});
