import { createCipheriv, createDecipheriv, createHash, randomBytes, randomFillSync } from "node:crypto";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The bench's own AES-256-GCM in Coder's dbcrypt format (base64(nonce12 || ct || tag16), no AAD,
 * key id = first 7 hex of sha256("aes256gcm" || key)). It is written here rather than imported from
 * src/ so that the benchmark treats dbcrypt as a black box and builds data the way an application
 * would. Key bytes stay in a #private field; nothing in the bench ever prints them.
 */
export class BenchKey {
  readonly #bytes: Buffer;
  readonly id: string;

  constructor(bytes: Buffer = randomBytes(32)) {
    if (bytes.length !== 32) throw new Error("bench key must be 32 bytes");
    this.#bytes = Buffer.from(bytes);
    this.id = createHash("sha256").update("aes256gcm").update(this.#bytes).digest("hex").slice(0, 7);
  }

  seal(plaintext: string | Buffer, nonce: Buffer = nonces.next()): string {
    const cipher = createCipheriv("aes-256-gcm", this.#bytes, nonce);
    const body = typeof plaintext === "string" ? cipher.update(plaintext, "latin1") : cipher.update(plaintext);
    const tail = cipher.final();
    return Buffer.concat([nonce, body, tail, cipher.getAuthTag()]).toString("base64");
  }

  /** Throws on a wrong key or a damaged value (the bench only opens values it wrote). */
  open(stored: string): Buffer {
    const blob = Buffer.from(stored, "base64");
    const decipher = createDecipheriv("aes-256-gcm", this.#bytes, blob.subarray(0, 12));
    decipher.setAuthTag(blob.subarray(blob.length - 16));
    const head = decipher.update(blob.subarray(12, blob.length - 16));
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  }

  /** Every spelling of the key that must never show up in output (for the leak check). */
  spellings(): string[] {
    return [this.#bytes.toString("base64"), this.#bytes.toString("hex"), this.#bytes.toString("base64url")];
  }

  /** Writes the key list as a 0600 file for `--new-key @FILE` / `--old-keys @FILE`; returns the path. */
  static writeFile(dir: string, name: string, keys: BenchKey[]): string {
    const path = join(dir, name);
    writeFileSync(path, `${keys.map((key) => key.#bytes.toString("base64")).join(",")}\n`, { mode: 0o600 });
    chmodSync(path, 0o600);
    return path;
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `BenchKey(${this.id})`;
  }
}

/** Nonces drawn from one CSPRNG buffer, as dbcrypt does; each is handed out once. */
class NoncePool {
  #pool = Buffer.allocUnsafe(12 * 4096);
  #offset = this.#pool.length;

  next(): Buffer {
    if (this.#offset + 12 > this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const nonce = Buffer.from(this.#pool.subarray(this.#offset, this.#offset + 12));
    this.#offset += 12;
    return nonce;
  }
}

const nonces = new NoncePool();
