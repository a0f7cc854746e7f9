/**
 * The cipher, key ids and key objects against reference §1: fixed vectors, Coder's own
 * backward-compatibility vector, failure classes, and a cross-check with the independent
 * implementation in test/support/coder-crypto.ts in both directions.
 */
import { randomBytes } from "node:crypto";
import { inspect, format } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  NONCE_BYTES,
  TAG_BYTES,
  describeOpenFailure,
  openAes256Gcm,
  sealAes256Gcm,
  type OpenFailure,
  type OpenResult,
} from "../../src/crypto/aes256gcm.js";
import { EncryptionKey, KEY_BYTES } from "../../src/crypto/encryption-key.js";
import { KEY_ID_LENGTH, aes256gcmKeyId, looksLikeKeyId } from "../../src/crypto/key-id.js";
import { Keyring } from "../../src/crypto/keyring.js";
import { NoncePool } from "../../src/crypto/nonce-pool.js";
import { DbcryptError } from "../../src/errors.js";
import { keyIdOf, openValue, sealValue } from "../support/coder-crypto.js";

const KEY_A = Buffer.alloc(32, "a");
const KEY_B = Buffer.alloc(32, "b");
const KEY_ZERO = Buffer.alloc(32, 0);
const KEY_COUNTING = Buffer.from(Array.from({ length: 32 }, (_, index) => index));
const ZERO_NONCE = Buffer.alloc(12, 0);
const COUNTING_NONCE = Buffer.from("000102030405060708090a0b", "hex");

/** Coder's TestCiphersBackwardCompatibility value (reference §1.4). */
const CODER_HELLO_WORLD = "YhAz+lE2fFeeiVPH9voKN7UV1xSDrgcnC0LmNXmaAk1Yg0kPFO3x";

function expectOpened(result: OpenResult): Buffer {
  if (!result.ok) throw new Error(`expected the value to open, got ${result.failure}`);
  return result.plaintext;
}

function expectFailure(result: OpenResult, failure: OpenFailure): void {
  // A key's open() also words the failure (`reason`); openAes256Gcm gives the kind alone.
  const { reason: _reason, ...rest } = result as OpenResult & { reason?: string };
  expect(rest).toEqual({ ok: false, failure });
}

/** Re-encodes a stored value after changing its raw bytes. */
function mutateBlob(stored: string, change: (blob: Buffer) => Buffer): string {
  return change(Buffer.from(stored, "base64")).toString("base64");
}

describe("key ids (reference §1.3, §1.4)", () => {
  it.each([
    ["32 x 'a' (Coder's own test)", "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=", "864f702"],
    ["32 x 'b'", "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=", "6c8d043"],
    ["32 x 0x00", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "fdd7705"],
    ["bytes 0..31", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "6d28cf8"],
  ])("%s has key id from the vector table", (_name, base64, id) => {
    const key = EncryptionKey.parse(base64, "--new-key");
    expect(key.id).toBe(id);
    expect(aes256gcmKeyId(Buffer.from(base64, "base64"))).toBe(id);
  });

  it("uses the aes256gcm prefix: the pre-release (unprefixed) id 3ba3f5f is not produced", () => {
    expect(aes256gcmKeyId(KEY_A)).not.toBe("3ba3f5f");
    expect(aes256gcmKeyId(KEY_A)).toBe("864f702");
  });

  it("is exactly 7 lowercase hex characters", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const id = aes256gcmKeyId(bytes);
        expect(id).toHaveLength(KEY_ID_LENGTH);
        expect(id).toMatch(/^[0-9a-f]{7}$/);
        expect(looksLikeKeyId(id)).toBe(true);
      }),
    );
  });

  it("agrees with the independent implementation for random keys", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        expect(aes256gcmKeyId(bytes)).toBe(keyIdOf(Buffer.from(bytes)));
      }),
    );
  });

  it.each(["864F702", "864f70", "864f7022", "864f70g", " 864f702", "864f702\n", ""])("looksLikeKeyId rejects %j", (text) => {
    expect(looksLikeKeyId(text)).toBe(false);
  });
});

