import { sealAes256GcmBytes, openAes256GcmBytes, NONCE_BYTES, TAG_BYTES } from "../aes256gcm.js";
import { CELL_ENCODINGS, columnSpelling, decodeCellCandidates, encodeCell, hasCellShape, isCellEncoding, rewriteSpelling, spellingEvidence, type CellEncoding } from "../cell-encoding.js";
import { aes256gcmKeyId } from "../key-id.js";
import { SchemeOptions } from "./scheme-options.js";
import type { OpenResult, SchemeFactory, SchemeKey, ValueScheme } from "./value-scheme.js";

/**
 * AES-256-GCM directly under one master key, no key id stored (Company Agents' `secrets.value`,
 * and the flat Authsome vault). The cell layout is an option, since these applications do not
 * publish theirs: `nonce ‖ ciphertext ‖ tag` in one encoding, or `b64(nonce).b64(ciphertext ‖ tag)`.
 * The key id is Coder's fingerprint of the same cipher and key, so `dbcrypt keys id` names it.
 */
const LAYOUTS = ["nonce-ciphertext-tag", "dotted"] as const;
type Layout = (typeof LAYOUTS)[number];
const DOTTED = /^([A-Za-z0-9+/]+={0,2})\.([A-Za-z0-9+/]+={0,2})$/;

interface Settings {
  layout: Layout;
  encoding: CellEncoding;
}

function dottedParts(cell: string): { nonce: Buffer; sealed: Buffer } | undefined {
  const match = DOTTED.exec(cell);
  if (match === null) return undefined;
  const nonce = Buffer.from(match[1] as string, "base64");
  const sealed = Buffer.from(match[2] as string, "base64");
  if (nonce.toString("base64") !== match[1] || sealed.toString("base64") !== match[2]) return undefined;
  return nonce.length === NONCE_BYTES && sealed.length >= TAG_BYTES ? { nonce, sealed } : undefined;
}

class MasterKey implements SchemeKey {
  readonly id: string;
  readonly #bytes: Buffer;
  readonly #settings: Settings;

  constructor(bytes: Uint8Array, settings: Settings) {
    this.#bytes = Buffer.from(bytes);
    this.#settings = settings;
    this.id = aes256gcmKeyId(this.#bytes);
  }

  seal(plaintext: string | Buffer, _context?: unknown, format?: string): string {
    const blob = sealAes256GcmBytes(this.#bytes, plaintext);
    if (this.#settings.layout === "dotted") {
      return `${blob.subarray(0, NONCE_BYTES).toString("base64")}.${blob.subarray(NONCE_BYTES).toString("base64")}`;
    }
    return encodeCell(blob, isCellEncoding(format) ? format : this.#settings.encoding);
  }

  open(cell: string): OpenResult {
    if (this.#settings.layout === "dotted") {
      const parts = dottedParts(cell);
      if (parts === undefined) return { ok: false, reason: "not a dotted AES-GCM cell (base64 nonce of 12 bytes, a dot, base64 ciphertext and tag)" };
      const plaintext = openAes256GcmBytes(this.#bytes, Buffer.concat([parts.nonce, parts.sealed]));
      return plaintext === undefined ? { ok: false, reason: "authentication failed (wrong key or corrupted value)" } : { ok: true, plaintext };
    }
    const candidates = decodeCellCandidates(cell, NONCE_BYTES + TAG_BYTES);
    if (candidates.length === 0) return { ok: false, reason: "not an AES-GCM cell (no encoding decodes it to at least nonce and tag)" };
    for (const candidate of candidates) {
      const plaintext = openAes256GcmBytes(this.#bytes, candidate.bytes);
      if (plaintext !== undefined) return { ok: true, plaintext, format: candidate.encoding };
    }
    return { ok: false, reason: "authentication failed (wrong key or corrupted value)" };
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `MasterKey(${this.id})`;
  }
}

export const aes256gcmMasterFactory: SchemeFactory = {
  name: "aes256gcm-master",
  summary: "AES-256-GCM directly under a master key, layout nonce ‖ ciphertext ‖ tag or b64(nonce).b64(ciphertext ‖ tag) (Company Agents, flat Authsome); no key id stored",
  create(options, origin): ValueScheme {
    const read = new SchemeOptions("aes256gcm-master", options, origin, ["layout", "encoding"]);
    const settings: Settings = { layout: read.oneOf("layout", LAYOUTS, "nonce-ciphertext-tag"), encoding: read.oneOf("encoding", CELL_ENCODINGS, "base64") };
    if (settings.layout === "dotted" && options?.encoding !== undefined) read.fail('option "encoding" does not apply to layout "dotted" (always standard base64)');
    return {
      name: "aes256gcm-master",
      keyBytes: 32,
      keyIdSource: "trial",
      canaryPlaintext: "dbcrypt",
      keysTableIsDbcrypts: true,
      keyFromBytes: (bytes) => new MasterKey(bytes, settings),
      looksSealed: settings.layout === "dotted" ? (cell) => dottedParts(cell) !== undefined : (cell) => hasCellShape(cell, NONCE_BYTES + TAG_BYTES),
      ...(settings.layout === "dotted"
        ? {}
        : {
            spellingEvidence,
            columnSpelling: (evidence: ReadonlyMap<string, number>) => columnSpelling(evidence, settings.encoding),
            rewriteSpelling: (oldCell: string | null, opened: string | undefined, column: string | undefined) => rewriteSpelling(oldCell, opened, column, settings.encoding),
          }),
      contextInputs: [],
      options: options ?? {},
    };
  },
};
