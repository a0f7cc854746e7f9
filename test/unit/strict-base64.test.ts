/**
 * Strict base64 (reference §1.1): exactly what Go's StdEncoding accepts, so a typo in a key or a
 * corrupt value is refused instead of silently decoding to different bytes, and key parsing
 * errors that name the flag and never echo what was typed.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EncryptionKey } from "../../src/crypto/encryption-key.js";
import { aes256gcmKeyId } from "../../src/crypto/key-id.js";
import {
  decodeStrictBase64,
  describeBase64Problem,
  findBase64Problem,
  type Base64Problem,
} from "../../src/crypto/strict-base64.js";
import { DbcryptError } from "../../src/errors.js";
import { keyIdOf } from "../support/coder-crypto.js";
import { exitCodeForError } from "../../src/cli/exit-codes.js";

const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const isStrict = (text: string) => STRICT.test(text.replace(/[\r\n]/g, ""));

const KEY_A_BASE64 = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=";

/** A random 32-byte key whose standard base64 contains both '+' and '/'. */
function keyWithPlusAndSlash(): string {
  for (;;) {
    const text = randomBytes(32).toString("base64");
    if (text.includes("+") && text.includes("/")) return text;
  }
}

function parseError(text: string, label = "--new-key"): DbcryptError {
  try {
    EncryptionKey.parse(text, label);
  } catch (error) {
    expect(error).toBeInstanceOf(DbcryptError);
    return error as DbcryptError;
  }
  throw new Error("expected EncryptionKey.parse to throw");
}

describe("findBase64Problem / decodeStrictBase64", () => {
  it.each([
    ["YWFh", "616161"],
    ["YWE=", "6161"],
    ["YQ==", "61"],
    ["+/+/", "fbffbf"],
    ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "00".repeat(32)],
  ])("accepts %j", (text, hex) => {
    expect(findBase64Problem(text)).toBeUndefined();
    expect(decodeStrictBase64(text)?.toString("hex")).toBe(hex);
  });

  it.each<[string, string, Base64Problem]>([
    ["empty", "", "empty"],
    ["only CR/LF", "\r\n\n", "empty"],
    ["URL-safe -", "ab-d", "url_safe_alphabet"],
    ["URL-safe _", "ab_d", "url_safe_alphabet"],
    ["URL-safe with padding", "a-_=", "url_safe_alphabet"],
    ["URL-safe without padding", "YWF-YQ", "url_safe_alphabet"],
    ["missing padding (2 left)", "YQ", "missing_padding"],
    ["missing padding (3 left)", "YWE", "missing_padding"],
    ["a single character", "Y", "missing_padding"],
    ["space inside", "YW Fh", "invalid_character"],
    ["leading space", " YWFh", "invalid_character"],
    ["trailing space", "YWFh ", "invalid_character"],
    ["tab", "YWFh\t", "invalid_character"],
    ["non-breaking space", "YWFh\u00a0", "invalid_character"],
    ["vertical tab", "YW\vFh", "invalid_character"],
    ["form feed", "YW\fFh", "invalid_character"],
    ["stray punctuation", "YWFh!", "invalid_character"],
    ["full-width letter", "\uff39WFh", "invalid_character"],
    ["accented letter", "YWFé", "invalid_character"],
    ["NUL byte", "YWFh\u0000", "invalid_character"],
    ["padding in the middle", "YQ==YQ==", "invalid_character"],
    ["too much padding", "YQ===", "invalid_character"],
    ["short padding", "YQ=", "invalid_character"],
    ["only padding", "====", "invalid_character"],
    ["a lone =", "=", "invalid_character"],
    ["mixed alphabets", "a+-b", "invalid_character"],
    ["quotes around it", '"YWFh"', "invalid_character"],
  ])("rejects %s", (_name, text, problem) => {
    expect(findBase64Problem(text)).toBe(problem);
    expect(decodeStrictBase64(text)).toBeUndefined();
  });

  it("skips CR and LF anywhere, as Go does", () => {
    for (const text of ["YWFh\n", "YWFh\r\n", "\nYWFh", "YW\r\nFh", "Y\nW\nF\nh", "YQ=\n="]) {
      expect(findBase64Problem(text)).toBeUndefined();
      expect(decodeStrictBase64(text)?.toString()).toBe(text.includes("=") ? "a" : "aaa");
    }
  });

  it("accepts non-zero trailing bits, as Go's StdEncoding does", () => {
    expect(decodeStrictBase64("YR==")).toEqual(Buffer.from("a"));
    expect(decodeStrictBase64("YWG=")).toEqual(Buffer.from("aa"));
  });

  it("round-trips any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const text = Buffer.from(bytes).toString("base64");
        if (bytes.length === 0) {
          expect(findBase64Problem(text)).toBe("empty");
        } else {
          expect(findBase64Problem(text)).toBeUndefined();
          expect(decodeStrictBase64(text)).toEqual(Buffer.from(bytes));
        }
      }),
    );
  });

  it("rejects every string that is not standard padded base64 (the property, not examples)", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: fc.constantFrom(..."AZaz09+/=-_ \t\r\n.!") })),
        (text) => {
          const problem = findBase64Problem(text);
          if (isStrict(text)) {
            expect(problem === undefined || problem === "empty").toBe(true);
          } else {
            expect(problem).toBeDefined();
            expect(decodeStrictBase64(text)).toBeUndefined();
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("describes each problem in words that carry no input", () => {
    const problems: Base64Problem[] = ["empty", "url_safe_alphabet", "missing_padding", "invalid_character"];
    const texts = problems.map(describeBase64Problem);
    expect(new Set(texts).size).toBe(problems.length);
    expect(describeBase64Problem("url_safe_alphabet")).toMatch(/URL-safe/);
    expect(describeBase64Problem("missing_padding")).toMatch(/padding/);
  });
});