describe("sealing with a fixed nonce (reference §1.4 vectors)", () => {
  it.each([
    ["32 x 'a', zero nonce, 'coder'", KEY_A, ZERO_NONCE, "coder", "AAAAAAAAAAAAAAAA9nvU1Jrt8JwcVHQEECSdbUXHKw9+"],
    ["32 x 'a', zero nonce, ''", KEY_A, ZERO_NONCE, "", "AAAAAAAAAAAAAAAAKoEqQvgkmt01fNWi7ElOUA=="],
    ["bytes 0..31, counting nonce, 'coder'", KEY_COUNTING, COUNTING_NONCE, "coder", "AAECAwQFBgcICQoLJG2yfrdlYkjT5hqzXa/2/z2FZpXl"],
  ])("%s", (_name, key, nonce, plaintext, expected) => {
    expect(sealAes256Gcm(key, plaintext, nonce)).toBe(expected);
    // The same bytes passed as a Buffer seal identically.
    expect(sealAes256Gcm(key, Buffer.from(plaintext, "utf8"), nonce)).toBe(expected);
    expect(expectOpened(openAes256Gcm(key, expected)).toString("utf8")).toBe(plaintext);
  });

  it("lays the blob out as nonce || ciphertext || tag", () => {
    const stored = sealAes256Gcm(KEY_A, "coder", COUNTING_NONCE);
    const blob = Buffer.from(stored, "base64");
    expect(blob).toHaveLength(NONCE_BYTES + 5 + TAG_BYTES);
    expect(blob.subarray(0, NONCE_BYTES)).toEqual(COUNTING_NONCE);
  });

  it("produces 4*ceil((28+n)/3) characters of padded standard base64", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const stored = sealAes256Gcm(KEY_A, Buffer.from(bytes));
        expect(stored).toHaveLength(4 * Math.ceil((28 + bytes.length) / 3));
        expect(stored).toMatch(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
      }),
    );
    expect(sealAes256Gcm(KEY_A, "")).toHaveLength(40);
    expect(sealAes256Gcm(KEY_A, "coder")).toHaveLength(44);
  });

  it.each([0, 11, 13, 16])("refuses a %i-byte nonce instead of writing a value nobody can open", (length) => {
    expect(() => sealAes256Gcm(KEY_A, "coder", Buffer.alloc(length))).toThrow(RangeError);
  });

  it("matches the independent implementation byte for byte for any plaintext and nonce", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.string({ unit: "binary", maxLength: 64 }),
        (key, nonce, plaintext) => {
          expect(sealAes256Gcm(key, plaintext, Buffer.from(nonce))).toBe(sealValue(Buffer.from(key), plaintext, Buffer.from(nonce)));
        },
      ),
    );
  });
});

