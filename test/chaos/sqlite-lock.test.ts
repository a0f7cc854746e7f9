/**
 * A SQLite file whose write lock another writer holds (the application in a BEGIN IMMEDIATE
 * transaction). dbcrypt waits up to --busy-timeout per attempt and retries a bounded number of
 * times with backoff (src/ops/batch-retry.ts): it finishes once the lock is released, or exits 1
 * naming the lock when it never is — with nothing half-written either way.
 *
 * Sizes: DBCRYPT_CHAOS_LOCK_ROUNDS; see support/settings.ts.
 */
import Database from "better-sqlite3";
import { existsSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { TestKey } from "../support/coder-crypto.js";
import { dbArg } from "../support/cli.js";
import { freshKey } from "../support/fixtures.js";
import { checksumDatabase, createTestDatabase, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";
import { firstErrorLine, runToEnd, sleep, startCli, type FinishedRun } from "./support/cli-process.js";
import { checkTransition, inspectCoder, readCoderState, type DataState, type Operation } from "./support/coder-state.js";
import { Random } from "./support/random.js";
import { recordFigures } from "./support/report.js";
import { seedChaosDatabase, type ChaosSeed } from "./support/seeding.js";
import { chaos, timeoutFor } from "./support/settings.js";

/** Coder's tables plus the keys table: what "nothing was written" is measured over. */
const ALL_TABLES = ["dbcrypt_keys", "users", "user_links", "external_auth_links", "crypto_keys", "user_secrets", "gitsshkeys", "mcp_server_configs", "mcp_server_user_tokens", "workspace_secrets", "ai_provider_keys", "chat_mcp_servers"];
const GAVE_UP = /^dbcrypt: error: .*gave up after 6 tries: .*locked by another writer past the busy timeout \[SQLITE_BUSY\]/;

describe("SQLite file locked by another writer", () => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let path: string;
  let holder: Database.Database;
  let keyA: TestKey;
  let keyB: TestKey;
  let seed: ChaosSeed;
  let keys: Map<string, TestKey>;

  beforeEach(async () => {
    database = await createTestDatabase("sqlite", "chaos_lock");
    db = await openTestDb(database.target);
    path = (database.target as { path: string }).path;
    keyA = freshKey();
    keyB = freshKey();
    keys = new Map([keyA, keyB].map((key) => [key.id, key]));
    seed = await seedChaosDatabase(db, 400, keyA);
    holder = new Database(path, { timeout: 2_000 });
  });

  afterEach(async () => {
    if (holder?.inTransaction) holder.exec("ROLLBACK");
    holder?.close();
    await db?.close();
    await database?.cleanup();
  });

  const rotateArgs = () => ["rotate", "--db", dbArg(database.target), "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--json-events"];

  async function expectWhole(before: DataState, operation: Operation, done: boolean): Promise<Record<string, number>> {
    const now = await inspectCoder(db, seed.seeded, keys);
    expect(now.problems).toEqual([]);
    expect(checkTransition(operation, seed.seeded, before, now.state, done).problems).toEqual([]);
    return now.valuesByKey;
  }

  it("held from before the run and never released: waits, retries with backoff, exits 1, writes nothing", async () => {
    holder.exec("BEGIN IMMEDIATE");
    const before = await checksumDatabase(db, ALL_TABLES);
    const run = await runToEnd([...rotateArgs(), "--busy-timeout", "250ms"]);
    expect(run.code, run.stderr).toBe(1);
    expect(firstErrorLine(run)).toMatch(GAVE_UP);
    const retries = run.events.filter((event) => event.type === "retry");
    expect(retries.map((event) => event.attempt)).toEqual([1, 2, 3, 4, 5]);
    // Six waits of the busy timeout plus five backoffs of at least 125, 250, 500, 1000, 2000 ms,
    // and bounded: at most six timeouts plus the longest backoffs, with start-up slack.
    expect(run.elapsedMs).toBeGreaterThanOrEqual(6 * 250 + 3_875);
    expect(run.elapsedMs).toBeLessThan(6 * 250 + 7_750 + 5_000);
    // Not even the new key's row: the key insert waited for the same lock and gave up first.
    expect(await checksumDatabase(db, ALL_TABLES)).toBe(before);
    expect(existsSync(`${path}.dbcrypt-lock`), "the run lock file is removed").toBe(false);

    holder.exec("ROLLBACK");
    const state = await readCoderState(db, [...seed.seeded.keys()]);
    const rerun = await runToEnd(rotateArgs());
    expect(rerun.code, rerun.stderr).toBe(0);
    await expectWhole(state, { kind: "rotate", to: keyB.id }, true);
  });

  it("taken mid-run and never released: exits 1 after the bounded retries, finished batches kept, no row half-written, old key kept", async () => {
    const before = await readCoderState(db, [...seed.seeded.keys()]);
    // Bounded: six tries of 50 ms plus at most 7.75 s of backoff; 40 s means it never gave up.
    const run = startCli([...rotateArgs(), "--busy-timeout", "50ms", "--batch-size", "10", "--sleep", "10ms"], { hungAfterMs: 40_000 });
    await run.waitForEvent((event) => event.type === "batch" && Number(event.done) >= 100);
    holder.exec("BEGIN IMMEDIATE");
    const finished = await run.done;
    expect(finished.code, finished.stderr).toBe(1);
    expect(firstErrorLine(finished)).toMatch(GAVE_UP);
    expect(finished.stderr).toContain("finished batches are kept");
    expect(finished.events.filter((event) => event.type === "retry").map((event) => event.attempt)).toEqual([1, 2, 3, 4, 5]);
    const byKey = await expectWhole(before, { kind: "rotate", to: keyB.id }, false);
    expect(byKey[keyB.id] ?? 0, "values rotated before the lock").toBeGreaterThanOrEqual(100);
    expect(byKey[keyA.id] ?? 0, "values still under the old key").toBeGreaterThan(0);
    holder.exec("ROLLBACK");
    const rerun = await runToEnd(rotateArgs());
    expect(rerun.code, rerun.stderr).toBe(0);
    await expectWhole(before, { kind: "rotate", to: keyB.id }, true);
  });

  it("held when only the revoke is left, never released: exits 1 naming the lock like any batch, the old key kept", async () => {
    const before = await readCoderState(db, [...seed.seeded.keys()]);
    const rotated = await runToEnd(rotateArgs());
    expect(rotated.code, rotated.stderr).toBe(0);
    // The state a run killed between its walk and its revoke leaves: every value under B, A still active.
    await db.query("UPDATE dbcrypt_keys SET active_key_digest = revoked_key_digest, revoked_key_digest = NULL, revoked_at = NULL WHERE revoked_key_digest = $1", [keyA.id]);
    holder.exec("BEGIN IMMEDIATE");
    const run = await runToEnd([...rotateArgs(), "--busy-timeout", "50ms"], { hungAfterMs: 40_000 });
    expect(run.code, run.stderr).toBe(1);
    // The revoke is the statement that lost here; its error reads like every other busy error.
    expect(firstErrorLine(run)).toMatch(GAVE_UP);
    expect(firstErrorLine(run)).toContain(`revoke key ${keyA.id}`);
    const byKey = await expectWhole(before, { kind: "rotate", to: keyB.id }, true);
    expect(byKey[keyA.id] ?? 0).toBe(0);
    const [keyRow] = await db.query<{ active: string | null }>("SELECT active_key_digest AS active FROM dbcrypt_keys WHERE active_key_digest = $1 OR revoked_key_digest = $1", [keyA.id]);
    expect(keyRow?.active, "the old key is not revoked while the lock is held").toBe(keyA.id);
    holder.exec("ROLLBACK");
    const rerun = await runToEnd(rotateArgs());
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.result?.keysRevoked).toEqual([keyA.id]);
  });

  it(
    `under a writer that takes the lock at random for random spans, every run finishes or gives up cleanly (${chaos.lockRounds} round(s))`,
    async () => {
      const random = new Random(chaos.seed, "sqlite-lock");
      const figures = { runs: 0, finished: 0, gaveUp: 0, retries: 0, holds: 0, longHolds: 0, phases: 0 };
      let stopLocker = false;
      // Long holds (longer than dbcrypt's whole retry budget) only in a phase's first two runs:
      // the application does let go eventually, and the phase must then finish.
      let longHoldsAllowed = true;
      // Set while a round swaps in a fresh database; the locker holds no transaction then.
      let lockerPaused = false;
      let lockerHolding = false;
      // The application: a write transaction now and then, mostly short, sometimes longer than
      // dbcrypt's whole retry budget.
      const locker = (async () => {
        while (!stopLocker) {
          await sleep(random.between(50, 800));
          if (stopLocker) break;
          if (lockerPaused) continue;
          const connection = holder;
          try {
            connection.exec("BEGIN IMMEDIATE");
          } catch {
            continue; // dbcrypt held it for longer than our own busy timeout: try again later
          }
          lockerHolding = true;
          const long = longHoldsAllowed && random.chance(0.15);
          figures.holds++;
          if (long) figures.longHolds++;
          const until = Date.now() + (long ? random.between(5_000, 8_000) : random.between(20, 600));
          while (!stopLocker && Date.now() < until) await sleep(10);
          connection.exec("COMMIT");
          lockerHolding = false;
        }
      })();
      // Awaited in `finally`, where a failure of the locker still fails the test.
      locker.catch(() => undefined);
      try {
        for (let round = 0; round < chaos.lockRounds; round++) {
          // Every round after the first starts from a freshly seeded database under a fresh key.
          const from = round === 0 ? keyA : freshKey();
          if (round > 0) {
            lockerPaused = true;
            while (lockerHolding) await sleep(10);
            await db.close();
            await database.cleanup();
            database = await createTestDatabase("sqlite", "chaos_lock");
            db = await openTestDb(database.target);
            path = (database.target as { path: string }).path;
            holder.close();
            holder = new Database(path, { timeout: 2_000 });
            seed = await seedChaosDatabase(db, 400, from);
            lockerPaused = false;
          }
          const to = freshKey();
          const plain = freshKey();
          keys = new Map([from, to, plain].map((key) => [key.id, key]));
          const url = dbArg(database.target);
          const phases: { operation: Operation; args: string[] }[] = [
            { operation: { kind: "rotate", to: to.id }, args: ["rotate", "--new-key", to.base64, "--old-keys", from.base64] },
            { operation: { kind: "decrypt" }, args: ["decrypt", "--keys", to.base64] },
            { operation: { kind: "rotate", to: plain.id }, args: ["rotate", "--new-key", plain.base64] },
          ];
          for (const phase of phases) {
            const before = await readCoderState(db, [...seed.seeded.keys()]);
            let last: FinishedRun | undefined;
            for (let attempt = 0; attempt < 12 && last?.code !== 0; attempt++) {
              longHoldsAllowed = attempt < 2;
              last = await runToEnd([...phase.args, "--db", url, "--yes", "--json-events", "--busy-timeout", "50ms", "--batch-size", String(random.pick([5, 10, 20])), "--sleep", "20ms"]);
              figures.runs++;
              figures.retries += last.events.filter((event) => event.type === "retry").length;
              if (last.code === 0) figures.finished++;
              else {
                expect(last.code, last.stderr).toBe(1);
                expect(firstErrorLine(last)).toMatch(GAVE_UP);
                figures.gaveUp++;
              }
              await expectWhole(before, phase.operation, last.code === 0);
            }
            expect(last?.code, "the phase finished within 12 runs").toBe(0);
            figures.phases++;
          }
        }
      } finally {
        stopLocker = true;
        await locker;
      }
      expect(figures.retries, "the locker made dbcrypt wait and retry").toBeGreaterThan(0);
      recordFigures("sqlite-lock", { engine: "sqlite", rows: seed.rows, rounds: chaos.lockRounds, ...figures, rowsLost: 0 });
    },
    timeoutFor(chaos.lockRounds, 120_000),
  );
});
