import { EncryptionKey } from "../crypto/encryption-key.js";
import { DbcryptError } from "../errors.js";
import { resolveKeyReference } from "../key-sources/registry.js";

/**
 * Keys arrive as a reference in a flag or an environment variable: the key itself, `@PATH` for a
 * file, `@-` for stdin, or whatever else a registered key source understands (src/key-sources).
 * This module turns the text a source returns into keys, naming the flag and position on errors.
 */
/** Every error about a key names the flag it came from in its subject, for scripts. */
async function forFlag<T>(flag: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw error instanceof DbcryptError ? error.extend({ subject: { flag } }) : error;
  }
}

export function parseKeyList(raw: string | undefined, flag: string): Promise<EncryptionKey[]> {
  return forFlag(flag, () => keyList(raw, flag));
}

export function parseSingleKey(raw: string | undefined, flag: string): Promise<EncryptionKey | undefined> {
  return forFlag(flag, () => singleKey(raw, flag));
}

/** Comma-separated, as Coder's CLI takes them; values are not trimmed there, so spaces are errors here too. */
async function keyList(raw: string | undefined, flag: string): Promise<EncryptionKey[]> {
  if (raw === undefined || raw === "") return [];
  const text = await resolveKeyReference(raw, flag);
  const keys = text
    .split(/[,\n]/)
    .filter((part, index, parts) => part !== "" || parts.length === 1 || index < parts.length - 1)
    .map((part, index) => EncryptionKey.parse(part, `${flag} key ${index + 1}`));
  rejectRepeatedKeys(keys, flag);
  return keys;
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

async function singleKey(raw: string | undefined, flag: string): Promise<EncryptionKey | undefined> {
  if (raw === undefined || raw === "") return undefined;
  const text = await resolveKeyReference(raw, flag);
  if (text.includes(",")) throw new DbcryptError("bad_key", `${flag} takes exactly one key`, { hint: "pass other keys with --old-keys" });
  return EncryptionKey.parse(text, flag);
}

/** A flag wins over its environment variable; the variable names are deliberately distinct per command. */
export function fromFlagOrEnv(flagValue: string | undefined, envName: string): string | undefined {
  return flagValue ?? (process.env[envName] === "" ? undefined : process.env[envName]);
}
