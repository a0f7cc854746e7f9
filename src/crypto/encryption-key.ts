import { randomBytes } from "node:crypto";
import { DbcryptError } from "../errors.js";
import { aes256gcmKeyId } from "./key-id.js";
import { sealAes256Gcm, openAes256Gcm, type OpenResult } from "./aes256gcm.js";
import { decodeStrictBase64, describeBase64Problem, findBase64Problem } from "./strict-base64.js";

export const KEY_BYTES = 32;

/**
 * A 32-byte AES-256-GCM key. The bytes live in a #private field, which neither util.inspect nor
 * JSON.stringify reaches, so a key object that ends up in a log line shows only its id.
 */
export class EncryptionKey {
  readonly #bytes: Buffer;
  readonly id: string;

  private constructor(bytes: Buffer) {
    this.#bytes = bytes;
    this.id = aes256gcmKeyId(bytes);
  }

  static fromBytes(bytes: Uint8Array): EncryptionKey {
    if (bytes.length !== KEY_BYTES) {
      throw new DbcryptError("bad_key", `key must be exactly ${KEY_BYTES} bytes, got ${bytes.length}`);
    }
    return new EncryptionKey(Buffer.from(bytes));
  }

  /** `label` names where the key came from (flag and position) so the error says what to fix. */
  static parse(text: string, label: string): EncryptionKey {
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
    return new EncryptionKey(bytes);
  }

  static generate(): EncryptionKey {
    return new EncryptionKey(randomBytes(KEY_BYTES));
  }

  seal(plaintext: string | Buffer): string {
    return sealAes256Gcm(this.#bytes, plaintext);
  }

  open(stored: string): OpenResult {
    return openAes256Gcm(this.#bytes, stored);
  }

  /** The one deliberate way out for key material: `keys generate` printing a key it just made. */
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
