/**
 * An independent reading of the KMS v2 `EncryptedObject` wire format (shared/reference/schemes.md
 * §1.5–1.6), hand-written from the protobuf encoding rules so tests can check src/'s
 * protobufjs codec against something it does not share; never imports from src/.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";

export interface WireField {
  field: number;
  wireType: number;
  /** Length-delimited fields: their bytes; varints: their value. */
  bytes?: Buffer;
  varint?: number;
}

function readVarint(bytes: Buffer, at: number): [number, number] {
  let value = 0;
  for (let shift = 0, index = at; index < bytes.length; shift += 7, index++) {
    const byte = bytes[index] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, index + 1];
  }
  throw new Error("truncated varint");
}

function varint(value: number): Buffer {
  const out: number[] = [];
  for (let rest = value; ; rest = Math.floor(rest / 128)) {
    if (rest < 128) {
      out.push(rest);
      return Buffer.from(out);
    }
    out.push((rest % 128) | 0x80);
  }
}

/** Top-level fields in wire order; only the two wire types EncryptedObject uses. */
export function readFields(bytes: Buffer): WireField[] {
  const fields: WireField[] = [];
  let at = 0;
  while (at < bytes.length) {
    const [tag, afterTag] = readVarint(bytes, at);
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType === 0) {
      const [value, next] = readVarint(bytes, afterTag);
      fields.push({ field, wireType, varint: value });
      at = next;
    } else if (wireType === 2) {
      const [length, start] = readVarint(bytes, afterTag);
      if (start + length > bytes.length) throw new Error("truncated field");
      fields.push({ field, wireType, bytes: bytes.subarray(start, start + length) });
      at = start + length;
    } else {
      throw new Error(`unexpected wire type ${wireType}`);
    }
  }
  return fields;
}

export function lengthDelimited(field: number, bytes: Buffer): Buffer {
  return Buffer.concat([varint(field * 8 + 2), varint(bytes.length), bytes]);
}

export interface WireObject {
  encryptedData: Buffer;
  keyID: string;
  encryptedDEKSource: Buffer;
  annotations: Record<string, Buffer>;
  type: number;
}

/** As Go's proto.Marshal writes it: fields in number order, type 0 left out. */
export function writeObject(object: WireObject): Buffer {
  const parts = [lengthDelimited(1, object.encryptedData), lengthDelimited(2, Buffer.from(object.keyID, "utf8")), lengthDelimited(3, object.encryptedDEKSource)];
  for (const [key, value] of Object.entries(object.annotations)) parts.push(lengthDelimited(4, Buffer.concat([lengthDelimited(1, Buffer.from(key, "utf8")), lengthDelimited(2, value)])));
  if (object.type !== 0) parts.push(Buffer.concat([Buffer.of(0x28), varint(object.type)]));
  return Buffer.concat(parts);
}

export function readObject(bytes: Buffer): WireObject {
  const object: WireObject = { encryptedData: Buffer.alloc(0), keyID: "", encryptedDEKSource: Buffer.alloc(0), annotations: {}, type: 0 };
  for (const field of readFields(bytes)) {
    if (field.field === 1) object.encryptedData = field.bytes as Buffer;
    if (field.field === 2) object.keyID = (field.bytes as Buffer).toString("utf8");
    if (field.field === 3) object.encryptedDEKSource = field.bytes as Buffer;
    if (field.field === 4) {
      const entry = readFields(field.bytes as Buffer);
      const key = entry.find((part) => part.field === 1)?.bytes ?? Buffer.alloc(0);
      object.annotations[key.toString("utf8")] = entry.find((part) => part.field === 2)?.bytes ?? Buffer.alloc(0);
    }
    if (field.field === 5) object.type = field.varint as number;
  }
  return object;
}

/** HKDF-Expand only, one block: HMAC(seed, info ‖ 0x01). */
export function seedKey(seed: Buffer, info: Buffer): Buffer {
  return createHmac("sha256", seed).update(Buffer.concat([info, Buffer.of(1)])).digest();
}

function gcm(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(Buffer.from(aad, "utf8"));
  return Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function ungcm(key: Buffer, sealed: Buffer, aad: string): Buffer | undefined {
  try {
    const decipher = createDecipheriv(`aes-${key.length * 8}-gcm` as "aes-256-gcm", key, sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from(aad, "utf8"));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** encryptedData as the API server writes it: type 1 info ‖ nonce ‖ ct ‖ tag under HMAC(seed, info‖1); type 0 nonce ‖ ct ‖ tag. */
export function sealData(type: number, secret: Buffer, plaintext: Buffer, aad: string): Buffer {
  if (type === 0) return gcm(secret, plaintext, aad);
  const info = randomBytes(32);
  return Buffer.concat([info, gcm(seedKey(secret, info), plaintext, aad)]);
}

export function openData(type: number, secret: Buffer, data: Buffer, aad: string): Buffer | undefined {
  if (type === 0) return ungcm(secret, data, aad);
  return ungcm(seedKey(secret, data.subarray(0, 32)), data.subarray(32), aad);
}
