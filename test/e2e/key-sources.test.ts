/**
 * Keys from where operators keep them, through the built CLI on both databases: a whole lifecycle
 * whose keys all come from commands (exec:) and passphrase backups (age:), repeated key flags,
 * plans and status that name each key's source, and backups that the `age` command-line tool
 * (Debian's package, a second implementation) opens and makes. Every key and passphrase is
 * registered with the leak scan.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CLI_PATH, dbArg, findLeaks, registerSecret, runCli } from "../support/cli.js";
import { createCoderSchema, CODER_TABLES } from "../support/coder-schema.js";
import { freshKey, keyRows, registerManifest } from "../support/fixtures.js";
import { assertAllValues, seedCoderData } from "../support/seed.js";
import { checksumDatabase, createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

const PASSPHRASE = "tangerine submarine 42";
registerSecret(PASSPHRASE);

let dir: string;
const keyA = freshKey();
const keyB = freshKey();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dbcrypt-sources-"));
  // A stand-in secret store: `store get NAME` prints the key kept under NAME, as a secret manager's CLI would.
  const vault = join(dir, "vault");
  writeFileSync(join(vault + "-a"), keyA.base64, { mode: 0o600 });
  writeFileSync(join(vault + "-b"), `${keyB.base64}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "store"), `#!/bin/sh\n[ "$1" = get ] || { echo "usage: store get NAME" >&2; exit 64; }\nexec cat "${vault}-$2"\n`, { mode: 0o700 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const store = (name: string) => `exec:${join(dir, "store")} get ${name}`;
const passphraseEnv = { DBCRYPT_TEST_PASSPHRASE: PASSPHRASE };

describe.each(ENGINE_KINDS)("keys from commands and passphrase backups on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;

  beforeEach(async () => {
    database = await createTestDatabase(kind, "sources");
    db = await openTestDb(database.target);
    await createCoderSchema(db);
    url = dbArg(database.target);
  });

  afterEach(async () => {
    await db.close();
    await database.cleanup();
  });

  it("runs a whole lifecycle with every key from exec: or age:, and names each key's source", async () => {
    const manifest = await seedCoderData(db, { users: 4, key: null });
    registerManifest(manifest);
    const backupA = join(dir, `${kind}-a.age`);

    const exported = await runCli(["keys", "export", store("a"), "--out", backupA, "--passphrase-env", "DBCRYPT_TEST_PASSPHRASE", "--work-factor", "10"], { env: passphraseEnv });
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toContain(`exported key ${keyA.id} (from ${store("a")}) to ${backupA}`);
    expect(statSync(backupA).mode & 0o777).toBe(0o600);

    const encrypt = await runCli(["rotate", "--db", url, "--new-key", `age:${backupA}`, "--passphrase-env", "DBCRYPT_TEST_PASSPHRASE", "--yes", "--json"], { env: passphraseEnv });
    expect(encrypt.code, encrypt.stderr).toBe(0);
    expect(JSON.parse(encrypt.stdout).plan.keySources).toEqual([{ keyId: keyA.id, source: `age:${backupA}`, writes: true }]);
    await assertAllValues(db, manifest, { keyId: keyA.id, key: keyA.bytes });

    const plan = await runCli(["rotate", "--db", url, "--new-key", store("b"), "--old-keys", `age:${backupA}`, "--passphrase-env", "DBCRYPT_TEST_PASSPHRASE", "--dry-run"], { env: passphraseEnv });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`key ${keyB.id} (writes) from ${store("b")}`);
    expect(plan.stdout).toContain(`key ${keyA.id} from age:${backupA}`);

    const rotate = await runCli(["rotate", "--db", url, "--new-key", store("b"), "--old-keys", `age:${backupA}`, "--passphrase-env", "DBCRYPT_TEST_PASSPHRASE", "--yes"], { env: passphraseEnv });
    expect(rotate.code, rotate.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: keyB.id, key: keyB.bytes });

    const status = await runCli(["status", "--db", url, "--keys", store("b"), "--json"]);
    expect(status.code, status.stdout).toBe(0);
    expect(JSON.parse(status.stdout).keySources).toEqual([{ keyId: keyB.id, source: store("b"), writes: false }]);
    const statusText = await runCli(["status", "--db", url, "--keys", store("b")]);
    expect(statusText.stdout).toContain(`supplied keys:\n  key ${keyB.id} from ${store("b")}`);

    // Repeated --keys flags add up: the backup of A and the command for B, the way people type them.
    const decrypt = await runCli(["decrypt", "--db", url, "--keys", `age:${backupA}`, "--keys", store("b"), "--passphrase-env", "DBCRYPT_TEST_PASSPHRASE", "--yes"], { env: passphraseEnv });
    expect(decrypt.code, decrypt.stderr).toBe(0);
    await assertAllValues(db, manifest, { keyId: null });
    expect((await keyRows(db)).every((row) => row.active_key_digest === null)).toBe(true);
  });

  it("writes nothing when a key command fails, and says which command and how", async () => {
    const manifest = await seedCoderData(db, { users: 2, key: null });
    registerManifest(manifest);
    const before = await checksumDatabase(db, CODER_TABLES);
    const failed = await runCli(["rotate", "--db", url, "--new-key", store("missing"), "--yes"]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(`dbcrypt: error: ${store("missing")}: exited with status 1`);
    expect(await checksumDatabase(db, CODER_TABLES)).toBe(before);

    const wrongPassphrase = await runCli(["rotate", "--db", url, "--new-key", `age:${join(dir, "nowhere.age")}`, "--passphrase-env", "DBCRYPT_TEST_PASSPHRASE", "--yes"], { env: passphraseEnv });
    expect(wrongPassphrase.code).toBe(2);
    expect(await checksumDatabase(db, CODER_TABLES)).toBe(before);
  });
});

/** Runs a command in a pseudo-terminal (util-linux `script`), typing each answer once its prompt shows. */
async function inTerminal(command: string[], answers: { after: RegExp; type: string }[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; screen: string }> {
  const line = command.map((part) => `'${part.replace(/'/g, "'\\''")}'`).join(" ");
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TERM: "xterm", ...env };
  delete childEnv.CI;
  const child = spawn("script", ["-qefc", `stty cols 160 rows 50; ${line}`, "/dev/null"], { env: childEnv, stdio: ["pipe", "pipe", "pipe"] });
  let screen = "";
  child.stdout.on("data", (chunk: Buffer) => { screen += chunk.toString(); });
  child.stderr.on("data", (chunk: Buffer) => { screen += chunk.toString(); });
  const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
  // Each prompt is looked for after the previous one, so a repeated prompt waits to be drawn again.
  let from = 0;
  for (const answer of answers) {
    const deadline = Date.now() + 20_000;
    let found = answer.after.exec(screen.slice(from));
    while (found === null) {
      if (Date.now() > deadline) throw new Error(`no prompt ${answer.after} on screen:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      found = answer.after.exec(screen.slice(from));
    }
    from += found.index + found[0].length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.stdin.write(answer.type);
  }
  const code = await closed;
  child.stdin.destroy();
  return { code, screen: screen.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "") };
}

describe("passphrase backups and the age command-line tool", () => {
  const passphraseFile = () => {
    const path = join(dir, "passphrase");
    writeFileSync(path, `${PASSPHRASE}\n`, { mode: 0o600 });
    chmodSync(path, 0o600);
    return path;
  };

  it("is installed (CI installs Debian's age)", () => {
    expect(spawnSync("age", ["--version"]).status).toBe(0);
  });

  it.each([["binary", []], ["armored", ["--armor"]]] as const)("a %s backup from keys export opens with age -d", async (_form, flags) => {
    const backup = join(dir, `export-${_form}.age`);
    const exported = await runCli(["keys", "export", store("a"), "--out", backup, "--passphrase-file", passphraseFile(), "--work-factor", "12", ...flags]);
    expect(exported.code, exported.stderr).toBe(0);
    const out = join(dir, `export-${_form}.out`);
    const opened = await inTerminal(["age", "-d", "-o", out, backup], [{ after: /Enter passphrase/, type: `${PASSPHRASE}\r` }]);
    expect(opened.code, opened.screen).toBe(0);
    expect(readFileSync(out, "utf8")).toBe(`${keyA.base64}\n`);
    expect(findLeaks(opened.screen)).toEqual([]);
  });

  it.each([["binary", []], ["armored", ["-a"]]] as const)("a %s backup made by age -p opens with age:", async (_form, flags) => {
    const plain = join(dir, "b.plain");
    writeFileSync(plain, `${keyB.base64}\n`, { mode: 0o600 });
    const backup = join(dir, `age-made-${_form}.age`);
    const made = await inTerminal(["age", "-p", ...flags, "-o", backup, plain], [
      { after: /Enter passphrase/, type: `${PASSPHRASE}\r` },
      { after: /Confirm passphrase/, type: `${PASSPHRASE}\r` },
    ]);
    expect(made.code, made.screen).toBe(0);
    const id = await runCli(["keys", "id", `age:${backup}`, "--passphrase-file", passphraseFile()]);
    expect(id.code, id.stderr).toBe(0);
    expect(id.stdout.trim()).toBe(keyB.id);
  });

  it("asks for the passphrase on a terminal, and twice for a new backup", async () => {
    const backup = join(dir, "prompted.age");
    const exported = await inTerminal([process.execPath, CLI_PATH, "keys", "export", store("b"), "--out", backup, "--work-factor", "10"], [
      { after: /Passphrase for the backup/, type: `${PASSPHRASE}\r` },
      { after: /\(again\)/, type: `${PASSPHRASE}\r` },
    ]);
    expect(exported.code, exported.screen).toBe(0);
    expect(findLeaks(exported.screen)).toEqual([]);
    const read = await inTerminal([process.execPath, CLI_PATH, "keys", "id", `age:${backup}`], [{ after: /Passphrase for age:/, type: `${PASSPHRASE}\r` }]);
    expect(read.code, read.screen).toBe(0);
    expect(read.screen).toContain(keyB.id);
    expect(findLeaks(read.screen)).toEqual([]);
  });

  it("refuses two different passphrases for a new backup and writes nothing", async () => {
    const backup = join(dir, "mismatch.age");
    const exported = await inTerminal([process.execPath, CLI_PATH, "keys", "export", store("b"), "--out", backup], [
      { after: /Passphrase for the backup/, type: "one passphrase\r" },
      { after: /\(again\)/, type: "another one\r" },
    ]);
    expect(exported.code).toBe(2);
    expect(exported.screen).toContain("the two passphrases differ; nothing was written");
    expect(() => statSync(backup)).toThrow();
  });

  it("will not overwrite a backup unless told to", async () => {
    const backup = join(dir, "exists.age");
    writeFileSync(backup, "precious", { mode: 0o600 });
    const again = await runCli(["keys", "export", store("a"), "--out", backup, "--passphrase-file", passphraseFile(), "--work-factor", "10"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${backup} already exists; nothing was written`);
    expect(readFileSync(backup, "utf8")).toBe("precious");
    const forced = await runCli(["keys", "export", store("a"), "--out", backup, "--passphrase-file", passphraseFile(), "--work-factor", "10", "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(statSync(backup).mode & 0o777).toBe(0o600);
  });
});
