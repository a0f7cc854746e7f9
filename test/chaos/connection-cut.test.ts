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
import { firstErrorLine, sleep } from "./support/cli-process.js";
import { prepareLifecycleCampaign, runLifecycleCampaign } from "./support/campaign.js";
import { recordFigures, tally } from "./support/report.js";
import { chaos, timeoutFor } from "./support/settings.js";
import { expectRotated, expectStoppedPartWay, startRotateHoldingLock } from "./support/lock-session.js";
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
    const rotate = await startRotateHoldingLock(fixture, ["--batch-size", "10", "--sleep", "20ms"]);
    expect(fixture.proxy.cutByUpstreamPort(rotate.lockPort)).toBe(1);
    const finished = await rotate.run.done;
    expect(finished.code, finished.stderr).toBe(1);
    expect(firstErrorLine(finished)).toMatch(/^dbcrypt: error: lost the database connection that holds the run lock/);
    // It stopped at once: far from all of the work was done, and nothing is half-written.
    await expectStoppedPartWay(fixture, rotate);
    await sleep(50);
    const rerun = await runCli([...rotate.args, "--db", rotate.url, "--json"]);
    expect(rerun.code, rerun.stderr).toBe(0);
    await expectRotated(fixture, rotate);
  });
});
