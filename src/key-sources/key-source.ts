/**
 * Where key text comes from. Each entry of a key flag (or its environment variable) is handed to
 * the first registered source whose syntax it is; the caller never knows whether the key came from
 * the command line, a file, a command or a passphrase-protected backup. Sources return text:
 * parsing it into keys is the caller's job (key-text.ts reads the shapes every source shares).
 */
export interface KeySource {
  /** A short name for docs and errors ("file", "exec", "literal"). */
  readonly name: string;
  /** Whether `entry` is this source's syntax. */
  matches(entry: string): boolean;
  /** The key text the entry stands for: one key, several separated by commas or newlines, or a JSON key document. */
  resolve(entry: string, label: string, context: KeySourceContext): Promise<string>;
  /**
   * How plans, status and continue commands show the entry: the entry itself when repeating it
   * reveals nothing (a file path, a variable's name, a command), otherwise a placeholder. Never key material.
   */
  describe(entry: string): string;
  /** True for a source whose entry may itself contain commas (a command line): it takes the rest of the flag's value. */
  readonly takesRestOfList?: boolean;
}

/** What the flags of one run say about reading keys; one context serves every entry of the run. */
export interface KeySourceContext {
  /** --allow-insecure-key-file: read key files that group or others can read. */
  readonly allowInsecureKeyFile: boolean;
  /** --key-command-timeout: how long an exec: command may run. */
  readonly commandTimeoutMs: number;
  /** The passphrase for an age: backup named `what`: read once from its flag, or asked for per file on a terminal. */
  passphrase(what: string): Promise<string>;
  /** Environment variables that hold keys or the passphrase in this run: exec: commands do not get them. */
  readonly secretVariables: readonly string[];
}

export const DEFAULT_KEY_COMMAND_TIMEOUT_MS = 30_000;
