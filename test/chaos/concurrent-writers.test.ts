/**
 * The application keeps writing while rotate runs. Coder's procedure makes the new key primary
 * first, so its writes arrive under the new key; a replica not yet restarted still writes under
 * the old one. Writers update random rows (one value, or every encrypted value of the row as a
 * token refresh does) as fast as they can while a slowed rotate walks the tables.
 *
 * Every value must end as exactly what was last written to it (no lost update: compare-and-swap
 * never overwrites a concurrent write). A value written under the old key must be picked up by a
 * later pass, or the run must end non-zero with the old key still active, and a re-run finishes.
 *
 * Sizes: DBCRYPT_CHAOS_WRITER_ROWS, DBCRYPT_CHAOS_WRITER_ROUNDS; see support/settings.ts.
 */
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openValue, sealValue, type TestKey } from "../support/coder-crypto.js";
import { dbArg, registerSecret } from "../support/cli.js";
import { encryptedColumnsOf, primaryKeyOf } from "../support/coder-schema.js";
import { freshKey } from "../support/fixtures.js";
import { coderKeepsPlaintext, ensureActiveKeyRow } from "../support/seed.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, quoteIdent, type CreatedTestDatabase, type EngineKind, type TestDb } from "../support/test-db.js";
import { firstErrorLine, runToEnd, sleep, startCli, type FinishedRun } from "./support/cli-process.js";
import { inspectCoder, pkLabel, readCoderState, type SeededValues } from "./support/coder-state.js";
import { Random } from "./support/random.js";
import { recordFigures } from "./support/report.js";
import { seedChaosDatabase, type ChaosSeed } from "./support/seeding.js";
import { chaos, timeoutFor } from "./support/settings.js";

interface Cell {
  table: string;
  pk: Record<string, string>;
  /** Indexes into encryptedColumnsOf(table). */
  columns: number[];
}

interface WriterFigures {
  writes: number;
  valuesWritten: number;
  underOldKey: number;
  /** Writes under the old key refused by the foreign key because it had just been revoked. */
  refused: number;
}

/** What the application last committed to each value: table|pk|column index → plaintext. */
type LastWritten = Map<string, string>;

function cellKey(table: string, label: string, column: number): string {
  return `${table}|${label}|${column}`;
}

/**
 * One application connection writing random cells of its share, sequentially, until told to stop:
 * each cell has exactly one writer, so "last written" is well defined.
 */
async function runWriter(db: TestDb, cells: Cell[], keys: { current: TestKey; old?: TestKey; oldShare: number }, random: Random, last: LastWritten, stop: () => boolean, figures: WriterFigures): Promise<void> {
  while (!stop()) {
    const cell = random.pick(cells);
    const columns = encryptedColumnsOf(cell.table);
    const refresh = random.chance(0.3);
    const targets = refresh ? cell.columns : [random.pick(cell.columns)];
    const key = keys.old !== undefined && random.chance(keys.oldShare) ? keys.old : keys.current;
    const plaintexts = targets.map(() => `app-write-${randomUUID()}`);
    plaintexts.forEach((plaintext) => registerSecret(plaintext));
    const pkColumns = primaryKeyOf(cell.table);
    const params: unknown[] = [];
    const set = targets.flatMap((index, position) => {
      params.push(sealValue(key.bytes, plaintexts[position] as string), key.id);
      return [`${quoteIdent(columns[index]!.column)} = $${params.length - 1}`, `${quoteIdent(columns[index]!.keyIdColumn)} = $${params.length}`];
    });
    const where = pkColumns.map((name) => {
      params.push(cell.pk[name]);
      return `${quoteIdent(name)} = $${params.length}`;
    });
    try {
      const updated = await db.query(`UPDATE ${quoteIdent(cell.table)} SET ${set.join(", ")} WHERE ${where.join(" AND ")} RETURNING 1 AS ok`, params);
      expect(updated, `${cell.table} ${pkLabel(cell.pk)} exists`).toHaveLength(1);
    } catch (error) {
      const text = String((error as { code?: unknown }).code ?? "") + String((error as Error).message);
      if (key === keys.old && /23503|FOREIGN KEY|SQLITE_CONSTRAINT/i.test(text)) {
        figures.refused++;
        continue;
      }
      throw error;
    }
    targets.forEach((index, position) => last.set(cellKey(cell.table, pkLabel(cell.pk), index), plaintexts[position] as string));
    figures.writes++;
    figures.valuesWritten += targets.length;
    if (key === keys.old) figures.underOldKey++;
    await sleep(random.between(0, 2));
  }
}

/** Cells the application writes encrypted: every non-NULL value Coder would not keep as plaintext. */
function writableCells(seeded: SeededValues): Cell[] {
  const cells: Cell[] = [];
  for (const [table, rows] of seeded) {
    for (const [label, plaintexts] of rows) {
      const columns = plaintexts.flatMap((plaintext, index) => (plaintext !== null && !coderKeepsPlaintext(table, plaintext) ? [index] : []));
      if (columns.length > 0) cells.push({ table, pk: JSON.parse(label) as Record<string, string>, columns });
    }
  }
  return cells;
}

