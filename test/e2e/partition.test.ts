/**
 * `--partition I/N`: N runs share one database, each walking its part of every table. Three parts
 * run at once on both databases, one is killed with SIGKILL part way and re-run alone; a trigger
 * logs every rewrite, so "each value processed exactly once" is counted, not inferred, and the old
 * key must be revoked exactly once, by whichever part finished last. Locks keep a part from running
 * twice and a run without --partition from running beside the parts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startCli } from "../chaos/support/cli-process.js";
import { dbArg, registerSecret, runCli } from "../support/cli.js";
import { openValue } from "../support/coder-crypto.js";
import { freshKey, keyRows } from "../support/fixtures.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

const ROWS = 900;

describe.each(ENGINE_KINDS)("--partition on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let dir: string;
  const keyA = freshKey();
  const keyB = freshKey();

  beforeEach(async () => {
    database = await createTestDatabase(kind, "part");
    db = await openTestDb(database.target);
    url = dbArg(database.target);
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-part-"));
    writeFileSync(join(dir, "a.key"), keyA.base64, { mode: 0o600 });
    writeFileSync(join(dir, "b.key"), keyB.base64, { mode: 0o600 });
    expect((await runCli(["keys", "init", "--db", url])).code).toBe(0);
    // A text key, so rows hash by their text as an application's uuid or slug keys would.
    await db.exec("CREATE TABLE secrets (id VARCHAR(40) PRIMARY KEY, token TEXT, token_key_id TEXT REFERENCES dbcrypt_keys(active_key_digest))");
    await db.exec("CREATE TABLE rewrites (id VARCHAR(40) NOT NULL)");
    if (kind === "postgres") {
      await db.exec(`CREATE FUNCTION log_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO rewrites VALUES (NEW.id); RETURN NEW; END $$;
        CREATE TRIGGER secrets_rewritten AFTER UPDATE OF token ON secrets FOR EACH ROW EXECUTE FUNCTION log_rewrite();`);
    } else {
      await db.exec("CREATE TRIGGER secrets_rewritten AFTER UPDATE OF token ON secrets BEGIN INSERT INTO rewrites VALUES (NEW.id); END");
    }
    for (let first = 0; first < ROWS; first += 100) {
      const rows = Array.from({ length: 100 }, (_, offset) => first + offset);
      const placeholders = rows.map((_, index) => `($${index * 2 + 1}, $${index * 2 + 2})`).join(", ");
      await db.query(`INSERT INTO secrets (id, token) VALUES ${placeholders}`, rows.flatMap((row) => [`secret-${row}`, `token number ${row}`]));
    }
    for (let row = 0; row < ROWS; row++) registerSecret(`token number ${row}`);
    const encrypt = await runCli(["rotate", "--db", url, "--new-key", `@${join(dir, "a.key")}`, "--yes"]);
    expect(encrypt.code, encrypt.stderr).toBe(0);
    await db.exec("DELETE FROM rewrites");
  });

  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  const rotateArgs = (part: string) => ["rotate", "--db", url, "--new-key", `@${join(dir, "b.key")}`, "--old-keys", `@${join(dir, "a.key")}`, "--yes", "--partition", part, "--batch-size", "20"];

  it("three parts at once, one killed and re-run alone: every value rewritten exactly once, the old key revoked once", async () => {
    const parts = ["0/3", "1/3", "2/3"].map((part) => startCli([...rotateArgs(part), ...(part === "1/3" ? ["--json-events", "--sleep", "40ms"] : ["--json"])]));
    // Part 1 dies with SIGKILL after it has committed a few batches.
    let batches = 0;
    await parts[1]!.waitForEvent((event) => event.type === "batch" && ++batches >= 3);
    parts[1]!.kill("SIGKILL");
    const results = await Promise.all(parts.map((part) => part.done));
    expect(results[1]!.signal, `part 1 should have been killed mid-run: ${results[1]!.stderr}${results[1]!.stdout.slice(-2000)}`).toBe("SIGKILL");
    for (const index of [0, 2]) {
      expect(results[index]!.code, results[index]!.stdout + results[index]!.stderr).toBe(0);
      const result = JSON.parse(results[index]!.stdout);
      expect(result.status).toBe("done");
      expect(result.plan.partition).toBe(`${index}/3`);
      // Part 1's rows were still under the old key when these finished.
      expect(result.keysRevoked).toEqual([]);
      expect(result.keysKept).toEqual([expect.objectContaining({ keyId: keyA.id, reason: expect.stringMatching(/another part still running; the last part to finish revokes it/) })]);
    }
    expect((await keyRows(db)).find((row) => row.active_key_digest === keyA.id)).toBeDefined();

    const rerun = await runCli([...rotateArgs("1/3"), "--json"]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ status: "done", keysRevoked: [keyA.id] });

    const rewrites = await db.query<{ id: string; n: number | string }>("SELECT id, count(*) AS n FROM rewrites GROUP BY id");
    expect(rewrites).toHaveLength(ROWS);
    expect(rewrites.filter((row) => Number(row.n) !== 1)).toEqual([]);
    const values = await db.query<{ id: string; token: string; token_key_id: string }>("SELECT id, token, token_key_id FROM secrets");
    for (const row of values) {
      expect(row.token_key_id, row.id).toBe(keyB.id);
      expect(openValue(keyB.bytes, row.token)).toBe(`token number ${row.id.slice("secret-".length)}`);
    }
    const keys = await keyRows(db);
    expect(keys.filter((row) => row.revoked_key_digest === keyA.id)).toHaveLength(1);
    expect(keys.filter((row) => row.active_key_digest !== null).map((row) => row.active_key_digest)).toEqual([keyB.id]);
  });

  it("decrypt part by part reaches every row for any N, and the last part revokes", async () => {
    let current = join(dir, "a.key");
    for (const count of [1, 2, 5]) {
      const seen = new Map<string, number>();
      for (let index = 0; index < count; index++) {
        const part = await runCli(["decrypt", "--db", url, "--keys", `@${current}`, "--partition", `${index}/${count}`, "--yes", index === 0 ? "--json-events" : "--json"]);
        expect(part.code, part.stderr).toBe(0);
        if (index === 0) {
          // The first part's census sees every value; its progress counts against its share of them.
          const start = part.stdout.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as { type: string; totalRows?: number; tables?: { rows: number }[] }).find((event) => event.type === "start");
          expect(start?.totalRows, `N = ${count}`).toBe(Math.ceil(ROWS / count));
          expect(start?.tables?.reduce((sum, table) => sum + table.rows, 0)).toBe(Math.ceil(ROWS / count));
        }
        const decrypted = await db.query<{ id: string }>("SELECT id FROM secrets WHERE token_key_id IS NULL");
        for (const row of decrypted) if (!seen.has(row.id)) seen.set(row.id, index);
        // Each part added rows no earlier part had: the parts are disjoint.
        expect(decrypted.length).toBe(seen.size);
      }
      expect(seen.size, `N = ${count}`).toBe(ROWS);
      if (count > 1) expect(new Set(seen.values()).size, "every part has rows").toBe(count);
      // The decrypted key is revoked once every part has run; the next round starts under a new one.
      const next = freshKey();
      current = join(dir, `round-${count}.key`);
      writeFileSync(current, next.base64, { mode: 0o600 });
      const encrypt = await runCli(["rotate", "--db", url, "--new-key", `@${current}`, "--yes"]);
      expect(encrypt.code, encrypt.stderr).toBe(0);
    }
  });

  it("a part runs once at a time, never beside a run without --partition or a part of another N", async () => {
    const slow = startCli([...rotateArgs("0/2"), "--json-events", "--sleep", "200ms"]);
    await slow.waitForEvent((event) => event.type === "batch");
    const samePart = await runCli([...rotateArgs("0/2"), "--json"]);
    expect(samePart.code).toBe(5);
    expect(JSON.parse(samePart.stdout).error.message).toMatch(/another dbcrypt run holds the lock on partition 0\/2/);
    const whole = await runCli(["rotate", "--db", url, "--new-key", `@${join(dir, "b.key")}`, "--old-keys", `@${join(dir, "a.key")}`, "--yes", "--json"]);
    expect(whole.code).toBe(5);
    // A part of a job of another N would walk other parts' rows: refused too.
    const otherJob = await runCli([...rotateArgs("1/3"), "--json"]);
    expect(otherJob.code).toBe(5);
    expect(JSON.parse(otherJob.stdout).error.message).toMatch(/a part of a 2-part job; this run is a part of 3|holds partition 0\/2/);
    const otherPart = startCli([...rotateArgs("1/2"), "--json"]);
    slow.kill("SIGKILL");
    await slow.done;
    const other = await otherPart.done;
    expect(other.code, other.stdout).toBe(0);
  });

  it("refuses a malformed --partition with exit 2", async () => {
    for (const bad of ["3/3", "1", "-1/2", "a/b", "0/0"]) {
      const run = await runCli([...rotateArgs(bad)]);
      expect(run.code, bad).toBe(2);
      expect(run.stderr).toMatch(/--partition <I\/N>' argument .* is invalid\. must be I\/N with 0 <= I < N <= 1024/);
    }
  });
});
