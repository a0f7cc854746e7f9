/**
 * The schemes without key ids under faults, on AtelyaOS- and Company-Agents-shaped databases: a
 * kill -9 and (PostgreSQL) a connection cut in the middle of a paced rotation, and application
 * writes landing during one. After each fault every row must hold its latest plaintext, under the
 * old or the new master key and in its own spelling; a re-run must finish the job and archive
 * the old key. Cells are checked with the independent oracles (tweetnacl, node:crypto).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dbArg } from "../support/cli.js";
import { freshKey, keyRows } from "../support/fixtures.js";
import { APP_SHAPES, isLegacy, seedApp, type AppCell, type AppShape } from "../support/app-fixtures.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";
import type { TestKey } from "../support/coder-crypto.js";
import { runToEnd, startCli } from "./support/cli-process.js";
import { CuttableProxy } from "./support/tcp-proxy.js";

const ROWS = 300;

/** Every row holds its expected plaintext (or NULL), opened by one of `keys`; returns how many under each. */
async function expectIntact(db: TestDb, app: AppShape, cells: AppCell[], keys: TestKey[], plaintextAllowed: boolean): Promise<Map<string, number>> {
  const under = new Map<string, number>();
  for (const { table, column } of app.columns) {
    const stored = new Map((await db.query<{ id: string; v: string | null }>(`SELECT id, ${column} AS v FROM ${table}`)).map((row) => [row.id, row.v]));
    for (const cell of cells.filter((candidate) => candidate.table === table)) {
      const value = stored.get(cell.id) ?? null;
      if (cell.plaintext === null) {
        expect(value, `${table} ${cell.id}`).toBeNull();
        continue;
      }
      if (plaintextAllowed && value === cell.plaintext && isLegacy(cell)) {
        under.set("plaintext", (under.get("plaintext") ?? 0) + 1);
        continue;
      }
      const opener = keys.find((key) => app.open(key, cell, value as string) === cell.plaintext);
      expect(opener, `${table} ${cell.id} opens under one of the keys with its plaintext`).toBeDefined();
      under.set(app.keyId(opener as TestKey), (under.get(app.keyId(opener as TestKey)) ?? 0) + 1);
    }
  }
  return under;
}

describe.each(APP_SHAPES.flatMap((app) => ENGINE_KINDS.map((kind) => [app.name, kind, app] as const)))("%s on %s under faults", (_name, kind, app) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let dir: string;
  let cells: AppCell[];
  const keys = { a: freshKey(), b: freshKey() };
  const keyFile = (key: TestKey) => `@${join(dir, `${key.id}.key`)}`;
  const rotateArgs = (target: string) => ["rotate", "--db", target, "--preset", app.name, "--new-key", keyFile(keys.b), "--old-keys", keyFile(keys.a), "--yes"];

  beforeEach(async () => {
    database = await createTestDatabase(kind, `appf_${app.name.replace("-", "_")}`);
    db = await openTestDb(database.target);
    url = dbArg(database.target);
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-appf-"));
    for (const key of Object.values(keys)) writeFileSync(join(dir, `${key.id}.key`), `${key.base64}\n`, { mode: 0o600 });
    cells = await seedApp(db, app, keys.a, ROWS);
    expect((await runToEnd(["keys", "init", "--db", url])).code).toBe(0);
  });

  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  async function expectFinishedByRerun(): Promise<void> {
    const rerun = await runToEnd([...rotateArgs(url), "--json"]);
    expect(rerun.code, rerun.stderr).toBe(0);
    const under = await expectIntact(db, app, cells, [keys.b], false);
    expect([...under.keys()]).toEqual([app.keyId(keys.b)]);
    expect((await keyRows(db)).map((row) => [row.active_key_digest, row.revoked_key_digest])).toEqual([[null, app.keyId(keys.a)], [app.keyId(keys.b), null]]);
  }

  it("kill -9 part way through a rotation loses nothing, and a re-run finishes it", async () => {
    const run = startCli([...rotateArgs(url), "--json-events", "--batch-size", "20", "--sleep", "20ms"]);
    const batch = await run.waitForEvent((event) => event.type === "batch" && Number(event.done) >= 60);
    expect(batch, "the run reached its third batch").toBeDefined();
    run.kill("SIGKILL");
    const killed = await run.done;
    expect(killed.signal).toBe("SIGKILL");
    const under = await expectIntact(db, app, cells, [keys.a, keys.b], true);
    expect(under.get(app.keyId(keys.b)) ?? 0, "some values were rotated before the kill").toBeGreaterThan(0);
    expect((under.get(app.keyId(keys.a)) ?? 0) + (under.get("plaintext") ?? 0), "some were not").toBeGreaterThan(0);
    await expectFinishedByRerun();
  });

  it("rows the application writes under the old key during a rotation end under the new key", async () => {
    const run = startCli([...rotateArgs(url), "--json-events", "--batch-size", "20", "--sleep", "15ms"]);
    await run.waitForEvent((event) => event.type === "batch");
    // The application, still on the old key, updates rows the walk has not reached and rows it
    // has passed, and adds new ones.
    const changed: AppCell[] = [];
    for (const cell of cells.filter((candidate) => candidate.plaintext !== null && !isLegacy(candidate)).filter((_, index) => index % 9 === 0)) {
      const updated: AppCell = { ...cell, plaintext: `${cell.plaintext} (changed by the app)` };
      await db.query(`UPDATE ${cell.table} SET ${cell.column} = $1 WHERE id = $2`, [app.seal(keys.a, updated), cell.id]);
      changed.push(updated);
    }
    const finished = await run.done;
    // 4 (incomplete, old key kept) when a change landed behind the walk; never anything else.
    expect([0, 4], finished.stderr).toContain(finished.code);
    if (finished.code === 4) expect(finished.result?.keysKept).toEqual([expect.objectContaining({ keyId: app.keyId(keys.a) })]);
    cells = cells.map((cell) => changed.find((candidate) => candidate.table === cell.table && candidate.id === cell.id) ?? cell);
    // A row written with the old key after the walk passed it needs another run: that is what the
    // closing census is for (the old key is kept while a value uses it).
    const again = await runToEnd([...rotateArgs(url), "--json"]);
    expect(again.code, again.stderr).toBe(0);
    const under = await expectIntact(db, app, cells, [keys.b], false);
    expect([...under.keys()]).toEqual([app.keyId(keys.b)]);
  });

  // SQLite has no connection to cut; the test exists for PostgreSQL only.
  if (kind === "postgres") it("a connection cut part way through a rotation ends the run with exit 1 and loses nothing", async () => {
    const target = new URL(url);
    const proxy = await CuttableProxy.start({ host: target.hostname, port: Number(target.port) });
    try {
      const run = startCli([...rotateArgs(proxy.urlFor(url)), "--json-events", "--batch-size", "20", "--sleep", "20ms"]);
      await run.waitForEvent((event) => event.type === "batch" && Number(event.done) >= 40);
      proxy.cutAll();
      const cut = await run.done;
      expect(cut.code, cut.stderr).toBe(1);
      expect(cut.stderr.split("\n")[0]).toMatch(/^dbcrypt: error: /);
      await expectIntact(db, app, cells, [keys.a, keys.b], true);
    } finally {
      await proxy.close();
    }
    await expectFinishedByRerun();
  });
});
