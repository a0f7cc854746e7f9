import { DbcryptError } from "../errors.js";
import type { EncryptionKey } from "./encryption-key.js";

/**
 * The keys one run was given: at most one primary (the key new values are written under) and any
 * number of decrypt-only keys, looked up by key id. Two keys with one id would shadow each other,
 * as they do in Coder's map of ciphers, so that is refused outright.
 */
export class Keyring {
  readonly primary: EncryptionKey | undefined;
  readonly #byId: Map<string, EncryptionKey>;

  constructor(primary: EncryptionKey | undefined, decryptOnly: readonly EncryptionKey[]) {
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

  get(keyId: string): EncryptionKey | undefined {
    return this.#byId.get(keyId);
  }

  has(keyId: string): boolean {
    return this.#byId.has(keyId);
  }

  /** Every key, primary first. */
  get keys(): EncryptionKey[] {
    return [...this.#byId.values()];
  }

  get ids(): string[] {
    return [...this.#byId.keys()];
  }

  get size(): number {
    return this.#byId.size;
  }
}
