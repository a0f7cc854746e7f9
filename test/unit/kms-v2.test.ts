/**
 * KMS v2 payloads and EncryptedObject bytes: Kubernetes' extended-nonce compatibility vector, the
 * expand-only HKDF pitfall, the wire layout read by an independent reader (test/support/
 * kms-v2-wire.ts), upstream's validation and cache key, key ids of cells, and endpoint and
 * timeout parsing. The gRPC half is test/integration/kms-plugin.test.ts.
 */
import { createHash, hkdfSync } from "node:crypto";
import { expand } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { parseGoDuration, parseKmsEndpoint } from "../../src/crypto/k8s/kms-plugin-client.js";
import {
  AES_GCM_KEY,
  decodeEncryptedObject,
  dekSourceCacheKey,
  deriveSeedKey,
  encodeEncryptedObject,
  encryptedObjectEncoder,
  HKDF_SHA256_XNONCE_AES_GCM_SEED,
  openKmsV2Payload,
  sealKmsV2Payload,
  validateEncryptedObject,
  type EncryptedObject,
} from "../../src/crypto/k8s/kms-v2-object.js";
import { KmsV2Provider, kmsV2KeyIdFor, kmsV2KeyIdOfCell } from "../../src/crypto/k8s/kms-v2-provider.js";
import { DbcryptError } from "../../src/errors.js";
import { lengthDelimited, openData, readFields, readObject, sealData, writeObject } from "../support/kms-v2-wire.js";

const VECTOR_SEED = Buffer.from("5d40323a820ff95561675e3b95e81867c5fdd561d35a88a2d08b08aa9d4fcf5c", "hex");
const VECTOR_DATA = Buffer.from(
  "2442759e33945fbad709db577a0f037fd8a709fc76979b8942209debcecb9d57efe3d6ff6a1ef6ee9a5003b9833b3043cec1e47b35175b151107a8d2416b0e296bbf66b5d102fcefdf9a78f293d271",
  "hex",
);

