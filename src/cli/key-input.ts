import { EncryptionKey } from "../crypto/encryption-key.js";
import { DbcryptError } from "../errors.js";
import { DEFAULT_KEY_COMMAND_TIMEOUT_MS, type KeySourceContext } from "../key-sources/key-source.js";
import { keyTextOf } from "../key-sources/key-text.js";
import { readPrivateFile } from "../key-sources/private-file.js";
import { isLiteralEntry, keySourceFor, splitKeyList } from "../key-sources/registry.js";
import { canPrompt } from "./interaction.js";

/**
 * Keys arrive as entries in flags or an environment variable: the key itself, `@PATH` or
 * `file://PATH`, `@-` for stdin, `env://VAR`, `exec:COMMAND`, `age:PATH`, or whatever else a
 * registered key source understands (src/key-sources). Repeated flags add up, and one value may
 * list entries with commas. This module turns what the sources return into keys, each carrying
 * where it came from, and names the flag and position on errors without printing a key.
 */

/** A key flag's values (one per use of the flag), or its environment variable's when the flag was not given. */
export interface KeyFlagInput {
  values: readonly string[];
  /** Set when the values came from this environment variable: a literal key there is shown as env://NAME. */
  envName?: string;
}

/** What the key-source flags say; commands that read keys add them with addKeySourceOptions. */
export interface KeySourceFlags {
  allowInsecureKeyFile?: boolean;
  passphraseFile?: string;
  passphraseEnv?: string;
  keyCommandTimeout?: number;
}

/** The environment variables whose values may be key lists (each command reads one or two). */
const KEY_LIST_VARIABLES = ["DBCRYPT_NEW_KEY", "DBCRYPT_OLD_KEYS", "DBCRYPT_KEYS", "DBCRYPT_DECRYPT_KEYS"];

/** Commander's collector for a flag that may be repeated: every value is kept, in order. */
export function collectValues(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A flag wins over its environment variable; the variable names are deliberately distinct per command. */
export function fromFlagOrEnv(flagValues: string | readonly string[] | undefined, envName: string): KeyFlagInput | undefined {
  const values = typeof flagValues === "string" ? [flagValues] : flagValues;
  if (values !== undefined && values.length > 0) return { values };
  const fromEnv = process.env[envName];
  return fromEnv === undefined || fromEnv === "" ? undefined : { values: [fromEnv], envName };
}

export function parseKeyList(input: KeyFlagInput | string | undefined, flag: string, context: KeySourceContext = keySourceContext({})): Promise<EncryptionKey[]> {
  return forFlag(flag, () => keyList(asInput(input), flag, context, false));
}

export async function parseSingleKey(input: KeyFlagInput | string | undefined, flag: string, context: KeySourceContext = keySourceContext({})): Promise<EncryptionKey | undefined> {
  return forFlag(flag, async () => {
    const keys = await keyList(asInput(input), flag, context, true);
    if (keys.length > 1) throw new DbcryptError("bad_key", `${flag} takes exactly one key`, { hint: "pass other keys with --old-keys" });
    return keys[0];
  });
}

function asInput(input: KeyFlagInput | string | undefined): KeyFlagInput {
  if (input === undefined) return { values: [] };
  return typeof input === "string" ? { values: input === "" ? [] : [input] } : input;
}

/** Every error about a key names the flag it came from in its subject, for scripts. */
async function forFlag<T>(flag: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw error instanceof DbcryptError ? error.extend({ subject: { flag } }) : error;
  }
}

/**
 * Keys in order: each entry of each value resolved by its source, and a source's text split into
 * keys on commas and newlines (a key file may hold several). Literal keys are not trimmed, as in
 * Coder's CLI, so a space inside a list is an error rather than a different key.
 */
async function keyList(input: KeyFlagInput, flag: string, context: KeySourceContext, single: boolean): Promise<EncryptionKey[]> {
  const keys: EncryptionKey[] = [];
  for (const value of input.values) {
    if (value === "") continue;
    for (const entry of splitKeyList(value, flag)) {
      const literal = isLiteralEntry(entry);
      const source = keySourceFor(entry);
      const shown = literal ? (input.envName === undefined ? `${flag} (literal)` : `env://${input.envName}`) : source.describe(entry);
      const texts = literal ? [entry] : splitKeyText(keyTextOf(await source.resolve(entry, flag, context), shown));
      texts.forEach((text, index) => {
        const position = single && texts.length === 1 ? flag : `${flag} key ${keys.length + 1}`;
        const label = literal ? position : `${position} (from ${shown})`;
        keys.push(EncryptionKey.parse(text, label, texts.length > 1 ? `${shown}#${index + 1}` : shown));
      });
    }
  }
  rejectRepeatedKeys(keys, flag);
  return keys;
}