describe("opening", () => {
  it("decrypts Coder's backward-compatibility vector to 'hello world'", () => {
    const plaintext = expectOpened(openAes256Gcm(KEY_A, CODER_HELLO_WORLD));
    expect(plaintext.toString("utf8")).toBe("hello world");
    expect(Buffer.from(CODER_HELLO_WORLD, "base64")).toHaveLength(39);
  });

  it("does not open Coder's vector with another key", () => {
    expectFailure(openAes256Gcm(KEY_B, CODER_HELLO_WORLD), "authentication_failed");
  });

  it("round-trips 'hello world' and two seals of one plaintext differ", () => {
    const first = sealAes256Gcm(KEY_A, "hello world");
    const second = sealAes256Gcm(KEY_A, "hello world");
    expect(first).not.toBe(second);
    expect(Buffer.from(first, "base64").subarray(0, 12)).not.toEqual(Buffer.from(second, "base64").subarray(0, 12));
    expect(expectOpened(openAes256Gcm(KEY_A, first)).toString()).toBe("hello world");
    expect(expectOpened(openAes256Gcm(KEY_A, second)).toString()).toBe("hello world");
  });

  it("round-trips any bytes, including non-UTF-8 ones", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const plaintext = Buffer.from(bytes);
        expect(expectOpened(openAes256Gcm(KEY_COUNTING, sealAes256Gcm(KEY_COUNTING, plaintext)))).toEqual(plaintext);
      }),
    );
  });

  it("fails authentication when the first (nonce) byte is flipped", () => {
    const stored = sealAes256Gcm(KEY_A, "hello world");
    const tampered = mutateBlob(stored, (blob) => {
      blob[0] = (blob[0] as number) ^ 0x01;
      return blob;
    });
    expectFailure(openAes256Gcm(KEY_A, tampered), "authentication_failed");
  });

  it("fails authentication when any single bit of the blob is flipped", () => {
    const stored = sealAes256Gcm(KEY_A, "hello world");
    const length = Buffer.from(stored, "base64").length;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: length - 1 }), fc.integer({ min: 0, max: 7 }), (index, bit) => {
        const tampered = mutateBlob(stored, (blob) => {
          blob[index] = (blob[index] as number) ^ (1 << bit);
          return blob;
        });
        expectFailure(openAes256Gcm(KEY_A, tampered), "authentication_failed");
      }),
    );
  });

  it("fails authentication when the blob is truncated or extended", () => {
    const stored = sealAes256Gcm(KEY_A, "hello world");
    expectFailure(openAes256Gcm(KEY_A, mutateBlob(stored, (blob) => blob.subarray(0, blob.length - 1))), "authentication_failed");
    expectFailure(openAes256Gcm(KEY_A, mutateBlob(stored, (blob) => blob.subarray(0, 28))), "authentication_failed");
    expectFailure(openAes256Gcm(KEY_A, mutateBlob(stored, (blob) => Buffer.concat([blob, Buffer.from([0])]))), "authentication_failed");
  });

  it.each(Array.from({ length: 12 }, (_, length) => length))("reports a %i-byte blob as too short", (length) => {
    const stored = randomBytes(length).toString("base64");
    expectFailure(openAes256Gcm(KEY_A, stored), "too_short");
  });

  it("reports the empty string as too short, as Go does (decodes to zero bytes)", () => {
    expectFailure(openAes256Gcm(KEY_A, ""), "too_short");
    expectFailure(openAes256Gcm(KEY_A, "\r\n"), "too_short");
    expect(() => openValue(KEY_A, "")).toThrow("ciphertext too short");
  });

  it.each(Array.from({ length: 16 }, (_, offset) => 12 + offset))("reports a %i-byte blob as an authentication failure, as Go does", (length) => {
    const stored = randomBytes(length).toString("base64");
    expectFailure(openAes256Gcm(KEY_A, stored), "authentication_failed");
  });

  it("reports 100 x 'a' (Coder's DecryptFailedError case) as an authentication failure", () => {
    expectFailure(openAes256Gcm(KEY_A, "a".repeat(100)), "authentication_failed");
  });

  it.each([
    ["URL-safe alphabet", (stored: string) => stored.replace(/\+/g, "-").replace(/\//g, "_")],
    ["missing padding", (stored: string) => stored.replace(/=+$/, "")],
    ["a space inside", (stored: string) => `${stored.slice(0, 8)} ${stored.slice(8)}`],
    ["a trailing space", (stored: string) => `${stored} `],
    ["a tab", (stored: string) => `\t${stored}`],
    ["junk characters", (stored: string) => `${stored.slice(0, 4)}!*${stored.slice(4)}`],
    ["extra padding", (stored: string) => `${stored}==`],
  ])("reports a value with %s as not base64 (Node would have decoded it)", (_name, corrupt) => {
    // 'code' seals to 32 bytes, so one '=' of padding; reseal until the value holds both '+' and '/'.
    let stored = "";
    for (let attempt = 0; attempt < 1000 && !(/[+]/.test(stored) && /[/]/.test(stored)); attempt++) stored = sealAes256Gcm(KEY_A, "code");
    expect(stored).toMatch(/[+]/);
    expect(stored).toMatch(/=$/);
    const corrupted = corrupt(stored);
    expect(corrupted).not.toBe(stored);
    expectFailure(openAes256Gcm(KEY_A, corrupted), "not_base64");
  });

  it("skips CR and LF inside a value, as Go's decoder does", () => {
    const stored = sealAes256Gcm(KEY_A, "hello world");
    const wrapped = stored.replace(/(.{10})/g, "$1\r\n");
    expect(wrapped).not.toBe(stored);
    expect(expectOpened(openAes256Gcm(KEY_A, wrapped)).toString()).toBe("hello world");
  });

  it("describes every failure without echoing anything from the value", () => {
    const failures: OpenFailure[] = ["not_base64", "too_short", "authentication_failed"];
    const texts = failures.map(describeOpenFailure);
    expect(new Set(texts).size).toBe(3);
    expect(describeOpenFailure("too_short")).toBe("ciphertext too short");
    for (const text of texts) expect(text).not.toMatch(/[A-Za-z0-9+/]{20,}/);
  });
});

