import { randomBytes } from "node:crypto";
import { DbcryptError } from "../errors.js";
import { aes256gcmKeyId } from "./key-id.js";
import { describeOpenFailure, sealAes256Gcm, openAes256Gcm, type OpenFailure } from "./aes256gcm.js";
import { decodeStrictBase64, describeBase64Problem, findBase64Problem } from "./strict-base64.js";
import type { SchemeKey, ValueScheme } from "./schemes/value-scheme.js";

export const KEY_BYTES = 32;

export type KeyOpenResult = { ok: true; plaintext: Buffer } | { ok: false; failure: OpenFailure; reason: string };

/**
 * A 32-byte key as the operator supplies it, with Coder's key id and cipher (the default scheme).
 * The bytes live in a #private field, which neither util.inspect nor JSON.stringify reaches, so a
 * key object that ends up in a log line shows only its id. toSchemeKey hands the same bytes to
 * another value scheme without ever exposing them.
 */
export class EncryptionKey implements SchemeKey {
  readonly #bytes: Buffer;
  readonly id: string;
  /** Where the operator keeps it, as plans and status show it (`env://DBCRYPT_NEW_KEY`, `@old.key`): never the key. */
  readonly source: string;

  private constructor(bytes: Buffer, source: string) {
    this.#bytes = bytes;
    this.id = aes256gcmKeyId(bytes);
    this.source = source;
  }

  static fromBytes(bytes: Uint8Array, source = "bytes"): EncryptionKey {
    if (bytes.length !== KEY_BYTES) {
      throw new DbcryptError("bad_key", `key must be exactly ${KEY_BYTES} bytes, got ${bytes.length}`);
    }
    return new EncryptionKey(Buffer.from(bytes), source);
  }

  /** `label` names where the key came from (flag and position) so the error says what to fix. */
  static parse(text: string, label: string, source = label): EncryptionKey {
    const problem = findBase64Problem(text);
    if (problem !== undefined) {
      throw new DbcryptError("bad_key", `${label} ${describeBase64Problem(problem)}`, {
        hint: "keys are standard padded base64 of 32 random bytes; `dbcrypt keys generate` makes one",
      });
    }
    const bytes = decodeStrictBase64(text) as Buffer;
    if (bytes.length !== KEY_BYTES) {
      throw new DbcryptError("bad_key", `${label} decodes to ${bytes.length} bytes; a key must be exactly ${KEY_BYTES} bytes`, {
        hint: "keys are standard padded base64 of 32 random bytes; `dbcrypt keys generate` makes one",
      });
    }
    return new EncryptionKey(bytes, source);
  }

  static generate(): EncryptionKey {
    return new EncryptionKey(randomBytes(KEY_BYTES), "generated");
  }

  seal(plaintext: string | Buffer): string {
    return sealAes256Gcm(this.#bytes, plaintext);
  }

  /** A failure carries Coder's kind of failure and the words for it (SchemeKey's `reason`). */
  open(stored: string): KeyOpenResult {
    const opened = openAes256Gcm(this.#bytes, stored);
    return opened.ok ? opened : { ...opened, reason: describeOpenFailure(opened.failure) };
  }

  /** This key as `scheme` uses it (its own key id, cell format and canary). */
  toSchemeKey(scheme: ValueScheme): SchemeKey {
    return scheme.keyFromBytes(this.#bytes);
  }

  /**
   * The deliberate ways out for key material: `keys generate` printing a key it just made, `keys
   * export` sealing one into a passphrase backup, and worker threads of this process.
   */
  exportBase64(): string {
    return this.#bytes.toString("base64");
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `EncryptionKey(${this.id})`;
  }
}
