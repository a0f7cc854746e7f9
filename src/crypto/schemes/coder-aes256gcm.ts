import { EncryptionKey } from "../encryption-key.js";
import type { ValueScheme } from "./value-scheme.js";

/**
 * Coder's dbcrypt: a cell is base64(nonce(12) ‖ ciphertext ‖ tag(16)), AES-256-GCM with no AAD
 * (crypto/aes256gcm.ts), its key id (the first 7 hex of SHA-256("aes256gcm" ‖ key),
 * crypto/key-id.ts) in the sibling `<column>_key_id` column, and "coder" sealed as the keys
 * table's canary. EncryptionKey is this scheme's key. Formats and vectors: docs/formats.md,
 * shared/reference/coder-dbcrypt.md.
 */
export const coderScheme: ValueScheme = {
  name: "coder",
  keyBytes: 32,
  keyIdSource: "column",
  canaryPlaintext: "coder",
  keyFromBytes: (bytes) => EncryptionKey.fromBytes(bytes),
};
