import type { KeyRow } from "../db/dialect.js";
import { UNIDENTIFIED_KEY_ID, type Keyring } from "../crypto/keyring.js";
import type { EncryptionKey } from "../crypto/encryption-key.js";
import type { SchemeKey, ValueScheme } from "../crypto/schemes/value-scheme.js";
import { DbcryptError } from "../errors.js";
import type { Census } from "./census.js";
import { usageByKeyId } from "./census.js";

/**
 * The checks Coder's server runs at start (dbcrypt.New), plus the one it cannot run: a census of
 * the data against the keys supplied. Each returns problems as lines naming key ids, columns and
 * counts, never key material.
 */
export function activeKeyProblems(keys: KeyRow[], keyring: Keyring): { unknown: string[]; canaryFailures: string[] } {
  const unknown: string[] = [];
  const canaryFailures: string[] = [];
  for (const row of keys) {
    if (row.activeKeyDigest === null) continue;
    const key = keyring.get(row.activeKeyDigest);
    if (key === undefined) unknown.push(row.activeKeyDigest);
    else if (!key.open(row.test).ok) canaryFailures.push(row.activeKeyDigest);
  }
  return { unknown, canaryFailures };
}

/** Values under key ids the run has no key for: the run would have to skip them or fail. */
export function dataKeyProblems(census: Census, isKnown: (keyId: string) => boolean): string[] {
  const lines: string[] = [];
  for (const [keyId, uses] of usageByKeyId(census)) {
    if (isKnown(keyId)) continue;
    for (const use of uses) {
      lines.push(
        keyId === UNIDENTIFIED_KEY_ID
          ? `${use.label}: ${use.rows} encrypted value(s) that none of the supplied keys opens`
          : keyId.startsWith("kms:")
            ? `${use.label}: ${use.rows} value(s) under ${kmsWords(keyId)}`
            : `${use.label}: ${use.rows} value(s) under key ${keyId}`,
      );
    }
  }
  return lines;
}

/** A KMS key id the run has no plugin for, and what would reach it. */
function kmsWords(keyId: string): string {
  const [, version, rest = ""] = keyId.split(":");
  const name = rest.split("/")[0];
  return version === "v2"
    ? `KMS provider ${name} (${keyId}); pass an --encryption-config that lists it with its plugin's endpoint`
    : `KMS v1 provider ${name} (${keyId}), which dbcrypt does not serve (Kubernetes deprecated KMS v1)`;
}

/** Preflight shared by rotate and decrypt: throws the first refusal, exit 3, before any write. */
export function assertKeysCoverDatabase(keys: KeyRow[], keyring: Keyring, census: Census, flag: string, options: { skipUnopenable?: boolean } = {}): void {
  const { unknown, canaryFailures } = activeKeyProblems(keys, keyring);
  if (unknown.length > 0) {
    throw new DbcryptError("unknown_key", `the keys table has active key(s) ${unknown.join(", ")} that were not supplied`, {
      hint: `add the missing key(s) to ${flag}; dbcrypt refuses to run while data may be encrypted with keys it was not given`,
      details: unknown.map((keyId) => `active key ${keyId}: not among the supplied keys`),
      subject: { keyIds: unknown, flag },
    });
  }
  if (canaryFailures.length > 0) {
    throw new DbcryptError("canary_failed", `the canary of active key(s) ${canaryFailures.join(", ")} does not decrypt with the supplied key`, {
      hint: "the key with that id is not the one that wrote the keys table row; check the key material",
      subject: { keyIds: canaryFailures, flag },
    });
  }
  // --skip-unopenable: values no supplied key opens are left for the run to report row by row.
  const unknownInData = dataKeyProblems(census, (keyId) => keyring.has(keyId) || (options.skipUnopenable === true && keyId === UNIDENTIFIED_KEY_ID));
  if (unknownInData.length > 0) {
    const missing = [...usageByKeyId(census).keys()].filter((keyId) => !keyring.has(keyId) && keyId !== UNIDENTIFIED_KEY_ID);
    const unidentified = usageByKeyId(census).has(UNIDENTIFIED_KEY_ID);
    throw new DbcryptError("unknown_key", "data is encrypted with key(s) that were not supplied", {
      hint: unidentified
        ? `add the missing key(s) to ${flag}; values no key opens may also be corrupt or plaintext that looks like ciphertext: --skip-unopenable reports and leaves them`
        : `add the missing key(s) to ${flag}`,
      details: unknownInData,
      subject: { keyIds: missing, flag },
    });
  }
}

/**
 * Supplied keys that encrypt values but have no row in the keys table, which is the usual state
 * where the application keeps no keys table and its cells carry no key id. A run records them as
 * active before its first write and revokes them once no value uses them, so the table ends up
 * archiving every key the data has moved away from. Coder-style key-id columns reference the
 * table by foreign key, so there a key in use always has a row already.
 */
export function unrecordedKeysInUse(keyring: Keyring, census: Census, keys: KeyRow[], except: string | undefined): SchemeKey[] {
  const usage = usageByKeyId(census);
  const recorded = new Set(keys.flatMap((row) => [row.activeKeyDigest, row.revokedKeyDigest]));
  return keyring.keys.filter((key) => key.id !== except && key.unkeyed !== true && usage.has(key.id) && !recorded.has(key.id));
}

/** Which source supplied a key id: plans and status show it so an operator can tell which file, variable or command was used. */
export interface KeySourceLine {
  keyId: string;
  source: string;
  /** The key new values are written under. */
  writes: boolean;
}

/** Given keys under the scheme's ids, then configured ones; each key id once. Sources only, never keys. */
export function keySourceLines(scheme: ValueScheme, given: readonly EncryptionKey[], configured: readonly SchemeKey[], writeKeyId?: string): KeySourceLine[] {
  const lines = new Map<string, KeySourceLine>();
  const add = (keyId: string, source: string) => {
    if (!lines.has(keyId)) lines.set(keyId, { keyId, source, writes: keyId === writeKeyId });
  };
  for (const key of given) add(key.toSchemeKey(scheme).id, key.source);
  for (const key of configured) add(key.id, key.source ?? `the ${scheme.name} configuration`);
  return [...lines.values()];
}
