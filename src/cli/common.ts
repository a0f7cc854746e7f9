import { Command, InvalidArgumentError, Option } from "commander";
import { DbcryptError } from "../errors.js";
import type { OperationPlan, OperationResult, WriteRequest } from "../ops/operation.js";
import { openSession, type Session } from "../ops/session.js";
import { redactUrl } from "../db/target.js";
import type { EmitEvent } from "../report/events.js";
import { formatPlan, formatResult } from "../report/human.js";
import { createProgressRenderer } from "../report/progress.js";
import { confirmStep } from "./interaction.js";
import { StopController } from "./stop.js";

export interface GlobalFlags {
  db?: string;
  config?: string;
  keysTable?: string;
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
}

export interface WriteFlags extends GlobalFlags {
  yes?: boolean;
  dryRun?: boolean;
  batchSize: number;
  maxDuration?: number;
}

export const DEFAULT_BATCH_SIZE = 1000;

export function addGlobalOptions(command: Command): Command {
  return command
    .option("--db <url>", "postgres://… URL, sqlite:PATH, or a .db/.sqlite/.sqlite3 path (env DBCRYPT_DATABASE_URL, then DATABASE_URL)")
    .option("--config <file>", "config file (default: ./dbcrypt.config.json when present)")
    .option("--keys-table <name>", "name of the keys table (default dbcrypt_keys)")
    .option("--json", "print one JSON document on stdout instead of text")
    .option("-q, --quiet", "print only errors and the result")
    .option("--no-color", "plain output (NO_COLOR is honoured too)");
}

export function addWriteOptions(command: Command): Command {
  return addGlobalOptions(command)
    .option("-y, --yes", "confirm without a prompt (required when there is no TTY)")
    .option("--dry-run", "show the plan and write nothing")
    .addOption(new Option("--batch-size <rows>", "rows per batch transaction").default(DEFAULT_BATCH_SIZE).argParser(parsePositiveInteger))
    .addOption(new Option("--max-duration <duration>", "stop cleanly at the first batch boundary after this long (90s, 45m, 2h); exit 4").argParser(parseDuration));
}

export function parsePositiveInteger(text: string): number {
  if (!/^[1-9][0-9]*$/.test(text) || Number(text) > 1_000_000) throw new InvalidArgumentError("must be a whole number from 1 to 1000000");
  return Number(text);
}

export function parseDuration(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(text);
  if (!match) throw new InvalidArgumentError("must be a duration such as 90s, 45m or 2h");
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
  return Number(match[1]) * unit;
}

export function databaseFrom(flags: GlobalFlags): string | undefined {
  return flags.db ?? process.env.DBCRYPT_DATABASE_URL ?? process.env.DATABASE_URL;
}

export async function withSession<T>(flags: GlobalFlags, command: string, readOnly: boolean, body: (session: Session) => Promise<T>): Promise<T> {
  const session = await openSession({ database: databaseFrom(flags), configPath: flags.config, keysTable: flags.keysTable, command, readOnly });
  try {
    return await body(session);
  } finally {
    await session.dialect.close();
  }
}

/**
 * A dry run only reads, so it opens the database read-only: it then works on a read-only SQLite
 * file (or copy), and the database itself guarantees it cannot write.
 */
export function readOnlyFor(flags: { dryRun?: boolean }): boolean {
  return Boolean(flags.dryRun);
}

export function writeStdout(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

export function note(flags: GlobalFlags, text: string): void {
  if (!flags.quiet) process.stderr.write(`${text}\n`);
}

/** Builds the WriteRequest the ops need from flags: progress, stop handling and confirmation. */
export function writeRequest(flags: WriteFlags, command: "rotate" | "decrypt" | "delete", stop: StopController): { request: WriteRequest; close: () => void } {
  const progress = createProgressRenderer({
    mode: flags.quiet || flags.json ? "silent" : process.stderr.isTTY ? "bar" : "lines",
    lineIntervalMs: 5_000,
  });
  const emit: EmitEvent = (event) => progress.emit(event);
  const request: WriteRequest = {
    batchSize: flags.batchSize,
    dryRun: Boolean(flags.dryRun),
    emit,
    shouldStop: () => stop.shouldStop(),
    stopReason: () => stop.reason,
    confirm: async (plan: OperationPlan) => {
      if (!flags.quiet && !flags.json) process.stderr.write(`${formatPlan(plan)}\n`);
      await confirmStep(`${command} ${plan.totalRows} value(s) on ${plan.target}?`, { yes: Boolean(flags.yes), command, severe: command !== "rotate" });
      stop.startClock(flags.maxDuration);
    },
  };
  return { request, close: progress.close };
}

const KEY_FLAGS = new Set(["--new-key", "--old-keys", "--keys"]);

/**
 * The exact command to continue a run that stopped: the same arguments, with key values replaced
 * (unless they are @FILE references) and the database URL's password removed.
 */
export function continueCommand(argv: readonly string[]): string {
  const args = argv.slice(2);
  const shown = args.map((arg, index) => {
    const previous = args[index - 1] ?? "";
    const [flag, inlineValue] = arg.startsWith("--") && arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)] : [undefined, undefined];
    if (flag !== undefined && KEY_FLAGS.has(flag)) return inlineValue?.startsWith("@") ? arg : `${flag}=<key>`;
    if (KEY_FLAGS.has(previous)) return arg.startsWith("@") ? arg : "<key>";
    if (previous === "--db" || flag === "--db") return flag ? `--db=${redactUrl(inlineValue ?? "")}` : redactUrl(arg);
    return arg;
  });
  return ["dbcrypt", ...shown].map((part) => (/^[\w@%+=:,./<>-]+$/.test(part) ? part : `'${part.replace(/'/g, "'\\''")}'`)).join(" ");
}

export function printResult(flags: GlobalFlags, result: OperationResult): number {
  if (result.continueWith !== undefined) result.continueWith = continueCommand(process.argv);
  if (flags.json) writeStdout(JSON.stringify({ version: 1, ...result }, null, 2));
  else writeStdout(formatResult(result));
  return result.exitCode;
}

export function requireValue<T>(value: T | undefined, message: string, hint: string): T {
  if (value === undefined) throw new DbcryptError("usage", message, { hint });
  return value;
}
