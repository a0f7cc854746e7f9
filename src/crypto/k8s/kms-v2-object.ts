import { createCipheriv, createDecipheriv, createHmac } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import type * as Protobuf from "protobufjs";
import { NoncePool } from "../nonce-pool.js";

/**
 * The payload of a KMS v2 cell: the protobuf `EncryptedObject` the Kubernetes API server stores
 * after `k8s:enc:kms:v2:<name>:` (k8s.io/apiserver encrypt/envelope/kmsv2; shared/reference/
 * schemes.md §1.5–1.6), and the AES-GCM layer inside its `encryptedData`.
 */

/** Resolved from the module so it works from src/ (vitest) and from dist/crypto/k8s/ (built). */
export const KMS_V2_PROTO_PATH = fileURLToPath(new URL("../../../proto/kms-v2.proto", import.meta.url));

export const AES_GCM_KEY = 0;
export const HKDF_SHA256_XNONCE_AES_GCM_SEED = 1;
export type EncryptedDEKSourceType = typeof AES_GCM_KEY | typeof HKDF_SHA256_XNONCE_AES_GCM_SEED;

export interface EncryptedObject {
  encryptedData: Buffer;
  keyID: string;
  encryptedDEKSource: Buffer;
  annotations: Record<string, Buffer>;
  /** A number, not the union: a decoded object may carry a type no one knows yet (validation refuses it). */
  encryptedDEKSourceType: number;
}

/** Upstream's limits (kmsv2/envelope.go): KeyIDMaxSize, encryptedDEKSourceMaxSize, annotationsMaxSize. */
const KEY_ID_MAX_BYTES = 1024;
const DEK_SOURCE_MAX_BYTES = 1024;
const ANNOTATIONS_MAX_BYTES = 32 * 1024;
const INFO_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** protobufjs is loaded when the first KMS cell is met (CommonJS, so synchronously): most runs have none. */
const require = createRequire(import.meta.url);
let objectType: Protobuf.Type | undefined;
function encryptedObjectType(): Protobuf.Type {
  objectType ??= new (require("protobufjs") as typeof Protobuf).Root().loadSync(KMS_V2_PROTO_PATH, { keepCase: true }).lookupType("v2.EncryptedObject");
  return objectType;
}

/** protobufjs gives a Buffer for bytes read, but an empty array for bytes absent from the wire. */
function asBuffer(bytes: unknown): Buffer {
  if (Buffer.isBuffer(bytes)) return bytes;
  return bytes instanceof Uint8Array ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.alloc(0);
}

/**
 * Proto3 bytes, as Go writes them: fields in number order, and a field at its default (empty
 * bytes or string, type 0) left out. protobufjs writes every own property it is given, so only
 * the non-default ones are given.
 */
function wireFields(object: Partial<EncryptedObject>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (object.encryptedData !== undefined && object.encryptedData.length > 0) fields.encryptedData = object.encryptedData;
  if (object.keyID !== undefined && object.keyID !== "") fields.keyID = object.keyID;
  if (object.encryptedDEKSource !== undefined && object.encryptedDEKSource.length > 0) fields.encryptedDEKSource = object.encryptedDEKSource;
  if (object.annotations !== undefined && Object.keys(object.annotations).length > 0) fields.annotations = object.annotations;
  if (object.encryptedDEKSourceType !== undefined && object.encryptedDEKSourceType !== 0) fields.encryptedDEKSourceType = object.encryptedDEKSourceType;
  return fields;
}

export function encodeEncryptedObject(object: EncryptedObject): Buffer {
  return asBuffer(encryptedObjectType().encode(wireFields(object)).finish());
}

/**
 * An encoder for many objects that differ only in encryptedData (every cell one write seed
 * seals): field 1 comes first on the wire, so the rest is encoded once and appended.
 */
export function encryptedObjectEncoder(fixed: Omit<EncryptedObject, "encryptedData">): (encryptedData: Buffer) => Buffer {
  const tail = asBuffer(encryptedObjectType().encode(wireFields(fixed)).finish());
  return (encryptedData) => {
    const header: number[] = [0x0a];
    for (let length = encryptedData.length; ; length = Math.floor(length / 128)) {
      if (length < 128) {
        header.push(length);
        break;
      }
      header.push((length % 128) | 0x80);
    }
    return Buffer.concat([Buffer.from(header), encryptedData, tail]);
  };
}

