import { DbcryptError } from "../errors.js";
import type { OpenResult, RowContext, SchemeKey } from "./schemes/value-scheme.js";

/**
 * Key-id sentinels for schemes that store no key id (keyIdSource trial). A value that has the
 * scheme's ciphertext shape is read with TRIAL_KEY_ID, meaning "encrypted, key not yet known";
 * opening it finds the key. A census that no supplied key opens reports UNIDENTIFIED_KEY_ID. Real
 * key ids are 7 hex characters, so neither can collide with one.
 */
export const TRIAL_KEY_ID = "(trial)";
export const UNIDENTIFIED_KEY_ID = "unidentified";

/** Context fingerprints remembered: which key opened this workspace's last value. */
const TRIAL_CACHE_ENTRIES = 10_000;

/**
 * The keys one run was given: at most one primary (the key new values are written under) and any
 * number of decrypt-only keys, looked up by key id. Two keys with one id would shadow each other,
 * as they do in Coder's map of ciphers, so that is refused outright.
 */
export class Keyring {
  readonly primary: SchemeKey | undefined;
  readonly #byId: Map<string, SchemeKey>;
  /** Keys that open a whole family of key ids (SchemeKey.idFamily): a KMS plugin and every key it holds. */
  readonly #families: SchemeKey[];
  readonly #lastOpenerByContext = new Map<string, SchemeKey>();

  constructor(primary: SchemeKey | undefined, decryptOnly: readonly SchemeKey[]) {
    this.primary = primary;
    this.#byId = new Map();
    for (const key of primary ? [primary, ...decryptOnly] : decryptOnly) {
      if (this.#byId.has(key.id)) {
        throw new DbcryptError("bad_key", `two supplied keys share key id ${key.id}`, {
          hint: "each key may be given once; remove the duplicate",
        });
      }
      this.#byId.set(key.id, key);
    }
    this.#families = [...this.#byId.values()].filter((key) => key.idFamily !== undefined);
  }

  static empty(): Keyring {
    return new Keyring(undefined, []);
  }

  get(keyId: string): SchemeKey | undefined {
    return this.#byId.get(keyId) ?? this.#families.find((key) => keyId.startsWith(key.idFamily as string));
  }

  has(keyId: string): boolean {
    return this.get(keyId) !== undefined;
  }

  /**
   * Authenticated trial decryption: the key that opened the last value of the same row context
   * (workspace) goes first, so a run with several keys stays at about one decryption per value.
   */
  openByTrial(cell: string, context: RowContext | undefined): { key: SchemeKey; opened: OpenResult & { ok: true } } | { key: undefined; reason: string } {
    const found = this.#trial(context, (key) => key.open(cell, context));
    if (found.key !== undefined) return { key: found.key, opened: found.result as OpenResult & { ok: true } };
    const last = found.last;
    if (last === undefined || last.ok) return { key: undefined, reason: "no key was supplied to try" };
    return { key: undefined, reason: this.#byId.size === 1 ? last.reason : `none of the ${this.#byId.size} supplied keys opens it (last: ${last.reason})` };
  }

  /**
   * Which supplied key a cell is under, by authentication alone where a key can check that more
   * cheaply than it decrypts (SchemeKey.verify): what a census needs.
   */
  identifyByTrial(cell: string, context: RowContext | undefined): { key: SchemeKey; format?: string } | undefined {
    const found = this.#trial(context, (key) => key.verify?.(cell, context) ?? key.open(cell, context));
    if (found.key === undefined) return undefined;
    const format = found.result.ok ? found.result.format : undefined;
    return format === undefined ? { key: found.key } : { key: found.key, format };
  }

  /** Tries `attempt` with each key, the context's last opener first, and remembers which succeeded. */
  #trial<R extends { ok: boolean; format?: string }>(context: RowContext | undefined, attempt: (key: SchemeKey) => R): { key: SchemeKey; result: R } | { key: undefined; last: R | undefined } {
    const contextKey = context === undefined ? "" : JSON.stringify(context);
    const first = this.#lastOpenerByContext.get(contextKey);
    let last: R | undefined;
    for (const key of first === undefined ? this.#byId.values() : [first, ...[...this.#byId.values()].filter((candidate) => candidate !== first)]) {
      last = attempt(key);
      if (!last.ok) continue;
      if (first !== key) {
        if (this.#lastOpenerByContext.size >= TRIAL_CACHE_ENTRIES) this.#lastOpenerByContext.clear();
        this.#lastOpenerByContext.set(contextKey, key);
      }
      return { key, result: last };
    }
    return { key: undefined, last };
  }

  /** Every key, primary first. */
  get keys(): SchemeKey[] {
    return [...this.#byId.values()];
  }

  get ids(): string[] {
    return [...this.#byId.keys()];
  }

  get size(): number {
    return this.#byId.size;
  }
}
