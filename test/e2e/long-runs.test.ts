/**
 * What an operator needs from a long run on a live database: one run at a time, bounded lock
 * waits that retry instead of failing, pacing, and progress a script can read (JSON Lines) or a
 * log can hold (plain lines).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { randomKey, type TestKey } from "../support/coder-crypto.js";
import { CLI_PATH, dbArg, findLeaks, registerSecret, runCli } from "../support/cli.js";
import { createCoderSchema } from "../support/coder-schema.js";
import { assertAllValues, ensureActiveKeyRow, seedCoderData, type SeedManifest } from "../support/seed.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";
import { PASSWORD_LEFT_OUT_NOTE } from "../../src/cli/common.js";
import { urlWithoutPassword } from "../../src/db/target.js";

interface RunningCli {
  stdoutLines: () => string[];
  stderr: () => string;
  done: Promise<number | null>;
}

function startCli(args: string[], extraEnv: Record<string, string> = {}): RunningCli & { signal: (name: NodeJS.Signals) => void } {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: "1", NO_COLOR: "1", ...extraEnv };
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
  return {
    signal: (name) => child.kill(name),
    stdoutLines: () => stdout.split("\n").filter((line) => line !== ""),
    stderr: () => stderr,
    done: new Promise((resolve) => child.on("close", (code) => {
      expect(findLeaks(stdout + stderr)).toEqual([]);
      resolve(code);
    })),
  };
}

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for the CLI");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe.each(ENGINE_KINDS)("long runs on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let keyA: TestKey;
  let keyB: TestKey;
  let manifest: SeedManifest;

  beforeEach(async () => {
    database = await createTestDatabase(kind, "long");
    db = await openTestDb(database.target);
    await createCoderSchema(db);
    url = dbArg(database.target);
    keyA = randomKey();
    keyB = randomKey();
    registerSecret(keyA.bytes);
    registerSecret(keyB.bytes);
    manifest = await seedCoderData(db, { users: 40, key: keyA });
    for (const entry of manifest.entries) if (entry.plaintext !== null) registerSecret(entry.plaintext);
  });

  afterEach(async () => {
    await db.close();
    await database.cleanup();
  });

  const rotateArgs = () => ["rotate", "--db", url, "--new-key", keyB.base64, "--old-keys", keyA.base64, "--yes"];

  it("runs one rotate at a time: a second run exits 5 naming the holder, the first finishes", async () => {
    const first = startCli([...rotateArgs(), "--batch-size", "5", "--sleep", "40ms", "--json-events"]);
    await until(() => first.stdoutLines().some((line) => line.includes('"type":"batch"')));
    const second = await runCli(rotateArgs());
    expect(second.code).toBe(5);
    expect(second.stderr).toMatch(/another dbcrypt run holds the lock on this database: .*(pid|dbcrypt rotate)/);
    expect(await first.done).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });
  });

  it("Ctrl-C stops at a batch boundary with exit 4 and the command to continue; running it finishes", async () => {
    const first = startCli([...rotateArgs(), "--batch-size", "5", "--sleep", "50ms"]);
    await until(() => /values; total/.test(first.stderr()));
    first.signal("SIGINT");
    expect(await first.done).toBe(4);
    expect(first.stderr()).toContain("SIGINT received, stopping at the end of the current batch");
    const summary = first.stdoutLines().join("\n");
    expect(summary).toContain("rotate: stopped by a signal before finishing; re-run to continue");
    const continueWith = /to continue: (dbcrypt rotate .*)$/m.exec(summary)?.[1];
    const shownUrl = urlWithoutPassword(url);
    const shownArgs = rotateArgs().map((arg) => (arg === keyB.base64 || arg === keyA.base64 ? "<key>" : arg === url ? shownUrl.url : arg));
    expect(continueWith).toBe(`dbcrypt ${shownArgs.join(" ")} --batch-size 5 --sleep 50ms`.replace(/'/g, ""));
    // The embedded server's URL holds a password: it is left out, and the summary says how to supply it.
    if (shownUrl.removed) expect(summary).toContain(`(${PASSWORD_LEFT_OUT_NOTE})`);
    else expect(summary).not.toContain("password");
    const finish = await runCli(rotateArgs());
    expect(finish.code, finish.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });
  });

  it("streams JSON Lines events in their documented shape, ending with the result", async () => {
    const run = await runCli([...rotateArgs(), "--batch-size", "50", "--json-events"]);
    expect(run.code, run.stderr).toBe(0);
    const events = run.stdout.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.every((event) => event.version === 1 && typeof event.time === "string" && typeof event.type === "string")).toBe(true);
    const types = events.map((event) => event.type);
    expect(types[0]).toBe("start");
    expect(types).toContain("key-inserted");
    expect(types).toContain("batch");
    expect(types).toContain("table-done");
    expect(types).toContain("key-revoked");
    expect(types.at(-2)).toBe("stop");
    expect(types.at(-1)).toBe("result");
    const start = events[0] as { totalRows: number; tables: { table: string; rows: number }[] };
    const result = events.at(-1) as { status: string; valuesWritten: number; exitCode: number };
    expect(result).toMatchObject({ status: "done", exitCode: 0 });
    expect(result.valuesWritten).toBe(start.totalRows);
    const lastBatch = events.filter((event) => event.type === "batch").at(-1) as { done: number; totalRows: number };
    expect(lastBatch.done).toBe(lastBatch.totalRows);
  });

  it("prints plain progress lines to stderr off a terminal", async () => {
    const run = await runCli([...rotateArgs(), "--batch-size", "20"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^rotate: \d+ value\(s\) to process in \d+ table\(s\)$/m);
    // Lines are at least 5 s apart, so a short run shows the first one.
    expect(run.stderr).toMatch(/^[a-z_]+: \d+\/\d+ values; total \d+\/\d+; \d+ values\/s; ETA (\d+[hms])+\d*[ms]?$/m);
    expect(run.stderr).toMatch(/^user_links: done, \d+ row\(s\) written$/m);
    expect(run.stderr).not.toContain("\u001b[");
  });

  it("waits out another writer's lock with bounded retries instead of failing", async () => {
    const holder = await openTestDb(database.target);
    try {
      if (kind === "postgres") {
        await holder.exec("BEGIN");
        await holder.query("SELECT * FROM user_links FOR UPDATE");
      } else {
        await holder.exec("BEGIN IMMEDIATE");
      }
      const run = startCli([...rotateArgs(), "--json-events", "--lock-timeout", "100ms", "--busy-timeout", "100ms"]);
      await until(() => run.stdoutLines().some((line) => line.includes('"type":"retry"')));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await holder.exec("COMMIT");
      expect(await run.done, run.stderr()).toBe(0);
      const retry = run.stdoutLines().map((line) => JSON.parse(line) as { type: string; error?: string }).find((event) => event.type === "retry");
      expect(retry?.error).toMatch(kind === "postgres" ? /lock timeout|55P03/ : /SQLITE_BUSY|locked/);
    } finally {
      await holder.close();
    }
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });
  });

  it("keys revoke waits out another writer's lock on the keys table with the same bounded retries", async () => {
    // keyB is active but unused, so it may be revoked; another session holds its row (PostgreSQL)
    // or the database's write lock (SQLite) for a while.
    await ensureActiveKeyRow(db, keyB);
    const holder = await openTestDb(database.target);
    try {
      if (kind === "postgres") {
        await holder.exec("BEGIN");
        await holder.query("SELECT * FROM dbcrypt_keys WHERE active_key_digest = $1 FOR UPDATE", [keyB.id]);
      } else {
        await holder.exec("BEGIN IMMEDIATE");
      }
      const startedAt = Date.now();
      const revoke = runCli(["keys", "revoke", keyB.id, "--db", url, "--yes", "--lock-timeout", "100ms", "--busy-timeout", "100ms"]);
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      await holder.exec(kind === "postgres" ? "COMMIT" : "COMMIT");
      const run = await revoke;
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(`revoked key ${keyB.id}`);
      expect(Date.now() - startedAt).toBeGreaterThan(1_000);
      const [row] = await db.query<{ revoked_key_digest: string | null }>("SELECT revoked_key_digest FROM dbcrypt_keys WHERE revoked_key_digest = $1", [keyB.id]);
      expect(row?.revoked_key_digest).toBe(keyB.id);
    } finally {
      await holder.close();
    }
  });

  it("--max-replica-lag checks lag between batches (no replicas here: never pauses)", async () => {
    const run = await runCli([...rotateArgs(), "--batch-size", "50", "--max-replica-lag", "1s", "--json-events"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).not.toContain('"type":"throttle"');
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });
  });

  it("--max-rows-per-second paces the run", async () => {
    const started = Date.now();
    const run = await runCli([...rotateArgs(), "--batch-size", "25", "--max-rows-per-second", "200", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const values = (JSON.parse(run.stdout) as { valuesWritten: number }).valuesWritten;
    expect(values).toBeGreaterThan(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual((values / 200) * 1000);
  });
});

/**
 * The printed continue command must be one an operator can run, and must never hold the URL's
 * password. Both ways of giving a URL with a password are run here: in --db (the password is
 * left out and the summary says to supply it through PGPASSWORD), and in DBCRYPT_DATABASE_URL (the
 * command has no --db and runs as printed). Keys come from files, so the printed command is
 * complete, and it is run through a shell exactly as printed.
 */
