/**
 * PostgreSQL connections dropped at random moments by a TCP proxy inside the test: all of the
 * CLI's connections at once (the network went away) or one of them (a pooler or the server ended
 * a session). A run that loses a connection it needs must exit 1 with one clear line naming the
 * lost connection, leave no row half-written, and a re-run — through the proxy or directly — must
 * finish. The oracle checks every value and the keys table after every cut.
 *
 * Sizes: DBCRYPT_CHAOS_ROWS, DBCRYPT_CHAOS_CUTS; see support/settings.ts.
 */
import { describe, expect, it } from "vitest";
import { dbArg, runCli } from "../support/cli.js";
import { freshKey } from "../support/fixtures.js";
import { firstErrorLine, sleep, startCli } from "./support/cli-process.js";
import { prepareLifecycleCampaign, runLifecycleCampaign } from "./support/campaign.js";
import { checkTransition, inspectCoder, readCoderState } from "./support/coder-state.js";
import { recordFigures, tally } from "./support/report.js";
import { seedChaosDatabase } from "./support/seeding.js";
import { chaos, timeoutFor } from "./support/settings.js";
import { useProxiedPostgres } from "./support/proxied-postgres.js";

describe("connection cut mid-batch on postgres", () => {
  const fixture = useProxiedPostgres("chaos_cut");

  it(
    `loses nothing over ${chaos.cuts} dropped connections during rotate, decrypt, encrypt and delete of ${chaos.rows}+ rows`,
    async () => {
      const { database, db, proxy } = fixture;
      const { context, keys, seed } = await prepareLifecycleCampaign(db, dbArg(database.target), "cut", "connection-cut", { proxy });
      const figures = await runLifecycleCampaign(context, keys, chaos.cuts);
      const cuts = figures.reduce((sum, phase) => sum + phase.faults, 0);
      expect(cuts, "cuts that made a live run exit 1").toBeGreaterThanOrEqual(chaos.cuts);
      const records = figures.flatMap((phase) => phase.records);
      recordFigures("connection-cut postgres", {
        engine: "postgres",
        rows: seed.rows,
        values: seed.values,
        cuts,
        cutsPerPhase: Object.fromEntries(figures.map((phase) => [phase.phase, phase.faults])),
        runs: figures.reduce((sum, phase) => sum + phase.runs, 0),
        finishedBeforeCut: figures.reduce((sum, phase) => sum + phase.finishedBeforeFault, 0),
        connectionsSeen: proxy.connectionsSeen,
        connectionsCut: proxy.connectionsCut,
        landed: tally(records.filter((record) => record.outcome.startsWith("exit")).map((record) => record.landed)),
        faultedRunsWithCryptoThreads: records.filter((record) => record.outcome.startsWith("exit") && record.cryptoThreads > 0).length,
        errors: tally(records.filter((record) => record.outcome.startsWith("exit")).map((record) => record.outcome)),
        interrupted: tally(records.flatMap((record) => (record.interrupted === undefined ? [] : [record.interrupted]))),
        valuesChecked: figures.reduce((sum, phase) => sum + phase.valuesChecked, 0),
        rowsLost: 0,
      });
    },
    timeoutFor(chaos.cuts, 20_000, 180_000),
  );

  it("stops (exit 1) when the connection holding the run lock drops, instead of running on unlocked", async () => {
    const { database, db, proxy } = fixture;
    const keyA = freshKey();
    const keyB = freshKey();
    const seed = await seedChaosDatabase(db, 500, keyA);
    const keys = new Map([keyA, keyB].map((key) => [key.id, key]));
    const before = await readCoderState(db, [...seed.seeded.keys()]);
    const url = dbArg(database.target);
    const args = ["rotate", "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--batch-size", "10", "--sleep", "20ms", "--json-events"];
    const run = startCli([...args, "--db", proxy.urlFor(url)]);
    await run.waitForEvent((event) => event.type === "batch");
    const [holder] = await db.query<{ client_port: number }>(
      `SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()`,
    );
    expect(holder, "the run holds an advisory lock").toBeDefined();
    expect(proxy.cutByUpstreamPort(Number(holder!.client_port))).toBe(1);
    const finished = await run.done;
    expect(finished.code, finished.stderr).toBe(1);
    expect(firstErrorLine(finished)).toMatch(/^dbcrypt: error: lost the database connection that holds the run lock/);
    // It stopped at once: far from all of the work was done, and nothing is half-written.
    const after = await inspectCoder(db, seed.seeded, keys);
    expect(after.problems).toEqual([]);
    expect(checkTransition({ kind: "rotate", to: keyB.id }, seed.seeded, before, after.state, false).problems).toEqual([]);
    expect(after.valuesByKey[keyA.id] ?? 0, "values still under the old key").toBeGreaterThan(0);
    await sleep(50);
    const rerun = await runCli([...args.filter((arg) => arg !== "--json-events"), "--db", url, "--json"]);
    expect(rerun.code, rerun.stderr).toBe(0);
    const done = await inspectCoder(db, seed.seeded, keys);
    expect(done.problems).toEqual([]);
    expect(checkTransition({ kind: "rotate", to: keyB.id }, seed.seeded, before, done.state, true).problems).toEqual([]);
    expect([...done.keys.active]).toEqual([keyB.id]);
  });
});
