import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, randomFillSync } from "node:crypto";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import nacl from "tweetnacl";

/**
 * The bench's own keys for the two schemes that store no key id beside the value (issue 10):
 *
 *  - AtelyaOS: libsodium secretbox cells, base64(nonce 24 ‖ tag 16 ‖ XSalsa20 ciphertext), under
 *    HMAC-SHA256(master key, workspace id as UTF-8). Sealed and opened with tweetnacl and
 *    node:crypto, independently of src/.
 *  - Obot: Kubernetes' aesgcm provider, base64("k8s:enc:aesgcm:v1:<name>:" ‖ nonce 12 ‖ AES-256-GCM
 *    ciphertext ‖ tag 16) with the row's additional data. node:crypto, independently of src/.
 *
 * Each class also holds the in-memory cipher limit of its scheme (`rewriteLimit`): decrypt + encrypt
 * of the same cells on one core with the primitive dbcrypt uses for them (@noble/ciphers'
 * xsalsa20poly1305 for secretbox, node:crypto AES-256-GCM for aesgcm), no database. Key bytes stay
 * in #private fields; nothing in the bench prints them.
 */

/** Anything whose spellings must never appear in what the CLI prints. */
export interface Secret {
  spellings(): string[];
}

function spellingsOf(bytes: Buffer): string[] {
  return [bytes.toString("base64"), bytes.toString("hex"), bytes.toString("base64url")];
}

