import { spawn } from "node:child_process";
import { DbcryptError } from "../errors.js";
import { formatDuration } from "../durations.js";
import { splitCommandLine } from "./command-line.js";
import type { KeySource, KeySourceContext } from "./key-source.js";

const EXEC_PREFIX = "exec:";
/** A key is a few dozen bytes; a command that prints more than this printed the wrong thing. */
const MAX_OUTPUT_BYTES = 1 << 20;
/** After the timeout's SIGTERM, how long a command gets to exit before SIGKILL. */
const KILL_GRACE_MS = 2_000;
/** Variables that may hold literal keys: a key command has no use for them, so it does not get them. */
const KEY_VARIABLES = ["DBCRYPT_NEW_KEY", "DBCRYPT_OLD_KEYS", "DBCRYPT_KEYS", "DBCRYPT_DECRYPT_KEYS"];

/**
 * `exec:COMMAND`: runs a command and reads the key from its standard output. This is how Vault,
 * cloud secret managers and OS keyrings are reached without bundling their SDKs (docs/keys.md has
 * a recipe for each). No shell runs unless the command is one (`exec:sh -c '…'`). Its standard
 * error passes through, so a CLI's own complaint (expired token, no such secret) reaches the
 * operator; its standard output never appears in a message. Standard input is not given to it:
 * dbcrypt may be reading keys from there itself. Nor are the variables that may hold keys or the
 * passphrase (DBCRYPT_*KEY*, the run's env:// variables, --passphrase-env).
 */
export const execSource: KeySource = {
  name: "exec",
  takesRestOfList: true,
  matches: (entry) => entry.startsWith(EXEC_PREFIX),
  resolve: (entry, _label, context) => runKeyCommand(entry, context),
  describe: (entry) => entry,
};

async function runKeyCommand(entry: string, context: KeySourceContext): Promise<string> {
  const argv = splitCommandLine(entry.slice(EXEC_PREFIX.length));
  if (argv === undefined) throw new DbcryptError("bad_key", `${entry}: unclosed quote or trailing backslash`, { hint: "quote arguments as a shell would; no shell runs unless the command is sh -c '…'" });
  const [program, ...args] = argv;
  if (program === undefined) throw new DbcryptError("bad_key", "exec: names no command", { hint: "write exec:COMMAND ARGS…, e.g. exec:vault kv get -field=key secret/dbcrypt" });
  const failed = (message: string, hint: string) => new DbcryptError("key_source_failed", `${entry}: ${message}`, { hint });
  return new Promise<string>((resolve, reject) => {
    const env = { ...process.env };
    for (const name of [...KEY_VARIABLES, ...context.secretVariables]) delete env[name];
    // Off a terminal (CI, scripts), the command gets its own process group, so a timeout stops all
    // of it (a wrapper script's children, a pipeline) rather than leaving them holding dbcrypt's
    // output open. On a terminal it stays in the foreground group: Ctrl-C reaches it, and a tool
    // that asks on /dev/tty (a keyring unlock) can.
    const ownGroup = process.stdin.isTTY !== true;
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "inherit"], env, detached: ownGroup });
    const signalCommand = (signal: NodeJS.Signals) => {
      try {
        if (ownGroup && child.pid !== undefined) process.kill(-child.pid, signal);
        else child.kill(signal);
      } catch {
        // Already gone.
      }
    };
    // dbcrypt ending first (an error elsewhere, a signal) must not leave the command running.
    const killOnExit = () => signalCommand("SIGKILL");
    const forwardSignal = (signal: NodeJS.Signals) => {
      signalCommand("SIGKILL");
      release();
      process.kill(process.pid, signal);
    };
    process.once("exit", killOnExit);
    process.once("SIGINT", forwardSignal);
    process.once("SIGTERM", forwardSignal);
    let killTimer: NodeJS.Timeout | undefined;
    const release = () => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      process.removeListener("exit", killOnExit);
      process.removeListener("SIGINT", forwardSignal);
      process.removeListener("SIGTERM", forwardSignal);
    };
    const chunks: Buffer[] = [];
    let bytes = 0;
    let ending: DbcryptError | undefined;
    const stop = (reason: DbcryptError) => {
      ending ??= reason;
      child.stdout.destroy();
      signalCommand("SIGTERM");
      killTimer = setTimeout(() => signalCommand("SIGKILL"), KILL_GRACE_MS);
      killTimer.unref();
    };
    const timer = setTimeout(() => stop(failed(`did not finish within ${formatDuration(context.commandTimeoutMs)}`, "check that the command works on its own, or raise --key-command-timeout")), context.commandTimeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_OUTPUT_BYTES) stop(failed(`printed more than ${MAX_OUTPUT_BYTES} bytes; a key is a few dozen`, "make the command print only the key (e.g. vault -field=, aws --query SecretString --output text)"));
      else chunks.push(chunk);
    });
    child.on("error", (error: NodeJS.ErrnoException) => {
      release();
      const message = error.code === "ENOENT" ? `command not found: ${program}` : `cannot run ${program}: ${error.code ?? error.message}`;
      reject(failed(message, "install the command or give its full path; PATH is searched as usual"));
    });
    child.on("close", (code, signal) => {
      release();
      if (ending !== undefined) return reject(ending);
      if (signal !== null) return reject(failed(`was killed by ${signal}`, "check that the command works on its own"));
      if (code !== 0) return reject(failed(`exited with status ${code}`, "its own error output is above; check that it works on its own"));
      const output = Buffer.concat(chunks).toString("utf8");
      if (output.trim() === "") return reject(new DbcryptError("bad_key", `${entry} printed nothing on standard output`, { hint: "make the command print the key" }));
      resolve(output);
    });
  });
}