describe("cross-check with the independent implementation (test/support/coder-crypto.ts)", () => {
  const keyArbitrary = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes));
  const textArbitrary = fc.string({ unit: "binary", maxLength: 200 });

  it("product seals, oracle opens", () => {
    fc.assert(
      fc.property(keyArbitrary, textArbitrary, (key, plaintext) => {
        expect(openValue(key, EncryptionKey.fromBytes(key).seal(plaintext))).toBe(plaintext);
      }),
    );
  });

  it("oracle seals, product opens", () => {
    fc.assert(
      fc.property(keyArbitrary, textArbitrary, (key, plaintext) => {
        expect(expectOpened(EncryptionKey.fromBytes(key).open(sealValue(key, plaintext)))).toEqual(Buffer.from(plaintext, "utf8"));
      }),
    );
  });

  it("both reject a value sealed under another key", () => {
    const stored = sealValue(KEY_B, "secret");
    expect(() => openValue(KEY_A, stored)).toThrow("message authentication failed");
    expectFailure(openAes256Gcm(KEY_A, stored), "authentication_failed");
  });
});

describe("lossless rotation of non-UTF-8 plaintext", () => {
  it("re-seals the exact bytes under a new key", () => {
    const oldKey = EncryptionKey.fromBytes(KEY_A);
    const newKey = EncryptionKey.fromBytes(KEY_B);
    const original = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x41]);
    // Decoding these bytes as UTF-8 would replace them with U+FFFD and lose data.
    expect(Buffer.from(original.toString("utf8"), "utf8").equals(original)).toBe(false);
    const storedOld = oldKey.seal(original);
    const plaintext = expectOpened(oldKey.open(storedOld));
    const storedNew = newKey.seal(plaintext);
    expect(expectOpened(newKey.open(storedNew))).toEqual(original);
    expectFailure(oldKey.open(storedNew), "authentication_failed");
  });

  it("holds for arbitrary bytes across a chain of keys", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 128 }), fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { minLength: 2, maxLength: 4 }), (bytes, keys) => {
        const chain = keys.map((key) => EncryptionKey.fromBytes(key));
        let stored = (chain[0] as EncryptionKey).seal(Buffer.from(bytes));
        for (let index = 1; index < chain.length; index++) {
          const plaintext = expectOpened((chain[index - 1] as EncryptionKey).open(stored));
          stored = (chain[index] as EncryptionKey).seal(plaintext);
        }
        expect(expectOpened((chain[chain.length - 1] as EncryptionKey).open(stored))).toEqual(Buffer.from(bytes));
      }),
      { numRuns: 50 },
    );
  });
});