/** Every value is what the application last wrote to it, or what was seeded if it never did. */
async function expectNoLostUpdate(db: TestDb, seeded: SeededValues, last: LastWritten, keys: Map<string, TestKey>): Promise<{ checked: number; rewritten: number }> {
  const state = await readCoderState(db, [...seeded.keys()]);
  const problems: string[] = [];
  let checked = 0;
  let rewritten = 0;
  for (const [table, rows] of seeded) {
    const columns = encryptedColumnsOf(table);
    for (const [label, plaintexts] of rows) {
      const row = state.get(table)?.get(label);
      if (row === undefined) {
        problems.push(`${table} ${label}: row is missing`);
        continue;
      }
      row.fields.forEach((field, index) => {
        checked++;
        const written = last.get(cellKey(table, label, index));
        if (written !== undefined) rewritten++;
        const expected = written ?? plaintexts[index] ?? null;
        let actual: string | null = field.value;
        if (field.keyId !== null && field.keyId !== "") {
          const key = keys.get(field.keyId);
          try {
            actual = key === undefined || field.value === null ? "(unknown key)" : openValue(key.bytes, field.value);
          } catch {
            actual = "(does not open with the key its key id names)";
          }
        }
        if (actual !== expected) {
          problems.push(`${table}.${columns[index]!.column} ${label}: ${written !== undefined ? "the application's last write was lost" : "changed although nobody wrote it"} (${actual?.startsWith("(") ? actual : "other value"})`);
        }
      });
    }
  }
  expect(problems.slice(0, 30), `${problems.length} value(s) are not what was last written`).toEqual([]);
  return { checked, rewritten };
}

/** The seeded values with the application's writes applied: what the database must hold now. */
function expectedNow(seeded: SeededValues, last: LastWritten): SeededValues {
  const merged: SeededValues = new Map();
  for (const [table, rows] of seeded) {
    merged.set(table, new Map([...rows].map(([label, plaintexts]) => [label, plaintexts.map((plaintext, index) => last.get(cellKey(table, label, index)) ?? plaintext)])));
  }
  return merged;
}

/** No lost update, and the oracle's invariants: key ids active, canaries, values open with their key. */
async function expectConsistent(db: TestDb, seeded: SeededValues, last: LastWritten, keys: Map<string, TestKey>): Promise<{ checked: number; valuesByKey: Record<string, number>; active: Set<string>; revoked: Set<string> }> {
  const { checked } = await expectNoLostUpdate(db, seeded, last, keys);
  const inspection = await inspectCoder(db, expectedNow(seeded, last), keys);
  expect(inspection.problems).toEqual([]);
  return { checked, valuesByKey: inspection.valuesByKey, active: inspection.keys.active, revoked: inspection.keys.revoked };
}