/** The object, or why the bytes are not one; protobuf accepts fields in any order, as Go's decoder does. */
export function decodeEncryptedObject(bytes: Uint8Array): { object: EncryptedObject } | { reason: string } {
  let decoded: Record<string, unknown>;
  try {
    decoded = encryptedObjectType().decode(bytes) as unknown as Record<string, unknown>;
  } catch {
    return { reason: "not a protobuf EncryptedObject" };
  }
  const annotations: Record<string, Buffer> = {};
  for (const [key, value] of Object.entries((decoded.annotations ?? {}) as Record<string, unknown>)) annotations[key] = asBuffer(value);
  return {
    object: {
      encryptedData: asBuffer(decoded.encryptedData),
      keyID: (decoded.keyID as string | undefined) ?? "",
      encryptedDEKSource: asBuffer(decoded.encryptedDEKSource),
      annotations,
      encryptedDEKSourceType: (decoded.encryptedDEKSourceType as number | undefined) ?? 0,
    },
  };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** k8s.io/apimachinery IsFullyQualifiedDomainName: a DNS-1123 subdomain of at least two labels. */
function isFullyQualifiedDomainName(name: string): boolean {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  const labels = trimmed.split(".");
  return trimmed.length > 0 && trimmed.length <= 253 && labels.length >= 2 && labels.every((label) => label.length <= 63 && DNS_LABEL.test(label));
}

/**
 * Upstream's ValidateEncryptedObject, as a reason rather than an error: a bad cell is reported,
 * not thrown. Reasons name sizes and fields only, never the bytes.
 */
export function validateEncryptedObject(object: EncryptedObject): string | undefined {
  const type = object.encryptedDEKSourceType;
  if (type !== AES_GCM_KEY && type !== HKDF_SHA256_XNONCE_AES_GCM_SEED) return `unknown encryptedDEKSourceType ${type}`;
  if (object.encryptedData.length === 0) return "encrypted data is empty";
  const source = object.encryptedDEKSource.length;
  if (source === 0) return "encrypted DEK source is empty";
  if (source > DEK_SOURCE_MAX_BYTES) return `encrypted DEK source is ${source} bytes, over the ${DEK_SOURCE_MAX_BYTES}-byte limit`;
  const keyIdBytes = Buffer.byteLength(object.keyID, "utf8");
  if (keyIdBytes === 0) return "keyID is empty";
  if (keyIdBytes > KEY_ID_MAX_BYTES) return `keyID is ${keyIdBytes} bytes, over the ${KEY_ID_MAX_BYTES}-byte limit`;
  let total = 0;
  for (const [key, value] of Object.entries(object.annotations)) {
    // The key is the plugin's own text, not secret, but it is not shown: it could be anything.
    if (!isFullyQualifiedDomainName(key)) return "an annotation key is not a fully qualified domain name";
    total += Buffer.byteLength(key, "utf8") + value.length;
  }
  if (total > ANNOTATIONS_MAX_BYTES) return `annotations are ${total} bytes, over the ${ANNOTATIONS_MAX_BYTES}-byte limit`;
  return undefined;
}

/**
 * What upstream caches a decrypted DEK source under (kmsv2 generateCacheKey): uint32 type ‖
 * u16-prefixed source ‖ u16-prefixed keyID [‖ uint32 count ‖ (u16 key ‖ u16 value) sorted by key].
 * Call it on validated objects only: the lengths then fit their prefixes.
 */
export function dekSourceCacheKey(object: Pick<EncryptedObject, "encryptedDEKSourceType" | "encryptedDEKSource" | "keyID" | "annotations">): Buffer {
  const parts: Buffer[] = [];
  const u16Prefixed = (bytes: Buffer): void => {
    const length = Buffer.alloc(2);
    length.writeUInt16BE(bytes.length);
    parts.push(length, bytes);
  };
  const u32 = (value: number): void => {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(value);
    parts.push(bytes);
  };
  u32(object.encryptedDEKSourceType);
  u16Prefixed(object.encryptedDEKSource);
  u16Prefixed(Buffer.from(object.keyID, "utf8"));
  // Go's sort.Strings orders by bytes; so does comparing the UTF-8 encodings.
  const keys = Object.keys(object.annotations).sort((a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));
  if (keys.length > 0) {
    u32(keys.length);
    for (const key of keys) {
      u16Prefixed(Buffer.from(key, "utf8"));
      u16Prefixed(object.annotations[key] as Buffer);
    }
  }
  return Buffer.concat(parts);
}

/**
 * Seed mode's per-value key: HKDF-Expand(SHA-256, PRK = seed, info, 32) with no Extract step,
 * which for one output block is HMAC(seed, info ‖ 0x01). node's hkdfSync always extracts first,
 * so it would derive a different key (§1.5).
 */
export function deriveSeedKey(seed: Buffer, info: Buffer): Buffer {
  return createHmac("sha256", seed).update(info).update(Buffer.of(1)).digest();
}

/** Seed mode draws info and nonce together: 44 bytes of pooled CSPRNG output per value. */
const seedModeRandom = new NoncePool(INFO_BYTES + NONCE_BYTES);
const gcmNonces = new NoncePool(NONCE_BYTES);

function gcmSeal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer): Buffer[] {
  const cipher = createCipheriv(`aes-${key.length * 8}-gcm` as "aes-256-gcm", key, nonce);
  cipher.setAAD(aad);
  return [cipher.update(plaintext), cipher.final(), cipher.getAuthTag()];
}

