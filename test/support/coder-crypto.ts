/**
 * An independent implementation of Coder's dbcrypt value format (reference §1), built on node:crypto
 * alone. Tests use it as an oracle to cross-check the product, so it must never import from src/.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID_PREFIX = Buffer.from("aes256gcm", "ascii");
const STANDARD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface TestKey {
  bytes: Buffer;
  base64: string;
  id: string;
}

export function keyIdOf(key: Buffer): string {
  assertKeyLength(key);
  return createHash("sha256").update(KEY_ID_PREFIX).update(key).digest("hex").slice(0, 7);
}

export function sealValue(key: Buffer, plaintext: string, nonce: Buffer = randomBytes(NONCE_BYTES)): string {
  assertKeyLength(key);
  if (nonce.length !== NONCE_BYTES) throw new Error(`nonce must be ${NONCE_BYTES} bytes`);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64");
}

/** Throws on a malformed value, a wrong key or tampering; messages never echo the stored value. */
export function openValue(key: Buffer, stored: string): string {
  assertKeyLength(key);
  // Node's base64 decoder silently skips junk, which would turn a corrupt value into a different blob.
  if (!STANDARD_BASE64.test(stored)) throw new Error("malformed encrypted field: not standard base64");
  const blob = Buffer.from(stored, "base64");
  if (blob.length < NONCE_BYTES) throw new Error("ciphertext too short");
  if (blob.length < NONCE_BYTES + TAG_BYTES) throw new Error("message authentication failed");
  const decipher = createDecipheriv("aes-256-gcm", key, blob.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
  try {
    const body = blob.subarray(NONCE_BYTES, blob.length - TAG_BYTES);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
  } catch {
    throw new Error("message authentication failed");
  }
}

export function testKeyFrom(bytes: Buffer): TestKey {
  return { bytes, base64: bytes.toString("base64"), id: keyIdOf(bytes) };
}

export function randomKey(): TestKey {
  return testKeyFrom(randomBytes(KEY_BYTES));
}

/** The 32-times-one-character keys of Coder's own tests, e.g. keyFromByte("a"). */
export function keyFromByte(ch: string): TestKey {
  if (ch.length !== 1 || ch.charCodeAt(0) > 0xff) throw new Error("keyFromByte expects one latin-1 character");
  return testKeyFrom(Buffer.alloc(KEY_BYTES, ch.charCodeAt(0)));
}

function assertKeyLength(key: Buffer): void {
  if (key.length !== KEY_BYTES) throw new Error(`key must be ${KEY_BYTES} bytes`);
}
