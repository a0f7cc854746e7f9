import { createHash } from "node:crypto";

/** Coder prefixes the key with its cipher name, so one key reused under another cipher gets a new id. */
const AES256GCM_KEY_ID_PREFIX = Buffer.from("aes256gcm", "ascii");
export const KEY_ID_LENGTH = 7;

export function aes256gcmKeyId(keyBytes: Uint8Array): string {
  return createHash("sha256")
    .update(AES256GCM_KEY_ID_PREFIX)
    .update(keyBytes)
    .digest("hex")
    .slice(0, KEY_ID_LENGTH);
}

/**
 * The same fingerprint for other schemes, each with its own cipher label: one master key used by
 * two schemes gets two ids, as Coder's rule intends. A scheme that uses Coder's cipher uses
 * Coder's label, so `dbcrypt keys id` agrees with it.
 */
export function labelledKeyId(label: string, keyBytes: Uint8Array): string {
  return createHash("sha256").update(Buffer.from(label, "ascii")).update(keyBytes).digest("hex").slice(0, KEY_ID_LENGTH);
}

/**
 * A key id as some scheme writes it: 7 hex characters (Coder and the schemes that fingerprint the
 * same way), or a Kubernetes provider key name as its cells' prefix names it (`aesgcm:key0`).
 */
export function looksLikeKeyId(text: string): boolean {
  return /^[0-9a-f]{7}$/.test(text) || /^(?:aesgcm|aescbc|secretbox|kms:v[12]):[^:\s]+$/.test(text);
}

export const KEY_ID_FORMS = "7 lowercase hex characters, provider:name for a Kubernetes encryption config, or kms:v2:<name>/<id> for a KMS plugin";