describe.each(ENGINE_KINDS)("concurrent application writers on %s", (kind: EngineKind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let writerDbs: TestDb[];
  let seed: ChaosSeed;
  let keyA: TestKey;
  let keyB: TestKey;
  let keys: Map<string, TestKey>;

  beforeEach(async () => {
    database = await createTestDatabase(kind, "chaos_writers");
    db = await openTestDb(database.target);
    keyA = freshKey();
    keyB = freshKey();
    keys = new Map([keyA, keyB].map((key) => [key.id, key]));
    seed = await seedChaosDatabase(db, chaos.writerRows, keyA);
    // Coder's procedure: the server restarted with the new key as primary, which inserted its row.
    await ensureActiveKeyRow(db, keyB);
    // SQLite has one writer at a time anyway; PostgreSQL gets two application connections.
    writerDbs = await Promise.all(Array.from({ length: kind === "postgres" ? 2 : 1 }, () => openTestDb(database.target)));
  });

  afterEach(async () => {
    for (const writer of writerDbs ?? []) await writer.close();
    await db?.close();
    await database?.cleanup();
  });

  /** Runs rotate under writers; returns the run, the writers' figures and what they last wrote. */
  async function rotateUnderWriters(random: Random, oldShare: number, last: LastWritten): Promise<{ run: FinishedRun; figures: WriterFigures }> {
    const cells = writableCells(seed.seeded);
    const figures: WriterFigures = { writes: 0, valuesWritten: 0, underOldKey: 0, refused: 0 };
    const run = startCli(["rotate", "--db", dbArg(database.target), "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--json-events", "--batch-size", String(random.pick([10, 25, 50])), "--sleep", "15ms"], { hungAfterMs: 300_000 });
    await run.waitForEvent((event) => event.type === "start");
    const writers = writerDbs.map((writer, index) =>
      runWriter(writer, cells.filter((_, cellIndex) => cellIndex % writerDbs.length === index), { current: keyB, old: oldShare > 0 ? keyA : undefined, oldShare }, random, last, () => run.exited(), figures),
    );
    const finished = await run.done;
    await Promise.all(writers);
    return { run: finished, figures };
  }

  it(
    `writes under the new key during rotate are never lost, and the old key is revoked (${chaos.writerRounds} round(s))`,
    async () => {
      const random = new Random(chaos.seed, `writers-new:${kind}`);
      const totals = { runs: 0, writes: 0, values: 0, conflictsSeen: 0, passes: 0, incomplete: 0, checked: 0 };
      const last: LastWritten = new Map();
      for (let round = 0; round < chaos.writerRounds; round++) {
        const { run, figures } = await rotateUnderWriters(random, 0, last);
        totals.runs++;
        totals.writes += figures.writes;
        totals.values += figures.valuesWritten;
        totals.conflictsSeen += run.events.filter((event) => event.type === "skipped-concurrent").reduce((sum, event) => sum + Number(event.rows), 0);
        totals.passes += run.events.filter((event) => event.type === "pass").length;
        expect(figures.writes, "the application wrote while rotate ran").toBeGreaterThan(0);
        // Done, or (rarely) rows kept changing through all three passes: exit 4, and nothing revoked.
        expect([0, 4], run.stderr).toContain(run.code);
        if (run.code === 4) {
          totals.incomplete++;
          expect(run.result?.status).toBe("incomplete");
          expect(run.result?.keysRevoked).toEqual([]);
        }
        await expectConsistent(db, seed.seeded, last, keys);
        if (run.code !== 0) {
          const rerun = await runToEnd(["rotate", "--db", dbArg(database.target), "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--json"]);
          expect(rerun.code, rerun.stderr).toBe(0);
          totals.runs++;
        }
        const after = await expectConsistent(db, seed.seeded, last, keys);
        totals.checked += after.checked;
        expect(after.valuesByKey[keyA.id] ?? 0, "values left under the old key").toBe(0);
        expect(after.revoked.has(keyA.id), "old key revoked").toBe(true);
        if (round + 1 < chaos.writerRounds) {
          // Next round: the application moves to a fresh primary, and rotate follows it.
          keyA = keyB;
          keyB = freshKey();
          keys.set(keyB.id, keyB);
          await ensureActiveKeyRow(db, keyB);
        }
      }
      recordFigures(`writers-new-key ${kind}`, { engine: kind, rows: seed.rows, ...totals, lostUpdates: 0 });
    },
    timeoutFor(chaos.writerRounds, 120_000),
  );

  it(
    "writes under the old key during rotate are picked up by a later pass or reported with a non-zero exit, the old key kept",
    async () => {
      const random = new Random(chaos.seed, `writers-old:${kind}`);
      const totals = { runs: 0, writes: 0, underOldKey: 0, refused: 0, exits: {} as Record<string, number>, checked: 0 };
      const last: LastWritten = new Map();
      for (let round = 0; round < chaos.writerRounds; round++) {
        const { run, figures } = await rotateUnderWriters(random, 0.3, last);
        totals.runs++;
        totals.writes += figures.writes;
        totals.underOldKey += figures.underOldKey;
        totals.refused += figures.refused;
        totals.exits[String(run.code)] = (totals.exits[String(run.code)] ?? 0) + 1;
        expect(figures.underOldKey, "the application wrote under the old key while rotate ran").toBeGreaterThan(0);
        const now = await expectConsistent(db, seed.seeded, last, keys);
        const underA = now.valuesByKey[keyA.id] ?? 0;
        const oldKeyActive = now.active.has(keyA.id);
        if (run.code === 0) {
          // Every old-key write was picked up by a later pass; only then may the old key go.
          expect(underA).toBe(0);
          expect(oldKeyActive).toBe(false);
        } else {
          // Reported: "incomplete" with the key kept (exit 4), or the revoke hit a value written
          // between the last census and the revoke (key_in_use, exit 3). Either way the key stays.
          expect([3, 4], run.stderr).toContain(run.code);
          if (run.code === 4) expect(run.result?.keysKept?.map((kept: { keyId: string }) => kept.keyId) ?? [], run.stderr).toContain(keyA.id);
          else expect(firstErrorLine(run)).toMatch(new RegExp(`key ${keyA.id} cannot be revoked`));
          expect(oldKeyActive, "the old key is left unrevoked").toBe(true);
        }
        // The application stopped: a re-run finishes, revokes the old key, and loses nothing.
        const rerun = await runToEnd(["rotate", "--db", dbArg(database.target), "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes", "--json"]);
        expect(rerun.code, rerun.stderr).toBe(0);
        totals.runs++;
        const done = await expectConsistent(db, seed.seeded, last, keys);
        totals.checked += done.checked;
        expect(done.valuesByKey[keyA.id] ?? 0).toBe(0);
        expect(done.revoked.has(keyA.id)).toBe(true);
        if (round + 1 < chaos.writerRounds) {
          keyA = keyB;
          keyB = freshKey();
          keys.set(keyB.id, keyB);
          await ensureActiveKeyRow(db, keyB);
        }
      }
      recordFigures(`writers-old-key ${kind}`, { engine: kind, rows: seed.rows, ...totals, lostUpdates: 0 });
    },
    timeoutFor(chaos.writerRounds, 120_000),
  );
});
