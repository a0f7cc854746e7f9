/**
 * The CLI in a real pseudo-terminal (util-linux `script`): the confirmation prompt defaults to No,
 * a typed answer confirms, severe commands need the command name typed, and the progress bar is
 * drawn on the terminal.
 */
import { spawn } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { randomKey } from "../support/coder-crypto.js";
import { CLI_PATH, findLeaks, registerSecret } from "../support/cli.js";
import { checksumDatabase, openTestDb } from "../support/test-db.js";

const DEMO_DB = fileURLToPath(new URL("../../fixtures/demo.db", import.meta.url));
const BUNDLED_DEMO_KEY = fileURLToPath(new URL("../../fixtures/demo.key", import.meta.url));
const DEMO_TABLES = ["dbcrypt_keys", "user_links", "external_auth_links", "gitsshkeys", "user_secrets", "crypto_keys", "mcp_server_configs"];

/** Runs the CLI under `script`, typing each keystroke after the prompt has had time to draw. */
async function runInTerminal(args: string[], keystrokes: string[]): Promise<{ code: number | null; screen: string }> {
  const command = [process.execPath, CLI_PATH, ...args].map((part) => `'${part.replace(/'/g, "'\\''")}'`).join(" ");
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: "xterm", COLUMNS: "160" };
  delete env.CI;
  // A new pty has no size; clack would wrap its prompt at every character without one.
  const child = spawn("script", ["-qefc", `stty cols 160 rows 50; ${command}`, "/dev/null"], { env, stdio: ["pipe", "pipe", "pipe"] });
  let screen = "";
  child.stdout.on("data", (chunk: Buffer) => { screen += chunk.toString(); });
  child.stderr.on("data", (chunk: Buffer) => { screen += chunk.toString(); });
  const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
  for (const keystroke of keystrokes) {
    await waitFor(() => screen.includes("?") || screen.includes("Type"), 10_000);
    await new Promise((resolve) => setTimeout(resolve, 400));
    child.stdin.write(keystroke);
  }
  const code = await closed;
  child.stdin.destroy();
  return { code, screen: withoutTerminalCodes(screen) };
}

function withoutTerminalCodes(text: string): string {
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\x1b[78]/g, "").replace(/\r/g, "");
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("the prompt did not appear");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("in a terminal", () => {
  let dir: string;
  let database: string;
  let newKeyFile: string;
  let demoKeyFile: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-tty-"));
    database = join(dir, "demo.db");
    copyFileSync(DEMO_DB, database);
    const newKey = randomKey();
    registerSecret(newKey.bytes);
    // A checkout leaves the bundled key readable by all, which dbcrypt refuses: tests use a private copy.
    demoKeyFile = join(dir, "demo.key");
    copyFileSync(BUNDLED_DEMO_KEY, demoKeyFile);
    chmodSync(demoKeyFile, 0o600);
    newKeyFile = join(dir, "new.key");
    writeFileSync(newKeyFile, newKey.base64, { mode: 0o600 });
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function checksum(): Promise<string> {
    const db = await openTestDb({ kind: "sqlite", path: database });
    try {
      return await checksumDatabase(db, DEMO_TABLES);
    } finally {
      await db.close();
    }
  }

  it("rotate asks first, and Enter alone answers No: nothing is written, exit 2", async () => {
    const before = await checksum();
    const run = await runInTerminal(["rotate", "--db", database, "--new-key", `@${newKeyFile}`, "--old-keys", `@${demoKeyFile}`], ["\r"]);
    expect(run.screen).toContain("rotate 3006 value(s)");
    expect(run.screen).toContain("cancelled: nothing was written");
    expect(run.code).toBe(2);
    expect(await checksum()).toBe(before);
    expect(findLeaks(run.screen)).toEqual([]);
  });

  it("rotate proceeds on y, drawing a progress bar with values and rate", async () => {
    const run = await runInTerminal(["rotate", "--db", database, "--new-key", `@${newKeyFile}`, "--old-keys", `@${demoKeyFile}`, "--batch-size", "100"], ["y", "\r"]);
    expect(run.code, run.screen.slice(-800)).toBe(0);
    expect(run.screen).toMatch(/user_links \[[^\]]+\] 1000\/1000 values \| \d+ values\/s/);
    expect(run.screen).toContain("rotate: done");
    expect(findLeaks(run.screen)).toEqual([]);
  });

  it("delete is only confirmed by typing its name; 'y' is not enough", async () => {
    const before = await checksum();
    const refused = await runInTerminal(["delete", "--db", database], ["y\r"]);
    expect(refused.screen).toContain('Type "delete" to confirm');
    expect(refused.code).toBe(2);
    expect(await checksum()).toBe(before);
    const confirmed = await runInTerminal(["delete", "--db", database], ["delete\r"]);
    expect(confirmed.code, confirmed.screen.slice(-800)).toBe(0);
    expect(confirmed.screen).toContain("delete: done");
  });
});