describe("the continue command when the database URL holds a password (postgres)", () => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let manifest: SeedManifest;
  let keyDir: string;
  let keyB: TestKey;
  let urlWithPassword: string;
  let password: string;

  beforeEach(async () => {
    database = await createTestDatabase("postgres", "continue");
    db = await openTestDb(database.target);
    await createCoderSchema(db);
    const keyA = randomKey();
    keyB = randomKey();
    registerSecret(keyA.bytes);
    registerSecret(keyB.bytes);
    manifest = await seedCoderData(db, { users: 40, key: keyA });
    for (const entry of manifest.entries) if (entry.plaintext !== null) registerSecret(entry.plaintext);
    keyDir = mkdtempSync(join(tmpdir(), "dbcrypt-continue-"));
    writeFileSync(join(keyDir, "a.key"), `${keyA.base64}\n`, { mode: 0o600 });
    writeFileSync(join(keyDir, "b.key"), `${keyB.base64}\n`, { mode: 0o600 });
    // The embedded server checks its password; the machine's server trusts every local
    // connection, which never asks for the password, so a made-up one shows the same handling.
    const url = new URL(dbArg(database.target));
    if (url.password === "") url.password = "made-up-pw-9f3a";
    password = decodeURIComponent(url.password);
    urlWithPassword = url.toString();
    registerSecret(password);
  });

  afterEach(async () => {
    rmSync(keyDir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  const keyArgs = () => ["--new-key", `@${join(keyDir, "b.key")}`, "--old-keys", `@${join(keyDir, "a.key")}`, "--yes"];

  async function interruptedSummary(args: string[], env: Record<string, string>): Promise<string> {
    const run = startCli([...args, "--batch-size", "5", "--sleep", "50ms"], env);
    await until(() => /values; total/.test(run.stderr()));
    run.signal("SIGINT");
    expect(await run.done).toBe(4);
    return run.stdoutLines().join("\n");
  }

  /** Runs the printed command through bash, with `dbcrypt` being this build. */
  function runInShell(command: string, env: Record<string, string>): { code: number | null; output: string } {
    const result = spawnSync("bash", ["-c", `dbcrypt() { "${process.execPath}" "${CLI_PATH}" "$@"; }; ${command}`], {
      env: { ...process.env, DBCRYPT_DATABASE_URL: "", DATABASE_URL: "", CI: "1", NO_COLOR: "1", ...env },
      encoding: "utf8",
    });
    const output = `${result.stdout}${result.stderr}`;
    expect(findLeaks(output)).toEqual([]);
    return { code: result.status, output };
  }

  it("--db with a password: the command leaves it out, says to use PGPASSWORD, and runs with it", async () => {
    const summary = await interruptedSummary(["rotate", "--db", urlWithPassword, ...keyArgs()], {});
    const continueWith = /to continue: (dbcrypt rotate .*)$/m.exec(summary)?.[1];
    expect(continueWith).toBe(`dbcrypt rotate --db ${urlWithoutPassword(urlWithPassword).url} ${keyArgs().join(" ")} --batch-size 5 --sleep 50ms`);
    expect(summary).toContain(`(${PASSWORD_LEFT_OUT_NOTE})`);
    const finish = runInShell(continueWith as string, { PGPASSWORD: password });
    expect(finish.code, finish.output).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });
  });

  it("URL in DBCRYPT_DATABASE_URL: the command has no --db and runs as printed", async () => {
    const env = { DBCRYPT_DATABASE_URL: urlWithPassword };
    const summary = await interruptedSummary(["rotate", ...keyArgs()], env);
    const continueWith = /to continue: (dbcrypt rotate .*)$/m.exec(summary)?.[1];
    expect(continueWith).toBe(`dbcrypt rotate ${keyArgs().join(" ")} --batch-size 5 --sleep 50ms`);
    expect(summary).not.toContain("password");
    const finish = runInShell(continueWith as string, env);
    expect(finish.code, finish.output).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });
  });
});