function gcmOpen(key: Buffer, sealed: Buffer, aad: Buffer): Buffer | undefined {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv(`aes-${key.length * 8}-gcm` as "aes-256-gcm", key, sealed.subarray(0, NONCE_BYTES));
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

function bytesOf(text: string | Buffer): Buffer {
  return typeof text === "string" ? Buffer.from(text, "utf8") : text;
}

/** Whether a decrypted DEK source can be used as `type`'s key material (upstream: aes.NewCipher sizes; seeds of 32+ bytes). */
export function dekSourceProblem(type: number, dekOrSeed: Buffer): string | undefined {
  if (type === AES_GCM_KEY) return [16, 24, 32].includes(dekOrSeed.length) ? undefined : `the decrypted DEK is ${dekOrSeed.length} bytes, not an AES key`;
  if (type === HKDF_SHA256_XNONCE_AES_GCM_SEED) return dekOrSeed.length >= INFO_BYTES ? undefined : `the decrypted seed is ${dekOrSeed.length} bytes, under 32`;
  return `unknown encryptedDEKSourceType ${type}`;
}

/**
 * encryptedData for `type`: nonce ‖ ct ‖ tag under the DEK (AES_GCM_KEY), or info ‖ nonce ‖ ct ‖
 * tag under the key derived from the seed and a fresh info. dbcrypt itself writes seed mode only:
 * AES_GCM_KEY reuses one DEK across values, where upstream counts nonces rather than drawing them.
 */
export function sealKmsV2Payload(type: EncryptedDEKSourceType, dekOrSeed: Buffer, plaintext: string | Buffer, aad: string | Buffer): Buffer {
  const problem = dekSourceProblem(type, dekOrSeed);
  if (problem !== undefined) throw new Error(`cannot seal a KMS v2 payload: ${problem}`);
  if (type === AES_GCM_KEY) {
    const nonce = gcmNonces.next();
    return Buffer.concat([nonce, ...gcmSeal(dekOrSeed, nonce, bytesOf(plaintext), bytesOf(aad))]);
  }
  const random = seedModeRandom.next();
  const info = random.subarray(0, INFO_BYTES);
  const nonce = random.subarray(INFO_BYTES);
  return Buffer.concat([random, ...gcmSeal(deriveSeedKey(dekOrSeed, info), nonce, bytesOf(plaintext), bytesOf(aad))]);
}

/**
 * An opener for one value: the key is derived once (seed mode), then tried with each additional
 * data a row may have been written with. undefined when the layout is too short to be one.
 */
export function kmsV2PayloadOpener(type: number, dekOrSeed: Buffer, encryptedData: Buffer): ((aad: string | Buffer) => Buffer | undefined) | undefined {
  if (dekSourceProblem(type, dekOrSeed) !== undefined) return undefined;
  if (type === AES_GCM_KEY) return (aad) => gcmOpen(dekOrSeed, encryptedData, bytesOf(aad));
  if (encryptedData.length < INFO_BYTES + NONCE_BYTES + TAG_BYTES) return undefined;
  const key = deriveSeedKey(dekOrSeed, encryptedData.subarray(0, INFO_BYTES));
  const sealed = encryptedData.subarray(INFO_BYTES);
  return (aad) => gcmOpen(key, sealed, bytesOf(aad));
}

/** The plaintext, or undefined when the data does not authenticate under this DEK or seed with `aad`. */
export function openKmsV2Payload(type: number, dekOrSeed: Buffer, encryptedData: Buffer, aad: string | Buffer): Buffer | undefined {
  return kmsV2PayloadOpener(type, dekOrSeed, encryptedData)?.(aad);
}
