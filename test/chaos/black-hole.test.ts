/**
 * A silent network partition: the proxy between the CLI and PostgreSQL stops forwarding without
 * closing either side (a firewall dropping packets, a failed-over host). Nothing resets; only the
 * CLI's client-side deadlines (--connect-timeout, --query-timeout, the run-lock heartbeat every
 * --keepalive) can end the wait. A run hit by it must end by itself within those deadlines, exit 1
 * with one line naming the cause and the timeout, leave no row half-written, print the command to
 * continue, and a re-run after the partition must finish.
 *
 * Sizes: DBCRYPT_CHAOS_ROWS, DBCRYPT_CHAOS_BLACKHOLES; see support/settings.ts.
 */
import { describe, expect, it } from "vitest";
import { dbArg, runCli } from "../support/cli.js";
import { freshKey } from "../support/fixtures.js";
import { openTestDb } from "../support/test-db.js";
import { firstErrorLine, startCli } from "./support/cli-process.js";
import { prepareLifecycleCampaign, runLifecycleCampaign } from "./support/campaign.js";
import { readCoderState } from "./support/coder-state.js";
import { recordFigures, tally } from "./support/report.js";
import { seedChaosDatabase } from "./support/seeding.js";
import { chaos, timeoutFor } from "./support/settings.js";
import { expectRotated, expectStoppedPartWay, startRotateHoldingLock } from "./support/lock-session.js";
import { useProxiedPostgres } from "./support/proxied-postgres.js";

/** Short client deadlines, so that each black hole costs seconds, not the default minutes. */
const CLIENT_DEADLINES = ["--connect-timeout", "2s", "--query-timeout", "3s", "--keepalive", "1s"];
/**
 * The longest a run may take to end once the network went silent: one statement's deadline, one
 * heartbeat's, a connect's and the 2 s close grace, with room for a loaded machine.
 */
const MAX_END_AFTER_FAULT_MS = 20_000;

