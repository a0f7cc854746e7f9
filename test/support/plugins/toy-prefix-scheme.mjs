/**
 * A value scheme that exists only in the test suite: AES-256-GCM, with the key id in the value's
 * prefix instead of a sibling column: `toy:v1:<key id>:` + base64(nonce(12) ‖ ciphertext ‖ tag(16)),
 * the key id being the first 7 hex of SHA-256("toy" ‖ key), and "toy" as the canary. Loaded into
 * the built CLI with `node --import`, it proves that a new scheme is one object handed to
 * registerScheme, with no change to src/ops or src/db. test/support/toy-prefix-cells.ts decodes
 * the same format independently for the assertions.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { registerScheme } from "../../../dist/crypto/schemes/registry.js";

const PREFIX = /^toy:v1:([0-9a-f]{7}):/;

function keyIdOf(bytes) {
  return createHash("sha256").update("toy").update(bytes).digest("hex").slice(0, 7);
}

registerScheme({
  name: "toy-prefix",
  keyBytes: 32,
  keyIdSource: "prefix",
  canaryPlaintext: "toy",
  keyIdOfCell: (cell) => PREFIX.exec(cell)?.[1],
  keyFromBytes(bytes) {
    const key = Buffer.from(bytes);
    const id = keyIdOf(key);
    return {
      id,
      seal(plaintext) {
        const nonce = randomBytes(12);
        const cipher = createCipheriv("aes-256-gcm", key, nonce);
        const body = Buffer.concat([cipher.update(typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext), cipher.final()]);
        return `toy:v1:${id}:${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64")}`;
      },
      open(cell) {
        const match = PREFIX.exec(cell);
        if (match === null || match[1] !== id) return { ok: false, reason: "not a toy cell under this key" };
        const blob = Buffer.from(cell.slice(match[0].length), "base64");
        if (blob.length < 28) return { ok: false, reason: "ciphertext too short" };
        try {
          const decipher = createDecipheriv("aes-256-gcm", key, blob.subarray(0, 12));
          decipher.setAuthTag(blob.subarray(blob.length - 16));
          return { ok: true, plaintext: Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]) };
        } catch {
          return { ok: false, reason: "authentication failed (wrong key or corrupted value)" };
        }
      },
    };
  },
});
