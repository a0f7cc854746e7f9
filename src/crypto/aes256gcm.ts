import { createCipheriv, createDecipheriv } from "node:crypto";
import { NoncePool } from "./nonce-pool.js";
import { decodeStrictBase64 } from "./strict-base64.js";

/**
 * Coder's dbcrypt value format: base64(nonce(12) || ciphertext || tag(16)), AES-256-GCM, no AAD,
 * no version byte. node:crypto is used rather than @noble/ciphers because it measured 3.5-7x
 * faster for this cipher on the field sizes that matter.
 */
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** Why a stored value could not be opened. Deliberately carries no part of the value. */
export type OpenFailure = "not_base64" | "too_short" | "authentication_failed";

/** Plaintext stays bytes so a rotation is lossless even for values that are not valid UTF-8. */
export type OpenResult = { ok: true; plaintext: Buffer } | { ok: false; failure: OpenFailure };

const sharedNonces = new NoncePool(NONCE_BYTES);

export function sealAes256Gcm(key: Uint8Array, plaintext: string | Buffer, nonce: Buffer = sharedNonces.next()): string {
  // GCM takes other nonce lengths, but open() (and Coder) read exactly 12 bytes back.
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const body = typeof plaintext === "string" ? cipher.update(plaintext, "utf8") : cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([nonce, body, tail, cipher.getAuthTag()]).toString("base64");
}

/** The same cipher on bytes, for schemes that spell the blob another way (crypto/cell-encoding.ts). */
export function sealAes256GcmBytes(key: Uint8Array, plaintext: string | Buffer, nonce: Buffer = sharedNonces.next()): Buffer {
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const body = typeof plaintext === "string" ? cipher.update(plaintext, "utf8") : cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([nonce, body, tail, cipher.getAuthTag()]);
}

/** Opens nonce(12) ‖ ciphertext ‖ tag(16) given as bytes; `aad` only where the scheme binds one. */
export function openAes256GcmBytes(key: Uint8Array, blob: Uint8Array, aad?: Uint8Array): Buffer | undefined {
  if (blob.length < NONCE_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, blob.subarray(0, NONCE_BYTES));
    if (aad !== undefined) decipher.setAAD(aad);
    decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
    const head = decipher.update(blob.subarray(NONCE_BYTES, blob.length - TAG_BYTES));
    const tail = decipher.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    return undefined;
  }
}

export function openAes256Gcm(key: Uint8Array, stored: string): OpenResult {
  // Go decodes "" (and bare CR/LF) to zero bytes, which Coder reports as "ciphertext too short".
  if (stored.replace(/[\r\n]/g, "") === "") return { ok: false, failure: "too_short" };
  const blob = decodeStrictBase64(stored);
  if (blob === undefined) return { ok: false, failure: "not_base64" };
  if (blob.length < NONCE_BYTES) return { ok: false, failure: "too_short" };
  // Go reports a blob of 12..27 bytes as an authentication failure, not as "too short".
  if (blob.length < NONCE_BYTES + TAG_BYTES) return { ok: false, failure: "authentication_failed" };
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, blob.subarray(0, NONCE_BYTES));
    decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
    const head = decipher.update(blob.subarray(NONCE_BYTES, blob.length - TAG_BYTES));
    const tail = decipher.final();
    return { ok: true, plaintext: tail.length === 0 ? head : Buffer.concat([head, tail]) };
  } catch {
    return { ok: false, failure: "authentication_failed" };
  }
}

export function describeOpenFailure(failure: OpenFailure): string {
  switch (failure) {
    case "not_base64":
      return "not valid base64";
    case "too_short":
      return "ciphertext too short";
    case "authentication_failed":
      return "authentication failed (wrong key or corrupted value)";
  }
}