function writeSecretFile(path: string, text: string): string {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

/** Nonces of one size drawn from one CSPRNG buffer, each handed out once (views, not copies). */
class NoncePool {
  readonly #size: number;
  #pool: Buffer;
  #offset: number;

  constructor(size: number) {
    this.#size = size;
    this.#pool = Buffer.allocUnsafe(size * 4096);
    this.#offset = this.#pool.length;
  }

  next(): Buffer {
    if (this.#offset + this.#size > this.#pool.length) {
      // A fresh buffer, so earlier views (already inside sealed cells) are never overwritten.
      this.#pool = Buffer.allocUnsafe(this.#size * 4096);
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const nonce = this.#pool.subarray(this.#offset, this.#offset + this.#size);
    this.#offset += this.#size;
    return nonce;
  }
}

const SECRETBOX_NONCE = 24;
const SECRETBOX_TAG = 16;

export class SecretboxMaster implements Secret {
  readonly #bytes: Buffer;
  readonly #derived = new Map<string, Buffer>();
  /** dbcrypt's id for a secretbox-workspace master key: sha256("xsalsa20poly1305" ‖ key), 7 hex. */
  readonly id: string;

  constructor(bytes: Buffer = randomBytes(32)) {
    if (bytes.length !== 32) throw new Error("secretbox master key must be 32 bytes");
    this.#bytes = Buffer.from(bytes);
    this.id = createHash("sha256").update("xsalsa20poly1305").update(this.#bytes).digest("hex").slice(0, 7);
  }

  /** The workspace's key: HMAC-SHA256(master, workspace id as UTF-8), as AtelyaOS documents it. */
  #key(workspace: string): Buffer {
    let key = this.#derived.get(workspace);
    if (key === undefined) {
      key = createHmac("sha256", this.#bytes).update(workspace, "utf8").digest();
      this.#derived.set(workspace, key);
    }
    return key;
  }

  /** tweetnacl's secretbox is libsodium's crypto_secretbox_easy: tag 16 ‖ ciphertext. */
  seal(plaintext: Buffer, workspace: string, nonce: Buffer = randomBytes(SECRETBOX_NONCE)): string {
    const box = nacl.secretbox(plaintext, nonce, this.#key(workspace));
    return Buffer.concat([nonce, box]).toString("base64");
  }

  /** The plaintext, or undefined when the cell is not this key's (for this workspace) or is damaged. */
  open(cell: string, workspace: string): Buffer | undefined {
    const bytes = Buffer.from(cell, "base64");
    if (bytes.length < SECRETBOX_NONCE + SECRETBOX_TAG) return undefined;
    const opened = nacl.secretbox.open(bytes.subarray(SECRETBOX_NONCE), bytes.subarray(0, SECRETBOX_NONCE), this.#key(workspace));
    return opened === null ? undefined : Buffer.from(opened);
  }

  spellings(): string[] {
    return spellingsOf(this.#bytes);
  }

  /** Writes the master key as a 0600 file for `--new-key @FILE` / `--old-keys @FILE`; returns the path. */
  writeFile(dir: string, name: string): string {
    return writeSecretFile(join(dir, name), `${this.#bytes.toString("base64")}\n`);
  }

  /**
   * The cipher limit: every cell opened under `from` and sealed under `to` for its row's workspace,
   * with @noble/ciphers' xsalsa20poly1305 (what dbcrypt uses), base64 both ways, pooled nonces, and
   * the workspace keys derived by HMAC on first use and cached per workspace, as dbcrypt does (the
   * caches start empty on every call, as in a fresh dbcrypt process). Returns a checksum.
   */
  static rewriteLimit(from: SecretboxMaster, to: SecretboxMaster, cells: readonly string[], workspaces: readonly string[]): number {
    const oldKeys = new Map<string, Uint8Array>();
    const newKeys = new Map<string, Uint8Array>();
    const derive = (cache: Map<string, Uint8Array>, master: Buffer, workspace: string): Uint8Array => {
      let key = cache.get(workspace);
      if (key === undefined) {
        key = createHmac("sha256", master).update(Buffer.from(workspace, "utf8")).digest();
        cache.set(workspace, key);
      }
      return key;
    };
    const nonces = new NoncePool(SECRETBOX_NONCE);
    let checksum = 0;
    for (let index = 0; index < cells.length; index++) {
      const workspace = workspaces[index] as string;
      const bytes = Buffer.from(cells[index] as string, "base64");
      const plaintext = xsalsa20poly1305(derive(oldKeys, from.#bytes, workspace), bytes.subarray(0, SECRETBOX_NONCE)).decrypt(bytes.subarray(SECRETBOX_NONCE));
      const nonce = nonces.next();
      const box = xsalsa20poly1305(derive(newKeys, to.#bytes, workspace), nonce).encrypt(plaintext);
      checksum += Buffer.concat([nonce, box]).toString("base64").length;
    }
    return checksum;
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `SecretboxMaster(${this.id})`;
  }
}

const GCM_NONCE = 12;
const GCM_TAG = 16;

/** One key of a Kubernetes aesgcm provider: a name (the key id in every cell's prefix) and 32 bytes. */
export class K8sAesGcmKey implements Secret {
  readonly name: string;
  readonly #secret: Buffer;
  readonly #prefix: Buffer;

  constructor(name: string, secret: Buffer = randomBytes(32)) {
    if (secret.length !== 32) throw new Error("aesgcm key must be 32 bytes");
    if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error("aesgcm key name must be a plain word");
    this.name = name;
    this.#secret = Buffer.from(secret);
    this.#prefix = Buffer.from(`k8s:enc:aesgcm:v1:${name}:`, "utf8");
  }

  /** dbcrypt's key id for it: provider:name, as the prefix says. */
  get id(): string {
    return `aesgcm:${this.name}`;
  }

  seal(plaintext: Buffer, aad: string, nonce: Buffer = randomBytes(GCM_NONCE)): string {
    const cipher = createCipheriv("aes-256-gcm", this.#secret, nonce);
    cipher.setAAD(Buffer.from(aad, "utf8"));
    const body = cipher.update(plaintext);
    const tail = cipher.final();
    return Buffer.concat([this.#prefix, nonce, body, tail, cipher.getAuthTag()]).toString("base64");
  }

  /** The plaintext, or undefined when the cell is not this key's or does not authenticate with `aad`. */
  open(cell: string, aad: string): Buffer | undefined {
    const bytes = Buffer.from(cell, "base64");
    if (bytes.length < this.#prefix.length + GCM_NONCE + GCM_TAG || !bytes.subarray(0, this.#prefix.length).equals(this.#prefix)) return undefined;
    const payload = bytes.subarray(this.#prefix.length);
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#secret, payload.subarray(0, GCM_NONCE));
      decipher.setAAD(Buffer.from(aad, "utf8"));
      decipher.setAuthTag(payload.subarray(payload.length - GCM_TAG));
      return Buffer.concat([decipher.update(payload.subarray(GCM_NONCE, payload.length - GCM_TAG)), decipher.final()]);
    } catch {
      return undefined;
    }
  }

  spellings(): string[] {
    return spellingsOf(this.#secret);
  }

  /**
   * An EncryptionConfiguration for `resources` with one aesgcm provider holding `keys`, first to
   * last (the first one writes), written as a 0600 file; returns the path.
   */
  static writeConfig(dir: string, name: string, resources: readonly string[], keys: readonly K8sAesGcmKey[]): string {
    const lines = ["apiVersion: apiserver.config.k8s.io/v1", "kind: EncryptionConfiguration", "resources:", "  - resources:"];
    for (const resource of resources) lines.push(`      - ${resource}`);
    lines.push("    providers:", "      - aesgcm:", "          keys:");
    for (const key of keys) lines.push(`            - name: ${key.name}`, `              secret: ${key.#secret.toString("base64")}`);
    return writeSecretFile(join(dir, name), `${lines.join("\n")}\n`);
  }

  /**
   * The cipher limit: every cell opened under `from` and sealed under `to` with the row's additional
   * data, node:crypto AES-256-GCM (what dbcrypt uses), base64 both ways, the prefix checked and
   * written, the AAD string built per row, pooled nonces. Returns a checksum.
   */
  static rewriteLimit(from: K8sAesGcmKey, to: K8sAesGcmKey, cells: readonly string[], aadOf: (index: number) => string): number {
    const nonces = new NoncePool(GCM_NONCE);
    const fromPrefix = from.#prefix;
    let checksum = 0;
    for (let index = 0; index < cells.length; index++) {
      const bytes = Buffer.from(cells[index] as string, "base64");
      if (bytes.compare(fromPrefix, 0, fromPrefix.length, 0, fromPrefix.length) !== 0) throw new Error("cipher limit: a cell without the expected prefix");
      const aad = Buffer.from(aadOf(index), "utf8");
      const payload = bytes.subarray(fromPrefix.length);
      const decipher = createDecipheriv("aes-256-gcm", from.#secret, payload.subarray(0, GCM_NONCE));
      decipher.setAAD(aad);
      decipher.setAuthTag(payload.subarray(payload.length - GCM_TAG));
      const head = decipher.update(payload.subarray(GCM_NONCE, payload.length - GCM_TAG));
      const tail = decipher.final();
      const plaintext = tail.length === 0 ? head : Buffer.concat([head, tail]);
      const nonce = nonces.next();
      const cipher = createCipheriv("aes-256-gcm", to.#secret, nonce);
      cipher.setAAD(aad);
      const body = cipher.update(plaintext);
      const end = cipher.final();
      checksum += Buffer.concat([to.#prefix, nonce, body, end, cipher.getAuthTag()]).toString("base64").length;
    }
    return checksum;
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `K8sAesGcmKey(${this.id})`;
  }
}
