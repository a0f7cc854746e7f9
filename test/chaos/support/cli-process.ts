/**
 * The built CLI as a child process the chaos tests can watch and hurt: JSON Lines events arrive as
 * they are printed, and the test can SIGKILL it at any moment. Every byte it prints goes through
 * the shared leak scan (test/support/cli.ts findLeaks): a key or plaintext in the output fails the
 * run, whether the process finished or was killed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { CLI_PATH, findLeaks } from "../../support/cli.js";

export type CliEvent = Record<string, unknown> & { type: string };

export interface FinishedRun {
  startedAt: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  events: CliEvent[];
  elapsedMs: number;
  /** The result document (--json-events' last line, or --json's whole output), if one was printed. */
  result: Record<string, any> | undefined;
}

export interface RunningCli {
  child: ChildProcess;
  startedAt: number;
  events: CliEvent[];
  /** Resolves with the first event that matches, or undefined once the process has exited. */
  waitForEvent(match: (event: CliEvent) => boolean): Promise<CliEvent | undefined>;
  exited(): boolean;
  kill(signal: NodeJS.Signals): void;
  done: Promise<FinishedRun>;
}

const HUNG_AFTER_MS = 10 * 60_000;

export function startCli(args: string[], options: { env?: Record<string, string | undefined>; hungAfterMs?: number } = {}): RunningCli {
  const env: Record<string, string | undefined> = { ...process.env, CI: "1", NO_COLOR: "1", DBCRYPT_DATABASE_URL: undefined, DATABASE_URL: undefined, ...options.env };
  for (const name of Object.keys(env)) if (env[name] === undefined) delete env[name];
  const startedAt = Date.now();
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: env as NodeJS.ProcessEnv, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let pending = "";
  let hasExited = false;
  const events: CliEvent[] = [];
  const waiters: { match: (event: CliEvent) => boolean; resolve: (event: CliEvent | undefined) => void }[] = [];
  const deliver = (event: CliEvent) => {
    events.push(event);
    for (const waiter of [...waiters]) {
      if (waiter.match(event)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(event);
      }
    }
  };
  child.stdout!.on("data", (chunk: Buffer) => {
    const text = chunk.toString();
    stdout += text;
    pending += text;
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (!line.startsWith("{")) continue;
      try {
        const parsed = JSON.parse(line) as CliEvent;
        if (typeof parsed.type === "string") deliver(parsed);
      } catch {
        // --json prints one multi-line document; it is parsed whole at the end.
      }
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => { stderr += chunk.toString(); });
  const watchdog = setTimeout(() => {
    stderr += `\n[chaos] the run did not end within ${options.hungAfterMs ?? HUNG_AFTER_MS} ms and was killed\n`;
    child.kill("SIGKILL");
  }, options.hungAfterMs ?? HUNG_AFTER_MS);
  const done = new Promise<FinishedRun>((resolve, reject) => {
    child.on("close", (code, signal) => {
      clearTimeout(watchdog);
      hasExited = true;
      for (const waiter of waiters.splice(0)) waiter.resolve(undefined);
      const leaks = findLeaks(stdout + stderr);
      if (leaks.length > 0) {
        reject(new Error(`dbcrypt ${args[0]} printed secret material: ${leaks.join(", ")}`));
        return;
      }
      resolve({ startedAt, code, signal, stdout, stderr, events, elapsedMs: Date.now() - startedAt, result: resultOf(stdout, events) });
    });
  });
  return {
    child,
    startedAt,
    events,
    waitForEvent: (match) => {
      const seen = events.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      if (hasExited) return Promise.resolve(undefined);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
    exited: () => hasExited,
    kill: (signal) => {
      if (!hasExited) child.kill(signal);
    },
    done,
  };
}

export async function runToEnd(args: string[], options: { env?: Record<string, string | undefined>; hungAfterMs?: number } = {}): Promise<FinishedRun> {
  return startCli(args, options).done;
}

function resultOf(stdout: string, events: CliEvent[]): Record<string, any> | undefined {
  const last = events.at(-1);
  if (last?.type === "result") return last;
  const text = stdout.trim();
  if (!text.startsWith("{")) return undefined;
  try {
    return JSON.parse(text) as Record<string, any>;
  } catch {
    return undefined;
  }
}

/** The first line of stderr: for an error exit it must be the whole error, on one line. */
export function firstErrorLine(run: { stderr: string }): string {
  return run.stderr.split("\n")[0] ?? "";
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