describe("NoncePool", () => {
  it("hands out 12-byte nonces that never repeat across many refills", () => {
    const pool = new NoncePool(12, 3);
    const seen = new Set<string>();
    for (let index = 0; index < 3 * 200; index++) {
      const nonce = pool.next();
      expect(nonce).toHaveLength(12);
      seen.add(nonce.toString("hex"));
    }
    expect(seen.size).toBe(600);
  });

  it("refills from the CSPRNG rather than replaying the previous pool", () => {
    const pool = new NoncePool(12, 1);
    const first = pool.next();
    const second = pool.next();
    expect(second).not.toEqual(first);
  });

  it("returns copies: a refill does not rewrite nonces already handed out", () => {
    const pool = new NoncePool(12, 1);
    const first = pool.next();
    const snapshot = Buffer.from(first);
    pool.next();
    pool.next();
    expect(first).toEqual(snapshot);
  });

  it("returns copies: changing a handed-out nonce does not change the pool", () => {
    const pool = new NoncePool(4, 2);
    const first = pool.next();
    first.fill(0xaa);
    const second = pool.next();
    expect(second).toHaveLength(4);
    expect(second.equals(Buffer.alloc(4, 0xaa))).toBe(false);
  });

  it("never reuses a nonce in the values sealed through the shared pool (more than one refill)", () => {
    const nonces = new Set<string>();
    const count = 4096 * 2 + 10;
    for (let index = 0; index < count; index++) {
      nonces.add(Buffer.from(sealAes256Gcm(KEY_A, ""), "base64").subarray(0, 12).toString("hex"));
    }
    expect(nonces.size).toBe(count);
  });
});

describe("EncryptionKey", () => {
  it("fromBytes requires exactly 32 bytes", () => {
    for (const length of [0, 16, 31, 33, 64]) {
      const error = catchError(() => EncryptionKey.fromBytes(new Uint8Array(length)));
      expect(error).toBeInstanceOf(DbcryptError);
      expect((error as DbcryptError).code).toBe("bad_key");
      expect((error as DbcryptError).message).toContain(`got ${length}`);
    }
    expect(EncryptionKey.fromBytes(new Uint8Array(KEY_BYTES)).id).toBe("fdd7705");
  });

  it("copies the bytes it is given", () => {
    const bytes = Buffer.from(KEY_A);
    const key = EncryptionKey.fromBytes(bytes);
    bytes.fill(0);
    expect(key.id).toBe("864f702");
    expect(key.exportBase64()).toBe(KEY_A.toString("base64"));
    expect(expectOpened(key.open(CODER_HELLO_WORLD)).toString()).toBe("hello world");
  });

  it("generate makes distinct random 32-byte keys", () => {
    const first = EncryptionKey.generate();
    const second = EncryptionKey.generate();
    expect(first.id).not.toBe(second.id);
    expect(Buffer.from(first.exportBase64(), "base64")).toHaveLength(32);
    expect(EncryptionKey.parse(first.exportBase64(), "x").id).toBe(first.id);
  });

  it("seal/open use the key's bytes (oracle check)", () => {
    const key = EncryptionKey.fromBytes(KEY_COUNTING);
    expect(openValue(KEY_COUNTING, key.seal("coder"))).toBe("coder");
  });

  describe("never exposes key bytes", () => {
    const bytes = randomBytes(32);
    const key = EncryptionKey.fromBytes(bytes);
    const forms = [
      bytes.toString("hex"),
      bytes.toString("base64"),
      bytes.toString("base64").replace(/=+$/, ""),
      bytes.toString("base64url"),
      // Any 8-byte window of the key, in hex, catches partial dumps such as <Buffer 12 34 ...>.
      ...Array.from({ length: 4 }, (_, index) => bytes.subarray(index * 8, index * 8 + 8).toString("hex")),
    ];
    const spacedHex = Array.from(bytes.subarray(0, 6)).map((byte) => byte.toString(16).padStart(2, "0")).join(" ");

    const renderings: [string, () => string][] = [
      ["util.inspect", () => inspect(key)],
      ["util.inspect showHidden/depth", () => inspect(key, { showHidden: true, depth: Infinity })],
      ["util.inspect customInspect:false", () => inspect(key, { customInspect: false, showHidden: true, depth: Infinity })],
      ["util.inspect nested", () => inspect({ nested: [key], map: new Map([["k", key]]) }, { depth: Infinity })],
      ["util.format %o %O %s %j", () => format("%o %O %s %j", key, key, key, key)],
      ["JSON.stringify", () => JSON.stringify(key)],
      ["JSON.stringify nested", () => JSON.stringify({ keys: [key] })],
      ["String()", () => String(key)],
      ["template literal", () => `${key}`],
      ["Object.entries", () => JSON.stringify(Object.entries(key))],
      ["structuredClone", () => inspect(structuredClone(key), { depth: Infinity })],
      ["Keyring inspect", () => inspect(new Keyring(key, []), { showHidden: true, depth: Infinity })],
      ["Keyring JSON", () => JSON.stringify(new Keyring(key, []))],
    ];

    it.each(renderings)("%s shows only the id", (_name, render) => {
      const text = render();
      for (const form of forms) expect(text).not.toContain(form);
      expect(text).not.toContain(spacedHex);
      expect(text).not.toMatch(/Buffer|Uint8Array/);
    });

    it("inspect and JSON show the key id", () => {
      expect(inspect(key)).toBe(`EncryptionKey(${key.id})`);
      expect(JSON.parse(JSON.stringify(key))).toEqual({ id: key.id });
      expect(Object.keys(key)).toEqual(["id", "source"]);
    });
  });
});

