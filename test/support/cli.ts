/**
 * Runs the built CLI as a separate process, exactly as an operator would, and checks every byte it
 * printed for leaked secrets: each registered key (base64 and hex) and each registered plaintext.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { TestDbTarget } from "./test-db.js";

export const CLI_PATH = fileURLToPath(new URL("../../bin/dbcrypt.js", import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const secrets = new Set<string>();

/** Registers a key or plaintext that must never appear in CLI output. */
export function registerSecret(secret: string | Buffer): void {
  if (Buffer.isBuffer(secret)) {
    secrets.add(secret.toString("base64"));
    secrets.add(secret.toString("hex"));
    return;
  }
  // Very short plaintexts ("", "{}") would match ordinary output by accident.
  if (secret.length >= 6) secrets.add(secret);
}

export function findLeaks(text: string): string[] {
  return [...secrets].filter((secret) => text.includes(secret)).map((secret) => `${secret.slice(0, 3)}… (${secret.length} chars)`);
}

export function dbArg(target: TestDbTarget): string {
  return target.kind === "postgres" ? target.url : `sqlite:${target.path}`;
}

/** A module the test suite loads into the CLI process with --import, e.g. a toy key source. */
export function testPlugin(name: string): string {
  return fileURLToPath(new URL(`./plugins/${name}`, import.meta.url));
}

export async function runCli(args: string[], options: { env?: Record<string, string | undefined>; input?: string; cwd?: string; nodeArgs?: string[] } = {}): Promise<CliRun> {
  const env: Record<string, string | undefined> = { ...process.env, CI: "1", NO_COLOR: "1", DBCRYPT_DATABASE_URL: undefined, DATABASE_URL: undefined, ...options.env };
  for (const name of Object.keys(env)) if (env[name] === undefined) delete env[name];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI_PATH, ...args], { env: env as NodeJS.ProcessEnv, cwd: options.cwd, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
  child.stdin.end(options.input ?? "");
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const leaks = findLeaks(stdout + stderr);
  if (leaks.length > 0) throw new Error(`dbcrypt ${args[0]} printed secret material: ${leaks.join(", ")}`);
  return { code, stdout, stderr };
}