describe("EncryptionKey.parse", () => {
  it("parses a standard padded 32-byte key and keeps its spelling on export", () => {
    const key = EncryptionKey.parse(KEY_A_BASE64, "--new-key");
    expect(key.id).toBe("864f702");
    expect(key.exportBase64()).toBe(KEY_A_BASE64);
  });

  it("accepts a key wrapped with CR/LF (pasted from a file), like Go", () => {
    expect(EncryptionKey.parse(`${KEY_A_BASE64.slice(0, 20)}\r\n${KEY_A_BASE64.slice(20)}\n`, "x").id).toBe("864f702");
  });

  it("any 32 random bytes round-trip through base64 with the same key id", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const text = Buffer.from(bytes).toString("base64");
        const key = EncryptionKey.parse(text, "--keys key 1");
        expect(key.id).toBe(aes256gcmKeyId(bytes));
        expect(key.id).toBe(keyIdOf(Buffer.from(bytes)));
        expect(key.exportBase64()).toBe(text);
      }),
    );
  });

  it("any string that is not strict padded base64 is rejected with bad_key", () => {
    const nearMisses = fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(43), fc.constantFrom(" ", "\t", "-", "_", "!", ".", "\u00a0", "é", "=", "\"")).map(
      ([bytes, index, junk]) => {
        const text = Buffer.from(bytes).toString("base64");
        return text.slice(0, index) + junk + text.slice(index);
      },
    );
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: fc.constantFrom(..."AZaz09+/=-_ \r\n!") }), nearMisses), (text) => {
        fc.pre(!isStrict(text) || text.replace(/[\r\n]/g, "") === "");
        const error = parseError(text, "--old-keys key 3");
        expect(error.code).toBe("bad_key");
        expect(exitCodeForError(error)).toBe(2);
        expect(error.message.startsWith("--old-keys key 3 ")).toBe(true);
        const problem = findBase64Problem(text) as Base64Problem;
        expect(error.message).toBe(`--old-keys key 3 ${describeBase64Problem(problem)}`);
      }),
      { numRuns: 500 },
    );
  });

  it("strict base64 of the wrong length is rejected with the byte count, never the key", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 80 }).filter((bytes) => bytes.length !== 32), (bytes) => {
        const error = parseError(Buffer.from(bytes).toString("base64"));
        expect(error.code).toBe("bad_key");
        expect(error.message).toBe(`--new-key decodes to ${bytes.length} bytes; a key must be exactly 32 bytes`);
      }),
    );
  });

  it.each([
    ["31 bytes", randomBytes(31).toString("base64"), /decodes to 31 bytes/],
    ["33 bytes", randomBytes(33).toString("base64"), /decodes to 33 bytes/],
    ["empty", "", /is empty/],
    ["URL-safe", keyWithPlusAndSlash().replace(/\+/g, "-").replace(/\//g, "_"), /URL-safe/],
    ["unpadded", keyWithPlusAndSlash().replace(/=+$/, ""), /padding/],
    ["trailing space", `${keyWithPlusAndSlash()} `, /not standard base64/],
    ["leading space", ` ${keyWithPlusAndSlash()}`, /not standard base64/],
    ["quoted", `"${keyWithPlusAndSlash()}"`, /not standard base64/],
    ["hex instead of base64", randomBytes(32).toString("hex"), /decodes to 48 bytes/],
  ])("%s: bad_key naming the label, without the input", (_name, text, pattern) => {
    const error = parseError(text, "--new-key");
    expect(error.code).toBe("bad_key");
    expect(error.message).toMatch(/^--new-key /);
    expect(error.message).toMatch(pattern);
    expect(error.hint).toMatch(/keys generate/);
    const visible = [error.message, error.hint ?? "", ...error.details, String(error.stack)].join("\n");
    const core = text.replace(/^[\s"]+|[\s"=]+$/g, "");
    if (core.length >= 8) {
      // Neither the whole text nor any 8-character piece of it appears anywhere in the error.
      for (let index = 0; index + 8 <= core.length; index += 4) expect(visible).not.toContain(core.slice(index, index + 8));
    }
  });
});
