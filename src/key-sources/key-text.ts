import { DbcryptError } from "../errors.js";

/**
 * The text a source returned, as the key text it holds. Most sources hold the key itself (or
 * several, separated by commas or newlines); a JSON key document such as Authsome's `master.key`,
 * `{"version":1,"key":"<base64>","algorithm":…}`, holds it in its `key` field. Errors name the
 * source, never the contents.
 */
const JSON_KEY_FILE_HINT = 'a JSON key file is {"version":1,"key":"<base64>"}';

export function keyTextOf(text: string, shown: string): string {
  const trimmed = text.trim();
  if (!trimmed.startsWith("{")) return trimmed;
  let document: unknown;
  try {
    document = JSON.parse(trimmed);
  } catch {
    throw new DbcryptError("bad_key", `${shown} starts with { but is not valid JSON`, { hint: JSON_KEY_FILE_HINT });
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new DbcryptError("bad_key", `${shown} is JSON but not an object`, { hint: JSON_KEY_FILE_HINT });
  }
  const { version, key } = document as { version?: unknown; key?: unknown };
  if (version !== 1) throw new DbcryptError("bad_key", `${shown} is a JSON key file of version ${JSON.stringify(version ?? null)}; dbcrypt reads version 1`, { hint: JSON_KEY_FILE_HINT });
  if (typeof key !== "string" || key === "") throw new DbcryptError("bad_key", `${shown} is a JSON key file without a "key" string`, { hint: JSON_KEY_FILE_HINT });
  return key.trim();
}
