import { createCipheriv, createDecipheriv } from "node:crypto";
import { NoncePool } from "../nonce-pool.js";
import { xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import { decodeStrictBase64 } from "../strict-base64.js";
import type { OpenResult, RowContext, SchemeKey } from "../schemes/value-scheme.js";
import type { SecretProviderType } from "./encryption-config.js";

/**
 * One key of a Kubernetes encryption provider, as a dbcrypt SchemeKey. A stored cell is
 * base64(prefix ‖ payload) with prefix `k8s:enc:<provider>:v1:<key name>:` (Kubernetes'
 * value/transformer.go); Obot wraps the cell of a JSON column as {"_obot_encrypted_env": cell}.
 * Payloads, from k8s.io/apiserver encrypt/aes and encrypt/secretbox:
 *  - aesgcm: nonce(12) ‖ ciphertext ‖ tag(16), AES-GCM with the row's additional data;
 *  - aescbc: IV(16) ‖ AES-CBC(PKCS#7(plaintext)), no MAC and no additional data;
 *  - secretbox: nonce(24) ‖ tag(16) ‖ XSalsa20 ciphertext, no additional data.
 * The identity provider stores base64(plaintext) and refuses data that starts with `k8s:enc:`.
 */
export const K8S_PREFIX = "k8s:enc:";
export const ENVELOPE_FIELD = "_obot_encrypted_env";
/** RowContext input names: the additional data, its fallbacks (aad.1, aad.2, …), the row flag. */
export const AAD_INPUT = "aad";
export const FLAG_INPUT = "encrypted";

export type CellFormat = "bare" | "json-envelope";

/** The cell inside Obot's JSON envelope, or the text itself. */
export function unwrapEnvelope(text: string): { cell: string; format: CellFormat } {
  if (!text.startsWith("{")) return { cell: text, format: "bare" };
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
      const entries = Object.entries(parsed);
      if (entries.length === 1 && entries[0]?.[0] === ENVELOPE_FIELD && typeof entries[0][1] === "string") return { cell: entries[0][1], format: "json-envelope" };
    }
  } catch {
    // Not JSON: a bare cell (which will not decode as base64 either, and says so).
  }
  return { cell: text, format: "bare" };
}

export function wrapCell(cell: string, format: string | undefined): string {
  return format === "json-envelope" ? JSON.stringify({ [ENVELOPE_FIELD]: cell }) : cell;
}

/** The additional data to try, in order: the row's own, then its legacy forms. */
export function aadCandidates(context: RowContext | undefined): string[] {
  const primary = context?.[AAD_INPUT] ?? "";
  const fallbacks: string[] = [];
  for (let index = 1; context !== undefined && context[`${AAD_INPUT}.${index}`] !== undefined; index++) fallbacks.push(context[`${AAD_INPUT}.${index}`] ?? "");
  return [primary, ...fallbacks.filter((aad) => aad !== primary)];
}

/** Nonces and IVs drawn from pooled CSPRNG output, as Coder's cipher does (crypto/nonce-pool.ts). */
const gcmNonces = new NoncePool(12);
const cbcIvs = new NoncePool(16);
const secretboxNonces = new NoncePool(24);

/** Payload opener/sealer for one provider type, over one secret. */
interface PayloadCipher {
  open(payload: Buffer, aad: string): Buffer | undefined;
  seal(plaintext: Buffer, aad: string): Buffer;
  bindsAad: boolean;
}

function aesGcm(secret: Buffer): PayloadCipher {
  const algorithm = `aes-${secret.length * 8}-gcm` as "aes-256-gcm";
  return {
    bindsAad: true,
    open(payload, aad) {
      if (payload.length < 28) return undefined;
      try {
        const decipher = createDecipheriv(algorithm, secret, payload.subarray(0, 12));
        decipher.setAAD(Buffer.from(aad, "utf8"));
        decipher.setAuthTag(payload.subarray(payload.length - 16));
        return Buffer.concat([decipher.update(payload.subarray(12, payload.length - 16)), decipher.final()]);
      } catch {
        return undefined;
      }
    },
    seal(plaintext, aad) {
      const nonce = gcmNonces.next();
      const cipher = createCipheriv(algorithm, secret, nonce);
      cipher.setAAD(Buffer.from(aad, "utf8"));
      return Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    },
  };
}

function aesCbc(secret: Buffer): PayloadCipher {
  const algorithm = `aes-${secret.length * 8}-cbc` as "aes-256-cbc";
  return {
    bindsAad: false,
    open(payload) {
      if (payload.length < 32 || payload.length % 16 !== 0) return undefined;
      try {
        const decipher = createDecipheriv(algorithm, secret, payload.subarray(0, 16));
        return Buffer.concat([decipher.update(payload.subarray(16)), decipher.final()]);
      } catch {
        return undefined;
      }
    },
    seal(plaintext) {
      const iv = cbcIvs.next();
      const cipher = createCipheriv(algorithm, secret, iv);
      return Buffer.concat([iv, cipher.update(plaintext), cipher.final()]);
    },
  };
}

