import { Command, CommanderError } from "commander";
import { createRequire } from "node:module";
import { DbcryptError, isDbcryptError } from "../errors.js";
import { ExitCode, exitCodeForError, exitCodeForOutcome, type CommandOutcome } from "./exit-codes.js";
import { registerDecrypt } from "./commands/decrypt.js";
import { registerDelete } from "./commands/delete.js";
import { registerKeys } from "./commands/keys.js";
import { registerRotate } from "./commands/rotate.js";
import { registerStatus } from "./commands/status.js";
import { addHelpExamples } from "./help-examples.js";

const packageJson = createRequire(import.meta.url)("../../package.json") as { version: string };

/**
 * The only place that turns failures into exit codes and prints them. Everything below throws
 * typed errors; their messages hold key ids, labels and counts, never key bytes or values.
 */
export async function main(argv: string[]): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const wantsJson = argv.includes("--json") || argv.includes("--json-events");
  const run = async (body: () => Promise<CommandOutcome>): Promise<void> => {
    try {
      exitCode = exitCodeForOutcome(await body());
    } catch (error) {
      exitCode = reportError(error, wantsJson);
    }
  };
  const program = new Command("dbcrypt")
    .description("Rotate, decrypt and delete application-encrypted columns (Coder's dbcrypt scheme) in PostgreSQL and SQLite")
    .version(packageJson.version)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  registerStatus(program, run);
  registerRotate(program, run);
  registerDecrypt(program, run);
  registerDelete(program, run);
  registerKeys(program, run);
  for (const command of allCommands(program)) {
    command.exitOverride().allowExcessArguments(false);
    addHelpExamples(command);
  }
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successes; every other parse problem is a usage error (exit 2).
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    return reportError(error, wantsJson);
  }
  return exitCode;
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

function reportError(error: unknown, asJson: boolean): number {
  const failure = isDbcryptError(error)
    ? error
    : new DbcryptError("internal", `unexpected error: ${error instanceof Error ? error.message : String(error)}`, {
        hint: "this is a bug in dbcrypt; the database was left in a consistent state, re-running is safe",
        cause: error,
      });
  // A message can carry text from outside (a config key, a file or table name, a driver's error):
  // control characters in it would break the one-line error, or fake or colour output lines.
  const message = oneLine(failure.message);
  const details = failure.details.map(oneLine);
  const hint = failure.hint === undefined ? undefined : oneLine(failure.hint);
  process.stderr.write(`dbcrypt: error: ${message}\n`);
  for (const line of details) process.stderr.write(`  ${line}\n`);
  if (hint) process.stderr.write(`  hint: ${hint}\n`);
  if ((process.env.DBCRYPT_DEBUG || process.argv.includes("--verbose") || process.argv.includes("-v")) && failure.cause instanceof Error && failure.cause.stack) {
    process.stderr.write(`${failure.cause.stack}\n`);
  }
  if (asJson) {
    process.stdout.write(`${JSON.stringify({ version: 1, type: "error", error: { code: failure.code, exitCode: exitCodeForError(failure), message, details, hint: hint ?? null, subject: failure.subject } })}\n`);
  }
  return exitCodeForError(failure);
}

const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** Control characters (C0, DEL, C1, and the Unicode line and paragraph separators) as escapes. */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (char) => ESCAPES[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
