import { createHmac } from "node:crypto";
import { NoncePool } from "../nonce-pool.js";
import { xsalsa20, xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import { poly1305 } from "@noble/ciphers/_poly1305.js";
import { timingSafeEqual } from "node:crypto";
import { CELL_ENCODINGS, columnSpelling, decodeCellCandidates, encodeCell, hasCellShape, isCellEncoding, rewriteSpelling, spellingEvidence, type CellEncoding } from "../cell-encoding.js";
import { labelledKeyId } from "../key-id.js";
import { SchemeOptions } from "./scheme-options.js";
import { RowKeyUnavailable, type OpenResult, type RowContext, type SchemeFactory, type SchemeKey, type ValueScheme } from "./value-scheme.js";

/**
 * AtelyaOS: libsodium secretbox (XSalsa20-Poly1305), cell = encoding(nonce(24) ‖ tag(16) ‖
 * ciphertext), no key id stored. Each row's key is derived from the master key and the row's
 * workspace id, HMAC-SHA256 by default. The seed documents the chain but not its details, so the
 * HMAC's argument order and the id's encoding are options, and the tag, which fails cleanly under
 * a wrong key, is what confirms a reading (trial decryption). Formats: docs/schemes.md.
 */
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
/** Pooled CSPRNG nonces: one syscall per 4096 values instead of one per value. */
const sealNonces = new NoncePool(NONCE_BYTES);
/** What the key id is computed over, so the same master key has another id under Coder's scheme. */
const KEY_ID_LABEL = "xsalsa20poly1305";
/** Workspace keys kept per master key: bounded so a table with millions of workspaces stays flat. */
const DERIVED_KEY_CACHE = 10_000;
/** HMAC message for the keys table canary's key: no workspace id can collide with it, being no id at all. */
const CANARY_LABEL = "dbcrypt keys table canary";
/** The input name the config maps to a column (`"context": {"workspace": "workspace_id"}`). */
export const WORKSPACE_INPUT = "workspace";

const DERIVATIONS = ["hmac-sha256(master,workspace)", "hmac-sha256(workspace,master)", "none"] as const;
type Derivation = (typeof DERIVATIONS)[number];
const WORKSPACE_ENCODINGS = ["utf8", "uuid-bytes", "hex"] as const;
const MASTER_KEY_ENCODINGS = ["bytes", "hex-text", "base64-text"] as const;
type MasterKeyEncoding = (typeof MASTER_KEY_ENCODINGS)[number];
type WorkspaceEncoding = (typeof WORKSPACE_ENCODINGS)[number];

interface Settings {
  derivation: Derivation;
  masterKeyEncoding: MasterKeyEncoding;
  workspaceEncoding: WorkspaceEncoding;
  encoding: CellEncoding;
}


function workspaceBytes(id: string, encoding: WorkspaceEncoding): Buffer | undefined {
  switch (encoding) {
    case "utf8":
      return Buffer.from(id, "utf8");
    case "uuid-bytes": {
      const hex = id.replace(/-/g, "");
      return /^[0-9a-fA-F]{32}$/.test(hex) && /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/.test(id) ? Buffer.from(hex, "hex") : undefined;
    }
    case "hex":
      return id.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(id) ? Buffer.from(id, "hex") : undefined;
  }
}

class SecretboxWorkspaceKey implements SchemeKey {
  readonly id: string;
  readonly #master: Buffer;
  /** The master key as the application feeds it to HMAC: its bytes, or the text it keeps them as. */
  readonly #hmacKey: Buffer;
  readonly #settings: Settings;
  readonly #derived = new Map<string, Uint8Array>();
  #canaryKey: Uint8Array | undefined;

  constructor(master: Uint8Array, settings: Settings) {
    this.#master = Buffer.from(master);
    this.#hmacKey = settings.masterKeyEncoding === "bytes" ? this.#master : Buffer.from(this.#master.toString(settings.masterKeyEncoding === "hex-text" ? "hex" : "base64"), "utf8");
    this.#settings = settings;
    this.id = labelledKeyId(KEY_ID_LABEL, this.#master);
  }

  /**
   * The row's key, or why there is none (a NULL or malformed workspace id, or a row read without
   * its context). No context at all is the keys table's canary, which belongs to no workspace: it
   * gets a key of its own, whatever the workspace id encoding.
   */
  #rowKey(context: RowContext | undefined): Uint8Array | string {
    if (this.#settings.derivation === "none") return this.#master;
    if (context === undefined) return (this.#canaryKey ??= createHmac("sha256", this.#hmacKey).update(CANARY_LABEL).digest());
    if (!(WORKSPACE_INPUT in context)) return "the row was read without its workspace id";
    const workspace = context[WORKSPACE_INPUT];
    if (workspace === null || workspace === undefined) return "the row's workspace id is NULL, so it has no key";
    const cached = this.#derived.get(workspace);
    if (cached !== undefined) return cached;
    const message = workspaceBytes(workspace, this.#settings.workspaceEncoding);
    if (message === undefined) return `the row's workspace id is not ${this.#settings.workspaceEncoding}`;
    const derived =
      this.#settings.derivation === "hmac-sha256(master,workspace)"
        ? createHmac("sha256", this.#hmacKey).update(message).digest()
        : createHmac("sha256", message).update(this.#hmacKey).digest();
    if (this.#derived.size >= DERIVED_KEY_CACHE) this.#derived.clear();
    this.#derived.set(workspace, derived);
    return derived;
  }

  seal(plaintext: string | Buffer, context?: RowContext, format?: string): string {
    const key = this.#rowKey(context);
    if (typeof key === "string") throw new RowKeyUnavailable(key);
    const nonce = sealNonces.next();
    const message = typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext;
    const box = xsalsa20poly1305(key, nonce).encrypt(message);
    return encodeCell(Buffer.concat([nonce, box]), isCellEncoding(format) ? format : this.#settings.encoding);
  }

  open(cell: string, context?: RowContext): OpenResult {
    const candidates = decodeCellCandidates(cell, NONCE_BYTES + TAG_BYTES);
    if (candidates.length === 0) return { ok: false, reason: "not a secretbox cell (no encoding decodes it to at least nonce and tag)" };
    const key = this.#rowKey(context);
    if (typeof key === "string") return { ok: false, reason: key };
    for (const candidate of candidates) {
      try {
        const plaintext = xsalsa20poly1305(key, candidate.bytes.subarray(0, NONCE_BYTES)).decrypt(candidate.bytes.subarray(NONCE_BYTES));
        return { ok: true, plaintext: Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength), format: candidate.encoding };
      } catch {
        // Poly1305 rejected this reading; another spelling of the same text may still open.
      }
    }
    return { ok: false, reason: "authentication failed (wrong master key, wrong workspace id or corrupted value)" };
  }

  /**
   * The secretbox tag alone: Poly1305 over the ciphertext under the first 32 bytes of the
   * XSalsa20 keystream (NaCl's construction), about half the work of decrypting.
   */
  verify(cell: string, context?: RowContext): { ok: true; format?: string } | { ok: false } {
    const key = this.#rowKey(context);
    if (typeof key === "string") return { ok: false };
    for (const candidate of decodeCellCandidates(cell, NONCE_BYTES + TAG_BYTES)) {
      const polyKey = xsalsa20(key, candidate.bytes.subarray(0, NONCE_BYTES), new Uint8Array(32));
      const tag = poly1305(candidate.bytes.subarray(NONCE_BYTES + TAG_BYTES), polyKey);
      if (timingSafeEqual(tag, candidate.bytes.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES))) return { ok: true, format: candidate.encoding };
    }
    return { ok: false };
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `SecretboxWorkspaceKey(${this.id})`;
  }
}

export const secretboxWorkspaceFactory: SchemeFactory = {
  name: "secretbox-workspace",
  summary: "libsodium secretbox (XSalsa20-Poly1305) under a key derived per workspace from a master key (AtelyaOS); no key id stored",
  create(options, origin): ValueScheme {
    const read = new SchemeOptions("secretbox-workspace", options, origin, ["derivation", "workspaceIdEncoding", "masterKeyEncoding", "encoding"]);
    const settings: Settings = {
      derivation: read.oneOf("derivation", DERIVATIONS, "hmac-sha256(master,workspace)"),
      masterKeyEncoding: read.oneOf("masterKeyEncoding", MASTER_KEY_ENCODINGS, "bytes"),
      workspaceEncoding: read.oneOf("workspaceIdEncoding", WORKSPACE_ENCODINGS, "utf8"),
      encoding: read.oneOf("encoding", CELL_ENCODINGS, "base64"),
    };
    if (settings.derivation === "none" && settings.masterKeyEncoding !== "bytes") read.fail('option "masterKeyEncoding" applies only to an HMAC derivation (with "none" the 32 key bytes are the secretbox key)');
    return {
      name: "secretbox-workspace",
      keyBytes: 32,
      keyIdSource: "trial",
      canaryPlaintext: "dbcrypt",
      keysTableIsDbcrypts: true,
      keyFromBytes: (bytes) => new SecretboxWorkspaceKey(bytes, settings),
      looksSealed: (cell) => hasCellShape(cell, NONCE_BYTES + TAG_BYTES),
      spellingEvidence,
      columnSpelling: (evidence) => columnSpelling(evidence, settings.encoding),
      rewriteSpelling: (oldCell, opened, column) => rewriteSpelling(oldCell, opened, column, settings.encoding),
      contextInputs: settings.derivation === "none" ? [] : [WORKSPACE_INPUT],
      options: options ?? {},
    };
  },
};
