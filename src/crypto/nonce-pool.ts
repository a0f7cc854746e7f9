import { randomFillSync } from "node:crypto";

/**
 * One randomBytes(12) call per value halves seal throughput on small fields; drawing nonces from a
 * larger CSPRNG buffer keeps the syscall cost per value negligible. Every nonce is still fresh
 * CSPRNG output and is never handed out twice.
 */
export class NoncePool {
  readonly #nonceLength: number;
  readonly #pool: Buffer;
  #offset: number;

  constructor(nonceLength = 12, noncesPerRefill = 4096) {
    this.#nonceLength = nonceLength;
    this.#pool = Buffer.allocUnsafe(nonceLength * noncesPerRefill);
    this.#offset = this.#pool.length;
  }

  next(): Buffer {
    if (this.#offset + this.#nonceLength > this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const nonce = Buffer.from(this.#pool.subarray(this.#offset, this.#offset + this.#nonceLength));
    this.#offset += this.#nonceLength;
    return nonce;
  }
}