function splitKeyText(text: string): string[] {
  return text.split(/[,\n]/).filter((part, index, parts) => part !== "" || parts.length === 1 || index < parts.length - 1);
}

/**
 * Two keys with one id would shadow each other (the keyring refuses them too), but only once a
 * database is open; checking here reports it with its position before any connection is made.
 */
function rejectRepeatedKeys(keys: EncryptionKey[], flag: string): void {
  keys.forEach((key, index) => {
    const first = keys.findIndex((other) => other.id === key.id);
    if (first < index) {
      throw new DbcryptError("bad_key", `${flag} key ${index + 1} has the same key id (${key.id}) as key ${first + 1}`, {
        hint: "give each key once",
      });
    }
  });
}

/**
 * The context every key source of one run shares. The passphrase for age: backups comes from
 * --passphrase-file, --passphrase-env or, on a terminal, a prompt (one per file); with none of
 * them the first age: entry stops the run. `keyFlagValues` are the run's key flag values, so the
 * env:// variables they name can be kept from exec: commands, whichever entry comes first.
 */
export function keySourceContext(flags: KeySourceFlags, keyFlagValues: readonly (readonly string[] | string | undefined)[] = []): KeySourceContext {
  let given: string | undefined;
  const texts = [...keyFlagValues.flatMap((value) => value ?? []), ...KEY_LIST_VARIABLES.map((name) => process.env[name] ?? "")];
  const named = texts.flatMap((text) => [...text.matchAll(/env:\/\/([A-Za-z_][A-Za-z0-9_]*)/g)].map((match) => match[1] as string));
  return {
    secretVariables: [...new Set([...named, ...(flags.passphraseEnv === undefined ? [] : [flags.passphraseEnv])])],
    allowInsecureKeyFile: flags.allowInsecureKeyFile === true,
    commandTimeoutMs: flags.keyCommandTimeout ?? DEFAULT_KEY_COMMAND_TIMEOUT_MS,
    passphrase: async (what) => {
      given ??= passphraseFromFlags(flags);
      if (given !== undefined) return given;
      return promptForPassphrase(what);
    },
  };
}

function passphraseFromFlags(flags: KeySourceFlags): string | undefined {
  if (flags.passphraseFile !== undefined) {
    const text = readPrivateFile(flags.passphraseFile, { label: "--passphrase-file", what: "passphrase file", allowInsecure: flags.allowInsecureKeyFile === true, hint: "check --passphrase-file" }).toString("utf8");
    // A file written by echo or an editor ends with a newline that is not part of the passphrase.
    const passphrase = text.replace(/\r?\n$/, "");
    if (passphrase === "") throw new DbcryptError("bad_key", `passphrase file ${flags.passphraseFile} is empty`, { hint: "put the passphrase in the file" });
    return passphrase;
  }
  if (flags.passphraseEnv !== undefined) {
    const passphrase = process.env[flags.passphraseEnv];
    if (passphrase === undefined || passphrase === "") throw new DbcryptError("bad_key", `--passphrase-env ${flags.passphraseEnv}: the variable is not set or empty`, { hint: `export ${flags.passphraseEnv} before running dbcrypt` });
    return passphrase;
  }
  return undefined;
}

async function promptForPassphrase(what: string): Promise<string> {
  if (!canPrompt()) {
    throw new DbcryptError("usage", `${what} needs a passphrase and there is no terminal to ask on`, { hint: "pass --passphrase-file FILE or --passphrase-env VAR" });
  }
  const clack = await import("@clack/prompts");
  const answer = await clack.password({ message: `Passphrase for ${what}`, output: process.stderr });
  if (clack.isCancel(answer)) throw new DbcryptError("cancelled", "cancelled: no passphrase given, nothing was read or written", { hint: "re-run and type the passphrase, or pass --passphrase-file" });
  return answer;
}

/** The passphrase a new backup is sealed with: from the flags, or typed twice on a terminal. */
export async function newBackupPassphrase(flags: KeySourceFlags, what: string): Promise<string> {
  const given = passphraseFromFlags(flags);
  if (given !== undefined) return given;
  const first = await promptForPassphrase(what);
  if (first === "") throw new DbcryptError("usage", "an empty passphrase protects nothing", { hint: "type a passphrase, or pass --passphrase-file" });
  const again = await promptForPassphrase(`${what} (again)`);
  if (again !== first) throw new DbcryptError("usage", "the two passphrases differ; nothing was written", { hint: "run it again and type the same passphrase twice" });
  return first;
}
