import { DbcryptError } from "../errors.js";
import type { SchemeKey } from "./schemes/value-scheme.js";

/**
 * The keys one run was given: at most one primary (the key new values are written under) and any
 * number of decrypt-only keys, looked up by key id. Two keys with one id would shadow each other,
 * as they do in Coder's map of ciphers, so that is refused outright.
 */
export class Keyring {
  readonly primary: SchemeKey | undefined;
  readonly #byId: Map<string, SchemeKey>;

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
  }

  static empty(): Keyring {
    return new Keyring(undefined, []);
  }

  get(keyId: string): SchemeKey | undefined {
    return this.#byId.get(keyId);
  }

  has(keyId: string): boolean {
    return this.#byId.has(keyId);
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
