import { readFileSync } from "node:fs";
import { EncryptionKey } from "../crypto/encryption-key.js";
import { DbcryptError } from "../errors.js";

/**
 * Keys arrive as a flag value, an environment variable, or (better, since flags show up in `ps`
 * and shell history) `@PATH` to read them from a file or `@-` from standard input. '@' is not in
 * the base64 alphabet, so the two forms cannot be confused.
 */
export function readKeyText(raw: string, label: string): string {
  if (!raw.startsWith("@")) return raw;
  const path = raw.slice(1);
  try {
    return readFileSync(path === "-" ? 0 : path, "utf8").trim();
  } catch (error) {
    throw new DbcryptError("bad_key", `${label}: cannot read key file ${path === "-" ? "(stdin)" : path}: ${(error as NodeJS.ErrnoException).code ?? "read error"}`, {
      hint: "check the path after @",
    });
  }
}

/** Comma-separated, as Coder's CLI takes them; values are not trimmed there, so spaces are errors here too. */
export function parseKeyList(raw: string | undefined, flag: string): EncryptionKey[] {
  if (raw === undefined || raw === "") return [];
  const text = readKeyText(raw, flag);
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

export function parseSingleKey(raw: string | undefined, flag: string): EncryptionKey | undefined {
  if (raw === undefined || raw === "") return undefined;
  const text = readKeyText(raw, flag);
  if (text.includes(",")) throw new DbcryptError("bad_key", `${flag} takes exactly one key`, { hint: "pass other keys with --old-keys" });
  return EncryptionKey.parse(text, flag);
}

/** A flag wins over its environment variable; the variable names are deliberately distinct per command. */
export function fromFlagOrEnv(flagValue: string | undefined, envName: string): string | undefined {
  return flagValue ?? (process.env[envName] === "" ? undefined : process.env[envName]);
}