function secretbox(secret: Buffer): PayloadCipher {
  return {
    bindsAad: false,
    open(payload) {
      if (payload.length < 40) return undefined;
      try {
        const opened = xsalsa20poly1305(secret, payload.subarray(0, 24)).decrypt(payload.subarray(24));
        return Buffer.from(opened.buffer, opened.byteOffset, opened.byteLength);
      } catch {
        return undefined;
      }
    },
    seal(plaintext) {
      const nonce = secretboxNonces.next();
      return Buffer.concat([nonce, xsalsa20poly1305(secret, nonce).encrypt(plaintext)]);
    },
  };
}

const CIPHERS: Record<SecretProviderType, (secret: Buffer) => PayloadCipher> = { aesgcm: aesGcm, aescbc: aesCbc, secretbox };

/** What a key does once its own payload opened: Obot once double-encrypted a field (obot#2767). */
export type InnerOpener = (plaintext: Buffer, context: RowContext | undefined) => OpenResult | undefined;

/** The outer cell's format stays the one written back, whatever the inner cell was. */
export function withFormat(inner: OpenResult | undefined, plaintext: Buffer, format: CellFormat): OpenResult {
  if (inner === undefined) return { ok: true, plaintext, format };
  return inner.ok ? { ok: true, plaintext: inner.plaintext, format } : inner;
}

export class ProviderKey implements SchemeKey {
  readonly id: string;
  readonly type: SecretProviderType;
  readonly source: string | undefined;
  readonly #prefix: Buffer;
  readonly #cipher: PayloadCipher;
  readonly #inner: InnerOpener;

  constructor(type: SecretProviderType, name: string, secret: Buffer, inner: InnerOpener, source?: string) {
    this.type = type;
    this.source = source;
    this.id = `${type}:${name}`;
    this.#prefix = Buffer.from(`${K8S_PREFIX}${type}:v1:${name}:`, "utf8");
    this.#cipher = CIPHERS[type](Buffer.from(secret));
    this.#inner = inner;
  }

  seal(plaintext: string | Buffer, context?: RowContext, format?: string): string {
    const bytes = typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext;
    const payload = this.#cipher.seal(bytes, context?.[AAD_INPUT] ?? "");
    return wrapCell(Buffer.concat([this.#prefix, payload]).toString("base64"), format);
  }

  open(text: string, context?: RowContext): OpenResult {
    const { cell, format } = unwrapEnvelope(text);
    const bytes = decodeStrictBase64(cell);
    if (bytes === undefined) return { ok: false, reason: "not padded standard base64" };
    if (!bytes.subarray(0, this.#prefix.length).equals(this.#prefix)) return { ok: false, reason: `not under key ${this.id}` };
    const payload = bytes.subarray(this.#prefix.length);
    const tried = this.#cipher.bindsAad ? aadCandidates(context) : [""];
    for (const aad of tried) {
      const plaintext = this.#cipher.open(payload, aad);
      if (plaintext === undefined) continue;
      return withFormat(this.#inner(plaintext, context), plaintext, format);
    }
    const aadWords = this.#cipher.bindsAad ? ` with additional data ${tried.map((aad) => JSON.stringify(aad)).join(" or ")}` : "";
    return { ok: false, reason: `authentication failed${aadWords} (wrong key, wrong additional data or corrupted value)` };
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `ProviderKey(${this.id})`;
  }
}

/** Kubernetes' identity provider: the "key" of values stored as base64(plaintext). */
export class IdentityKey implements SchemeKey {
  readonly id = "identity";
  readonly unkeyed = true;
  readonly source: string | undefined;
  readonly #inner: InnerOpener;

  constructor(inner: InnerOpener, source?: string) {
    this.#inner = inner;
    this.source = source;
  }

  seal(plaintext: string | Buffer, _context?: RowContext, format?: string): string {
    const bytes = typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext;
    return wrapCell(bytes.toString("base64"), format);
  }

  open(text: string, context?: RowContext): OpenResult {
    const { cell, format } = unwrapEnvelope(text);
    const bytes = decodeStrictBase64(cell);
    if (bytes === undefined) return { ok: false, reason: "not padded standard base64" };
    if (bytes.subarray(0, K8S_PREFIX.length).toString("latin1") === K8S_PREFIX) return { ok: false, reason: "identity refuses data that starts with k8s:enc:" };
    return withFormat(this.#inner(bytes, context), bytes, format);
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }
}
