/**
 * kill -9 at random points of rotate, decrypt, encrypt (rotate from plaintext) and delete, on a
 * multi-table Coder-shaped database with composite primary keys, on both engines. After every kill
 * the oracle checks every value and the keys table (support/coder-state.ts); then the command is
 * re-run until it finishes and the final state is checked row by row.
 *
 * Sizes: DBCRYPT_CHAOS_ROWS, DBCRYPT_CHAOS_KILLS (per database kind); see support/settings.ts.
 */
import { describe, expect, it } from "vitest";
import { dbArg, runCli } from "../support/cli.js";
import { freshKey } from "../support/fixtures.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb } from "../support/test-db.js";
import { prepareLifecycleCampaign, runLifecycleCampaign, runPhase, type CampaignContext } from "./support/campaign.js";
import { Random } from "./support/random.js";
import { recordFigures, tally } from "./support/report.js";
import { seedChaosDatabase } from "./support/seeding.js";
import { chaos, timeoutFor } from "./support/settings.js";

describe.each(ENGINE_KINDS)("kill -9 at random points on %s", (kind) => {
  it(
    `loses nothing over ${chaos.kills} SIGKILLs during rotate, decrypt, encrypt and delete of ${chaos.rows}+ rows`,
    async () => {
      const database = await createTestDatabase(kind, "chaos_kill");
      const db = await openTestDb(database.target);
      try {
        const { context, keys, seed } = await prepareLifecycleCampaign(db, dbArg(database.target), "kill", `kill9:${kind}`);
        const figures = await runLifecycleCampaign(context, keys, chaos.kills);
        const kills = figures.reduce((sum, phase) => sum + phase.faults, 0);
        expect(kills, "SIGKILLs that hit a live run").toBeGreaterThanOrEqual(chaos.kills);

        // The end state is healthy by dbcrypt's own check too: nothing encrypted, no active key.
        const status = await runCli(["status", "--db", context.directUrl, "--json"]);
        expect(status.code, status.stdout).toBe(0);

        const records = figures.flatMap((phase) => phase.records);
        recordFigures(`kill9 ${kind}`, {
          engine: kind,
          rows: seed.rows,
          values: seed.values,
          tables: seed.tables,
          kills,
          killsPerPhase: Object.fromEntries(figures.map((phase) => [phase.phase, phase.faults])),
          runs: figures.reduce((sum, phase) => sum + phase.runs, 0),
          finishedBeforeKill: figures.reduce((sum, phase) => sum + phase.finishedBeforeFault, 0),
          lockStillHeldRetries: figures.reduce((sum, phase) => sum + phase.lockStillHeld, 0),
          landed: tally(records.filter((record) => record.outcome === "SIGKILL").map((record) => record.landed)),
          triggers: tally(records.map((record) => record.trigger)),
          faultedRunsWithCryptoThreads: records.filter((record) => record.outcome === "SIGKILL" && record.cryptoThreads > 0).length,
          valuesChecked: figures.reduce((sum, phase) => sum + phase.valuesChecked, 0),
          rowsLost: 0,
        });
      } finally {
        await db.close();
        await database.cleanup();
      }
    },
    timeoutFor(chaos.kills, 20_000, 180_000),
  );
});

/**
 * Crypto worker threads only start on runs of 20,000 values or more (src/ops/batch-planner.ts), a
 * size the bounded campaign above does not reach; this keeps that path under kill -9 in CI too.
 * It found a run on SQLite exiting 13 with no message at its first batch (nothing held Node's
 * event loop open while the only pending work was on unref'd workers).
 */
describe.each(ENGINE_KINDS)("kill -9 of a run large enough for crypto worker threads on %s", (kind) => {
  it("finishes with --crypto-threads, and a kill mid-run loses nothing", async () => {
    const database = await createTestDatabase(kind, "chaos_threads");
    const db = await openTestDb(database.target);
    try {
      const keyA = freshKey();
      const keyB = freshKey();
      const seed = await seedChaosDatabase(db, 14_000, keyA);
      expect(seed.values, "enough values for worker threads").toBeGreaterThanOrEqual(20_000);
      const context: CampaignContext = {
        db,
        directUrl: dbArg(database.target),
        seeded: seed.seeded,
        keys: new Map([keyA, keyB].map((key) => [key.id, key])),
        random: new Random(chaos.seed, `kill9-threads:${kind}`),
        fault: "kill",
        batchSizes: [100, 250],
        estimates: { firstBatchMs: 600, batchMs: 20 },
      };
      const figures = await runPhase(context, {
        name: "rotate with crypto threads",
        operation: { kind: "rotate", to: keyB.id },
        args: ["rotate", "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes"],
        faults: 1,
        last: true,
        cryptoThreads: 2,
        finalActive: [keyB.id],
        finalRevoked: [keyA.id],
      });
      expect(figures.faults, "the kill hit a live run with worker threads").toBe(1);
    } finally {
      await db.close();
      await database.cleanup();
    }
  }, 120_000);
});