describe("black-holed network on postgres", () => {
  const fixture = useProxiedPostgres("chaos_hole");

  it(
    `loses nothing and never hangs over ${chaos.blackholes} black holes during rotate, decrypt, encrypt and delete of ${chaos.rows}+ rows`,
    async () => {
      const { database, db, proxy } = fixture;
      const { context, keys, seed } = await prepareLifecycleCampaign(db, dbArg(database.target), "blackhole", "black-hole", {
        proxy,
        extraArgs: CLIENT_DEADLINES,
        maxEndAfterFaultMs: MAX_END_AFTER_FAULT_MS,
      });
      const figures = await runLifecycleCampaign(context, keys, chaos.blackholes);
      const holes = figures.reduce((sum, phase) => sum + phase.faults, 0);
      expect(holes, "black holes that made a live run exit 1").toBeGreaterThanOrEqual(chaos.blackholes);
      const faulted = figures.flatMap((phase) => phase.records).filter((record) => record.outcome.startsWith("exit"));
      const endTimes = faulted.flatMap((record) => (record.endedAfterFaultMs === undefined ? [] : [record.endedAfterFaultMs])).sort((a, b) => a - b);
      recordFigures("black-hole postgres", {
        engine: "postgres",
        rows: seed.rows,
        values: seed.values,
        blackholes: holes,
        blackholesPerPhase: Object.fromEntries(figures.map((phase) => [phase.phase, phase.faults])),
        runs: figures.reduce((sum, phase) => sum + phase.runs, 0),
        finishedBeforeFault: figures.reduce((sum, phase) => sum + phase.finishedBeforeFault, 0),
        connectionsSeen: proxy.connectionsSeen,
        connectionsSwallowed: proxy.connectionsSwallowed,
        landed: tally(faulted.map((record) => record.landed)),
        errors: tally(faulted.map((record) => record.outcome)),
        interrupted: tally(faulted.flatMap((record) => (record.interrupted === undefined ? [] : [record.interrupted]))),
        endedAfterFaultMs: { min: endTimes[0], median: endTimes[Math.floor(endTimes.length / 2)], max: endTimes.at(-1) },
        valuesChecked: figures.reduce((sum, phase) => sum + phase.valuesChecked, 0),
        rowsLost: 0,
      });
    },
    timeoutFor(chaos.blackholes, 40_000, 180_000),
  );

  it("stops (exit 1) within 3 × --keepalive when only the run-lock session goes silent, before the server could free the lock", async () => {
    const rotate = await startRotateHoldingLock(fixture, ["--batch-size", "5", "--sleep", "50ms", ...CLIENT_DEADLINES]);
    const silencedAt = Date.now();
    expect(fixture.proxy.blackHoleByUpstreamPort(rotate.lockPort)).toBe(1);
    const finished = await rotate.run.done;
    const endedAfterMs = rotate.run.startedAt + finished.elapsedMs - silencedAt;
    expect(finished.code, finished.stderr).toBe(1);
    expect(firstErrorLine(finished)).toMatch(/^dbcrypt: error: lost the database connection that holds the run lock/);
    expect(finished.stderr).toMatch(/to continue once the cause is fixed: dbcrypt rotate /);
    // A ping every 1 s must be answered within 2 s: the lock's loss is noticed by 3 s, sooner
    // than the server could end the session (4 × --keepalive), and the next statement stops the
    // run. Then the bounded close (2 s grace per silent connection) and process exit.
    expect(endedAfterMs).toBeLessThan(9_000);
    await expectStoppedPartWay(fixture, rotate);
    // The partition ends; the held session closes, so the server frees the lock, and a re-run finishes.
    fixture.proxy.heal();
    const rerun = await runUntilUnlocked([...rotate.args, "--db", rotate.url, "--json"]);
    expect(rerun.code, rerun.stderr).toBe(0);
    await expectRotated(fixture, rotate);
  });

  it("gives up connecting into a black hole after --connect-timeout: exit 1, one line, nothing written", async () => {
    const { database, db, proxy } = fixture;
    const keyA = freshKey();
    const keyB = freshKey();
    const seed = await seedChaosDatabase(db, 100, keyA);
    const before = await readCoderState(db, [...seed.seeded.keys()]);
    proxy.blackHoleAll();
    const startedAt = Date.now();
    const run = await runCli(["rotate", "--db", proxy.urlFor(dbArg(database.target)), "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--connect-timeout", "1s"]);
    const elapsedMs = Date.now() - startedAt;
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr.split("\n")[0]).toMatch(/^dbcrypt: error: cannot connect to PostgreSQL at postgres:\/\/\S+: no answer within 1s \(--connect-timeout\)$/);
    expect(run.stderr).toMatch(/to continue once the cause is fixed: dbcrypt rotate /);
    expect(elapsedMs).toBeLessThan(10_000);
    expect(await readCoderState(db, [...seed.seeded.keys()])).toEqual(before);
  });

  it("status gives up on a silent server after --query-timeout instead of hanging", async () => {
    const { database, db, proxy } = fixture;
    const keyA = freshKey();
    await seedChaosDatabase(db, 100, keyA);
    // Hold status at a known point: its census waits for this lock, and the network goes silent
    // while it waits, so its answer never arrives.
    const locker = await openTestDb(database.target);
    try {
      await locker.exec("BEGIN");
      await locker.exec("LOCK TABLE user_links IN ACCESS EXCLUSIVE MODE");
      const run = startCli(["status", "--db", proxy.urlFor(dbArg(database.target)), "--query-timeout", "2s", "--lock-timeout", "1m", "--json"]);
      await until(async () => {
        const [row] = await db.query<{ n: string | number }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'dbcrypt status%' AND wait_event_type = 'Lock'",
        );
        return Number(row?.n ?? 0) > 0;
      });
      const silencedAt = Date.now();
      proxy.blackHoleAll();
      await locker.exec("COMMIT");
      const finished = await run.done;
      expect(finished.code, finished.stderr).toBe(1);
      expect(firstErrorLine(finished)).toMatch(/^dbcrypt: error: census .*: no answer from PostgreSQL within 2s \(--query-timeout\); the connection was closed$/);
      expect(run.startedAt + finished.elapsedMs - silencedAt).toBeLessThan(MAX_END_AFTER_FAULT_MS);
    } finally {
      await locker.close();
    }
  });

  async function until(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error("timed out waiting for the CLI");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** The server frees a silenced session's lock once the proxy closes it; that can take a moment. */
  async function runUntilUnlocked(args: string[]) {
    for (let tries = 0; ; tries++) {
      const run = await runCli(args);
      if (run.code !== 5 || tries >= 50) return run;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
});
