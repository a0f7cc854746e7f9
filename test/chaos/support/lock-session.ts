import { expect } from "vitest";
import { dbArg } from "../../support/cli.js";
import type { TestKey } from "../../support/coder-crypto.js";
import { freshKey } from "../../support/fixtures.js";
import { startCli, type RunningCli } from "./cli-process.js";
import { checkTransition, inspectCoder, readCoderState, type DataState, type SeededValues } from "./coder-state.js";
import type { ProxiedPostgres } from "./proxied-postgres.js";
import { seedChaosDatabase } from "./seeding.js";

export interface LockedRotate {
  keyA: TestKey;
  keyB: TestKey;
  seeded: SeededValues;
  keys: Map<string, TestKey>;
  before: DataState;
  /** The direct URL, for the re-run after the fault. */
  url: string;
  /** The rotate's arguments without --db and --json-events. */
  args: string[];
  run: RunningCli;
  /** The proxy's upstream port of the session that holds the run lock. */
  lockPort: number;
}

/**
 * A paced rotate A→B of 500 rows through the proxy, waited on until its first batch, and the
 * session holding its run lock: what the lock-session fault tests strike at.
 */
export async function startRotateHoldingLock({ database, db, proxy }: ProxiedPostgres, extraArgs: string[]): Promise<LockedRotate> {
  const keyA = freshKey();
  const keyB = freshKey();
  const seed = await seedChaosDatabase(db, 500, keyA);
  const before = await readCoderState(db, [...seed.seeded.keys()]);
  const url = dbArg(database.target);
  const args = ["rotate", "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", ...extraArgs];
  const run = startCli([...args, "--json-events", "--db", proxy.urlFor(url)]);
  await run.waitForEvent((event) => event.type === "batch");
  const [holder] = await db.query<{ client_port: number }>(
    `SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()`,
  );
  expect(holder, "the run holds an advisory lock").toBeDefined();
  const keys = new Map([keyA, keyB].map((key) => [key.id, key]));
  return { keyA, keyB, seeded: seed.seeded, keys, before, url, args, run, lockPort: Number(holder!.client_port) };
}

/** The oracle after the run stopped: nothing half-written, and work still left under the old key. */
export async function expectStoppedPartWay({ db }: ProxiedPostgres, rotate: LockedRotate): Promise<void> {
  const after = await inspectCoder(db, rotate.seeded, rotate.keys);
  expect(after.problems).toEqual([]);
  expect(checkTransition({ kind: "rotate", to: rotate.keyB.id }, rotate.seeded, rotate.before, after.state, false).problems).toEqual([]);
  expect(after.valuesByKey[rotate.keyA.id] ?? 0, "values still under the old key").toBeGreaterThan(0);
}

/** The oracle after the re-run: every row rotated, nothing half-written. */
export async function expectRotated({ db }: ProxiedPostgres, rotate: LockedRotate): Promise<void> {
  const done = await inspectCoder(db, rotate.seeded, rotate.keys);
  expect(done.problems).toEqual([]);
  expect(checkTransition({ kind: "rotate", to: rotate.keyB.id }, rotate.seeded, rotate.before, done.state, true).problems).toEqual([]);
  expect([...done.keys.active]).toEqual([rotate.keyB.id]);
}