function sampleObject(overrides: Partial<EncryptedObject> = {}): EncryptedObject {
  return {
    encryptedData: Buffer.from("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "hex"),
    keyID: "arn:aws:kms:eu-west-1:111122223333:key/abcd",
    encryptedDEKSource: Buffer.from("1wrapped-seed"),
    annotations: { "version.kms.example.com": Buffer.from("7") },
    encryptedDEKSourceType: HKDF_SHA256_XNONCE_AES_GCM_SEED,
    ...overrides,
  };
}

describe("KMS v2 payloads", () => {
  it("opens Kubernetes' TestExtendedNonceGCMLegacyDataCompatibility vector (seed mode, additional data \"bamboo\")", () => {
    expect(VECTOR_DATA.length).toBe(79);
    expect(openKmsV2Payload(HKDF_SHA256_XNONCE_AES_GCM_SEED, VECTOR_SEED, VECTOR_DATA, "bamboo")?.toString()).toBe("pandas are the best");
    expect(openKmsV2Payload(HKDF_SHA256_XNONCE_AES_GCM_SEED, VECTOR_SEED, VECTOR_DATA, "panda")).toBeUndefined();
    // Read as AES_GCM_KEY, the seed is not the key: the info bytes are taken for a nonce.
    expect(openKmsV2Payload(AES_GCM_KEY, VECTOR_SEED, VECTOR_DATA, "bamboo")).toBeUndefined();
  });

  it("derives the per-value key with HKDF-Expand only; node's hkdfSync (Extract, then Expand) would not open the vector", () => {
    const info = VECTOR_DATA.subarray(0, 32);
    const key = deriveSeedKey(VECTOR_SEED, info);
    expect(key.equals(Buffer.from(expand(sha256, VECTOR_SEED, info, 32)))).toBe(true);
    const extracted = Buffer.from(hkdfSync("sha256", VECTOR_SEED, Buffer.alloc(0), info, 32));
    expect(extracted.equals(key)).toBe(false);
    // With hkdfSync's key in place of the expand-only one, the vector does not authenticate.
    expect(openData(0, extracted, VECTOR_DATA.subarray(32), "bamboo")).toBeUndefined();
    expect(openData(0, key, VECTOR_DATA.subarray(32), "bamboo")?.toString()).toBe("pandas are the best");
  });

  it.each([
    ["AES_GCM_KEY", AES_GCM_KEY],
    ["HKDF_SHA256_XNONCE_AES_GCM_SEED", HKDF_SHA256_XNONCE_AES_GCM_SEED],
  ] as const)("%s agrees with an independent implementation both ways", (_name, type) => {
    const secret = Buffer.alloc(32, 7);
    const sealed = sealKmsV2Payload(type, secret, "obot secret", "credentials/alice");
    expect(sealed.length).toBe((type === AES_GCM_KEY ? 12 : 44) + "obot secret".length + 16);
    expect(openData(type, secret, sealed, "credentials/alice")?.toString()).toBe("obot secret");
    const theirs = sealData(type, secret, Buffer.from("from kubernetes"), "credentials/bob");
    expect(openKmsV2Payload(type, secret, theirs, "credentials/bob")?.toString()).toBe("from kubernetes");
    expect(openKmsV2Payload(type, secret, theirs, "credentials/alice")).toBeUndefined();
  });

  it("refuses key material of the wrong size rather than sealing with it", () => {
    expect(() => sealKmsV2Payload(HKDF_SHA256_XNONCE_AES_GCM_SEED, Buffer.alloc(16), "x", "")).toThrow(/seed is 16 bytes/);
    expect(openKmsV2Payload(AES_GCM_KEY, Buffer.alloc(20), Buffer.alloc(40), "")).toBeUndefined();
  });
});

describe("EncryptedObject bytes", () => {
  it("lays out fields in number order with §1.6's tags, read back by an independent reader", () => {
    const object = sampleObject();
    const bytes = encodeEncryptedObject(object);
    const fields = readFields(bytes);
    expect(fields.map((field) => field.field)).toEqual([1, 2, 3, 4, 5]);
    // Tags: 0x0A data, 0x12 keyID, 0x1A DEK source, 0x22 map entry, 0x28 type.
    let at = 0;
    const tags: number[] = [];
    for (const field of fields) {
      tags.push(bytes[at] as number);
      at += field.wireType === 0 ? 2 : 2 + (field.bytes as Buffer).length;
    }
    expect(tags).toEqual([0x0a, 0x12, 0x1a, 0x22, 0x28]);
    expect(bytes.subarray(0, 2)).toEqual(Buffer.of(0x0a, 32));
    expect(bytes.subarray(2, 34).equals(object.encryptedData)).toBe(true);
    expect(bytes.subarray(bytes.length - 2)).toEqual(Buffer.of(0x28, 0x01));
    const entry = fields[3]?.bytes as Buffer;
    expect(entry).toEqual(Buffer.concat([Buffer.of(0x0a, 23), Buffer.from("version.kms.example.com"), Buffer.of(0x12, 1), Buffer.from("7")]));
    expect(readObject(bytes)).toEqual({ encryptedData: object.encryptedData, keyID: object.keyID, encryptedDEKSource: object.encryptedDEKSource, annotations: object.annotations, type: 1 });
    // Byte for byte what Go's proto.Marshal writes, as the independent writer spells it.
    expect(bytes.equals(writeObject({ ...readObject(bytes) }))).toBe(true);
  });

  it("leaves out type 0 (AES_GCM_KEY) and empty annotations, as proto3 does", () => {
    const bytes = encodeEncryptedObject(sampleObject({ encryptedDEKSourceType: AES_GCM_KEY, annotations: {} }));
    expect(readFields(bytes).map((field) => field.field)).toEqual([1, 2, 3]);
    expect(bytes.includes(0x28, bytes.length - 1)).toBe(false);
  });

  it("encodes many objects under one DEK source exactly as the one-off encoder does (long data: multi-byte length)", () => {
    const { encryptedData: _data, ...fixed } = sampleObject();
    const encode = encryptedObjectEncoder(fixed);
    for (const size of [1, 127, 128, 300, 20_000]) {
      const data = Buffer.alloc(size, 9);
      expect(encode(data).equals(encodeEncryptedObject({ ...fixed, encryptedData: data }))).toBe(true);
    }
  });

  it("decodes fields in any order and map entries in any order", () => {
    const object = sampleObject({ annotations: { "b.example.com": Buffer.from("2"), "a.example.com": Buffer.from("1") } });
    const entry = (key: string, value: string): Buffer => lengthDelimited(4, Buffer.concat([lengthDelimited(1, Buffer.from(key)), lengthDelimited(2, Buffer.from(value))]));
    const shuffled = Buffer.concat([
      Buffer.of(0x28, 0x01),
      entry("b.example.com", "2"),
      lengthDelimited(3, object.encryptedDEKSource),
      lengthDelimited(1, object.encryptedData),
      entry("a.example.com", "1"),
      lengthDelimited(2, Buffer.from(object.keyID)),
    ]);
    const decoded = decodeEncryptedObject(shuffled);
    expect("object" in decoded && decoded.object).toEqual(object);
    // Map value before key inside an entry, too.
    const reversedEntry = lengthDelimited(4, Buffer.concat([lengthDelimited(2, Buffer.from("v")), lengthDelimited(1, Buffer.from("k.example.com"))]));
    const withReversed = decodeEncryptedObject(Buffer.concat([lengthDelimited(1, Buffer.of(1)), reversedEntry]));
    expect("object" in withReversed && withReversed.object.annotations["k.example.com"]?.toString()).toBe("v");
  });

  it("says why bytes are not an object instead of throwing", () => {
    expect(decodeEncryptedObject(Buffer.of(0x0a, 0x40, 1, 2))).toEqual({ reason: "not a protobuf EncryptedObject" });
  });

  it.each<[string, Partial<EncryptedObject>, RegExp]>([
    ["empty data", { encryptedData: Buffer.alloc(0) }, /encrypted data is empty/],
    ["unknown type", { encryptedDEKSourceType: 7 }, /unknown encryptedDEKSourceType 7/],
    ["empty key id", { keyID: "" }, /keyID is empty/],
    ["key id over 1 KiB", { keyID: "k".repeat(1025) }, /keyID is 1025 bytes/],
    ["empty DEK source", { encryptedDEKSource: Buffer.alloc(0) }, /DEK source is empty/],
    ["DEK source over 1 KiB", { encryptedDEKSource: Buffer.alloc(1025) }, /DEK source is 1025 bytes/],
    ["annotation key without a dot", { annotations: { version: Buffer.from("1") } }, /not a fully qualified domain name/],
    ["annotation key in upper case", { annotations: { "Version.example.com": Buffer.from("1") } }, /not a fully qualified domain name/],
    ["annotations over 32 KiB", { annotations: { "a.example.com": Buffer.alloc(32 * 1024) } }, /annotations are 32781 bytes/],
  ])("validation refuses %s", (_case, overrides, reason) => {
    expect(validateEncryptedObject(sampleObject(overrides))).toMatch(reason);
  });

  it("validation accepts the limits themselves", () => {
    expect(validateEncryptedObject(sampleObject({ keyID: "k".repeat(1024), encryptedDEKSource: Buffer.alloc(1024), annotations: { "a.example.com.": Buffer.alloc(32 * 1024 - 14) } }))).toBeUndefined();
  });

  it("builds upstream's DEK source cache key: type, source, key id, then annotations sorted by key", () => {
    const object = sampleObject({ annotations: { "b.example.com": Buffer.from("2"), "a.example.com": Buffer.from("1") } });
    const u16 = (bytes: Buffer): Buffer => Buffer.concat([Buffer.of(bytes.length >> 8, bytes.length & 255), bytes]);
    expect(dekSourceCacheKey(object)).toEqual(
      Buffer.concat([Buffer.of(0, 0, 0, 1), u16(object.encryptedDEKSource), u16(Buffer.from(object.keyID)), Buffer.of(0, 0, 0, 2), u16(Buffer.from("a.example.com")), u16(Buffer.from("1")), u16(Buffer.from("b.example.com")), u16(Buffer.from("2"))]),
    );
    expect(dekSourceCacheKey({ ...object, annotations: {}, encryptedDEKSourceType: AES_GCM_KEY })).toEqual(Buffer.concat([Buffer.of(0, 0, 0, 0), u16(object.encryptedDEKSource), u16(Buffer.from(object.keyID))]));
  });
});

describe("KMS v2 cells and key ids", () => {
  const cellOf = (name: string, body: Buffer): string => Buffer.concat([Buffer.from(`k8s:enc:kms:v2:${name}:`), body]).toString("base64");
  const object = sampleObject();
  const wire = writeObject({ ...object, type: object.encryptedDEKSourceType });
  const hash7 = createHash("sha256").update(object.keyID).digest("hex").slice(0, 7);

  it("names a cell's key by provider and a short hash of the plugin's key id, bare or in Obot's envelope", () => {
    expect(kmsV2KeyIdFor("aws-kms", object.keyID)).toBe(`kms:v2:aws-kms/${hash7}`);
    expect(kmsV2KeyIdOfCell(cellOf("aws-kms", wire))).toBe(`kms:v2:aws-kms/${hash7}`);
    expect(kmsV2KeyIdOfCell(JSON.stringify({ _obot_encrypted_env: cellOf("aws-kms", wire) }))).toBe(`kms:v2:aws-kms/${hash7}`);
  });

  it("marks a cell with the right prefix but a bad object, and ignores what is not a KMS v2 cell", () => {
    expect(kmsV2KeyIdOfCell(cellOf("aws-kms", Buffer.from("garbage")))).toBe("kms:v2:aws-kms/?");
    expect(kmsV2KeyIdOfCell(cellOf("aws-kms", writeObject({ ...object, keyID: "", type: 1 })))).toBe("kms:v2:aws-kms/?");
    expect(kmsV2KeyIdOfCell(Buffer.from("k8s:enc:aesgcm:v1:key0:xxxxxxxxxxxx").toString("base64"))).toBeUndefined();
    expect(kmsV2KeyIdOfCell(Buffer.from("k8s:enc:kms:v1:old:xxxxxxxx").toString("base64"))).toBeUndefined();
    expect(kmsV2KeyIdOfCell("plain text")).toBeUndefined();
    expect(kmsV2KeyIdOfCell(Buffer.from("k8s:enc:kms:v2::x").toString("base64"))).toBeUndefined();
  });

  it("a read key reports a cell whose DEK source was not prepared, and cells of other providers, without asking the plugin", () => {
    const provider = new KmsV2Provider({ name: "aws-kms", endpoint: "unix:///nonexistent/kms.sock", inner: () => undefined });
    try {
      const key = provider.readKey();
      expect(key.id).toBe("kms:v2:aws-kms/*");
      expect(key.idFamily).toBe("kms:v2:aws-kms/");
      expect(key.unkeyed).toBe(true);
      const notPrepared = key.open(cellOf("aws-kms", wire));
      expect(notPrepared.ok ? "" : notPrepared.reason).toContain("DEK source not decrypted");
      const other = key.open(cellOf("gcp-kms", wire));
      expect(other.ok ? "" : other.reason).toBe("not a KMS v2 cell of provider aws-kms");
      const bad = key.open(cellOf("aws-kms", Buffer.from("garbage")));
      expect(bad.ok ? "" : bad.reason).toMatch(/^not a valid KMS v2 EncryptedObject/);
      expect(JSON.stringify(key)).toBe('{"id":"kms:v2:aws-kms/*"}');
      expect(() => provider.writeKey()).toThrow(/prepareWrites/);
    } finally {
      provider.close();
    }
  });
});

describe("KMS provider settings", () => {
  it.each<[string, number | undefined]>([
    ["3s", 3000],
    ["500ms", 500],
    ["1m", 60_000],
    ["1m30s", 90_000],
    ["1.5h", 5_400_000],
    ["250us", 0.25],
    ["0", 0],
    ["3", undefined],
    ["", undefined],
    ["3 s", undefined],
    ["3d", undefined],
  ])("parses the Go duration %j", (text, ms) => {
    expect(parseGoDuration(text)).toBe(ms);
  });

  it("takes unix:// endpoints only, with abstract sockets spelled /@name", () => {
    expect(parseKmsEndpoint("unix:///tmp/aws.sock")).toEqual({ endpoint: "unix:///tmp/aws.sock", target: "unix:///tmp/aws.sock", socketPath: "/tmp/aws.sock" });
    expect(parseKmsEndpoint("unix:///@kms-abstract")).toEqual({ endpoint: "unix:///@kms-abstract", target: "unix:\0kms-abstract", socketPath: undefined });
    for (const bad of ["tcp://localhost:9000", "unix://tmp/aws.sock", "/tmp/aws.sock", "unix://", "unix:///"]) {
      expect(() => parseKmsEndpoint(bad)).toThrow(DbcryptError);
    }
  });
});
