import { defineConfig } from "vitest/config";

// DBCRYPT_TEST_CANARY=1 runs only the deliberately failing canary (see test/canary/), which .ci/run
// uses to prove that a failing test fails the test command.
const canaryOnly = process.env.DBCRYPT_TEST_CANARY === "1";

export default defineConfig({
  test: {
    include: canaryOnly ? ["test/canary/*.canary.ts"] : ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // The CI machine has two cores; PostgreSQL needs some of them too.
    maxWorkers: 2,
  },
});