describe("Keyring", () => {
  const a = EncryptionKey.fromBytes(KEY_A);
  const b = EncryptionKey.fromBytes(KEY_B);
  const zero = EncryptionKey.fromBytes(KEY_ZERO);

  it("looks keys up by id, primary first", () => {
    const ring = new Keyring(a, [b, zero]);
    expect(ring.primary).toBe(a);
    expect(ring.ids).toEqual([a.id, b.id, zero.id]);
    expect(ring.size).toBe(3);
    expect(ring.get(b.id)).toBe(b);
    expect(ring.has(zero.id)).toBe(true);
    expect(ring.has("0000000")).toBe(false);
    expect(ring.get("0000000")).toBeUndefined();
  });

  it("can be decrypt-only or empty", () => {
    const ring = new Keyring(undefined, [b]);
    expect(ring.primary).toBeUndefined();
    expect(ring.ids).toEqual([b.id]);
    expect(Keyring.empty().size).toBe(0);
    expect(Keyring.empty().primary).toBeUndefined();
  });

  it.each([
    ["the primary repeated as a decrypt-only key", () => new Keyring(a, [b, EncryptionKey.fromBytes(KEY_A)])],
    ["two equal decrypt-only keys", () => new Keyring(undefined, [b, zero, EncryptionKey.fromBytes(KEY_B)])],
    ["the same object twice", () => new Keyring(undefined, [zero, zero])],
    // 32 bytes leave 2 spare bits in the last base64 character; Go ignores them, so two spellings name one key.
    ["two spellings of one key", () => new Keyring(EncryptionKey.parse("YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=", "a"), [EncryptionKey.parse("YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWG=", "b")])],
  ])("refuses %s", (_name, build) => {
    const error = catchError(build);
    expect(error).toBeInstanceOf(DbcryptError);
    expect((error as DbcryptError).code).toBe("bad_key");
    expect((error as DbcryptError).message).toMatch(/share key id [0-9a-f]{7}$/);
  });
});

function catchError(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
}
