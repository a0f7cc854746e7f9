/**
 * How keys arrive from flags, environment variables and @FILE, and how errors name the flag and
 * the key's position without printing the key.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { fromFlagOrEnv, keySourceContext, parseKeyList, parseSingleKey } from "../../src/cli/key-input.js";
import { resolveKeyReference } from "../../src/key-sources/registry.js";
import { aes256gcmKeyId } from "../../src/crypto/key-id.js";
import { DbcryptError } from "../../src/errors.js";

const directory = mkdtempSync(join(tmpdir(), "dbcrypt-unit-keys-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

let fileCounter = 0;
function keyFile(contents: string): string {
  const path = join(directory, `keys-${++fileCounter}.txt`);
  writeFileSync(path, contents, { mode: 0o600 });
  return path;
}

function newKey(): { text: string; id: string } {
  const bytes = randomBytes(32);
  return { text: bytes.toString("base64"), id: aes256gcmKeyId(bytes) };
}

const k1 = newKey();
const k2 = newKey();
const k3 = newKey();

async function thrownAsync(body: () => Promise<unknown>): Promise<DbcryptError> {
  try {
    await body();
  } catch (error) {
    expect(error).toBeInstanceOf(DbcryptError);
    return error as DbcryptError;
  }
  throw new Error("expected a DbcryptError");
}

function expectNoKeyMaterial(error: DbcryptError, ...keys: string[]): void {
  const visible = [error.message, error.hint ?? "", ...error.details].join("\n");
  for (const key of keys) {
    expect(visible).not.toContain(key);
    expect(visible).not.toContain(key.slice(0, 12));
    expect(visible).not.toContain(key.slice(-16, -1));
  }
}

describe("parseKeyList", () => {
  it("returns no keys for a missing or empty value", async () => {
    expect(await parseKeyList(undefined, "--old-keys")).toEqual([]);
    expect(await parseKeyList("", "--old-keys")).toEqual([]);
  });

  it("parses one key", async () => {
    expect((await parseKeyList(k1.text, "--keys")).map((key) => key.id)).toEqual([k1.id]);
  });

  it("parses a comma-separated list in order", async () => {
    expect((await parseKeyList(`${k1.text},${k2.text},${k3.text}`, "--keys")).map((key) => key.id)).toEqual([k1.id, k2.id, k3.id]);
  });

  it("ignores one trailing separator", async () => {
    expect((await parseKeyList(`${k1.text},${k2.text},`, "--keys")).map((key) => key.id)).toEqual([k1.id, k2.id]);
  });

  it("accepts newline-separated keys (an env var or file with one key per line)", async () => {
    expect((await parseKeyList(`${k1.text}\n${k2.text}`, "--keys")).map((key) => key.id)).toEqual([k1.id, k2.id]);
  });

  it("refuses a repeated key, naming both positions and the key id only", async () => {
    const error = await thrownAsync(() => parseKeyList(`${k1.text},${k2.text},${k1.text}`, "--keys"));
    expect(error.code).toBe("bad_key");
    expect(error.message).toBe(`--keys key 3 has the same key id (${k1.id}) as key 1`);
    expectNoKeyMaterial(error, k1.text, k2.text);
  });

  it("refuses two spellings of one key (the spare trailing bits differ)", async () => {
    const other = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWG=";
    const error = await thrownAsync(() => parseKeyList(`YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=,${other}`, "--old-keys"));
    expect(error.message).toBe("--old-keys key 2 has the same key id (864f702) as key 1");
  });

  it("names the flag and the 1-based position of a bad key", async () => {
    const error = await thrownAsync(() => parseKeyList(`${k1.text},${k2.text.slice(0, -1)}`, "--old-keys"));
    expect(error.code).toBe("bad_key");
    expect(error.message).toMatch(/^--old-keys key 2 /);
    expectNoKeyMaterial(error, k1.text, k2.text);
  });

  it("treats a space after a comma as an error (values are not trimmed, as in Coder)", async () => {
    const error = await thrownAsync(() => parseKeyList(`${k1.text}, ${k2.text}`, "--old-keys"));
    expect(error.message).toBe("--old-keys key 2 contains characters that are not standard base64");
    expectNoKeyMaterial(error, k1.text, k2.text);
  });

  it("rejects an empty entry in the middle of the list", async () => {
    const error = await thrownAsync(() => parseKeyList(`${k1.text},,${k2.text}`, "--keys"));
    expect(error.message).toBe("--keys key 2 is empty");
  });

  it("rejects a lone comma", async () => {
    expect((await thrownAsync(() => parseKeyList(",", "--keys"))).message).toBe("--keys key 1 is empty");
  });

  it("reports the wrong length with the position, not the key", async () => {
    const short = randomBytes(31).toString("base64");
    const error = await thrownAsync(() => parseKeyList(`${k1.text},${k2.text},${short}`, "--old-keys"));
    expect(error.message).toBe("--old-keys key 3 decodes to 31 bytes; a key must be exactly 32 bytes");
    expectNoKeyMaterial(error, short);
  });

  describe("@FILE", () => {
    it("reads a comma-separated list from a file", async () => {
      const path = keyFile(`${k1.text},${k2.text}\n`);
      expect((await parseKeyList(`@${path}`, "--keys")).map((key) => key.id)).toEqual([k1.id, k2.id]);
    });

    it("reads one key per line, with LF or CRLF and a trailing newline", async () => {
      expect((await parseKeyList(`@${keyFile(`${k1.text}\n${k2.text}\n${k3.text}\n`)}`, "--keys")).map((key) => key.id)).toEqual([k1.id, k2.id, k3.id]);
      expect((await parseKeyList(`@${keyFile(`${k1.text}\r\n${k2.text}\r\n`)}`, "--keys")).map((key) => key.id)).toEqual([k1.id, k2.id]);
    });

    it("trims surrounding whitespace of the file", async () => {
      expect((await parseKeyList(`@${keyFile(`\n  ${k1.text}  \n\n`)}`, "--keys")).map((key) => key.id)).toEqual([k1.id]);
    });

    it("names the flag and the path when the file is missing", async () => {
      const path = join(directory, "does-not-exist.txt");
      const error = await thrownAsync(() => parseKeyList(`@${path}`, "--old-keys"));
      expect(error.code).toBe("bad_key");
      expect(error.message).toBe(`--old-keys: cannot read key file ${path}: ENOENT`);
      expect(error.hint).toMatch(/@/);
    });

    it("reports a directory instead of a file", async () => {
      const error = await thrownAsync(() => parseKeyList(`@${directory}`, "--keys"));
      expect(error.message).toBe(`--keys: cannot read key file ${directory}: EISDIR`);
    });

    it("reports an empty file as an empty key", async () => {
      const path = keyFile("\n");
      expect((await thrownAsync(() => parseKeyList(`@${path}`, "--keys"))).message).toBe(`--keys key 1 (from @${path}) is empty`);
    });

    it("does not echo a bad key read from a file", async () => {
      const bad = `${k1.text.slice(0, 20)}!${k1.text.slice(20)}`;
      const path = keyFile(`${k2.text}\n${bad}\n`);
      const error = await thrownAsync(() => parseKeyList(`@${path}`, "--keys"));
      expect(error.message).toBe(`--keys key 2 (from @${path}) contains characters that are not standard base64`);
      expectNoKeyMaterial(error, bad, k2.text);
    });
  });

  it("a reference not starting with @ is the key text itself", async () => {
    expect(await resolveKeyReference(k1.text, "--keys", keySourceContext({}))).toBe(k1.text);
    expect(await resolveKeyReference(` ${k1.text}`, "--keys", keySourceContext({}))).toBe(` ${k1.text}`);
  });
});

describe("parseSingleKey", () => {
  it("returns undefined for a missing or empty value", async () => {
    expect(await parseSingleKey(undefined, "--new-key")).toBeUndefined();
    expect(await parseSingleKey("", "--new-key")).toBeUndefined();
  });

  it("parses one key", async () => {
    expect((await parseSingleKey(k1.text, "--new-key"))?.id).toBe(k1.id);
  });

  it("refuses a list, without echoing it", async () => {
    const error = await thrownAsync(() => parseSingleKey(`${k1.text},${k2.text}`, "--new-key"));
    expect(error.code).toBe("bad_key");
    expect(error.message).toBe("--new-key takes exactly one key");
    expect(error.hint).toMatch(/--old-keys/);
    expectNoKeyMaterial(error, k1.text, k2.text);
  });

  it("labels errors with the flag alone", async () => {
    const error = await thrownAsync(() => parseSingleKey(k1.text.replace(/=$/, ""), "--new-key"));
    expect(error.message).toBe("--new-key is missing its = padding; use standard padded base64");
    expectNoKeyMaterial(error, k1.text);
  });

  it("reads @FILE with a trailing newline", async () => {
    expect((await parseSingleKey(`@${keyFile(`${k2.text}\n`)}`, "--new-key"))?.id).toBe(k2.id);
    expect((await parseSingleKey(`@${keyFile(`${k2.text}\r\n`)}`, "--new-key"))?.id).toBe(k2.id);
  });

  it("refuses a file holding two keys on two lines", async () => {
    const error = await thrownAsync(() => parseSingleKey(`@${keyFile(`${k1.text}\n${k2.text}\n`)}`, "--new-key"));
    expect(error.code).toBe("bad_key");
    expect(error.message).toMatch(/^--new-key /);
    expectNoKeyMaterial(error, k1.text, k2.text);
  });

  it("reports a missing file with the flag", async () => {
    const path = join(directory, "nope.key");
    expect((await thrownAsync(() => parseSingleKey(`@${path}`, "--new-key"))).message).toBe(`--new-key: cannot read key file ${path}: ENOENT`);
  });
});

describe("fromFlagOrEnv", () => {
  const ENV = "DBCRYPT_UNIT_TEST_KEYS";
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("prefers the flag over the environment variable", () => {
    vi.stubEnv(ENV, "from-env");
    expect(fromFlagOrEnv(["from-flag"], ENV)).toEqual({ values: ["from-flag"] });
  });

  it("falls back to the environment variable", () => {
    vi.stubEnv(ENV, "from-env");
    expect(fromFlagOrEnv(undefined, ENV)).toEqual({ values: ["from-env"], envName: ENV });
  });

  it("treats an empty environment variable as unset", () => {
    vi.stubEnv(ENV, "");
    expect(fromFlagOrEnv(undefined, ENV)).toBeUndefined();
  });

  it("returns undefined when neither is set", () => {
    delete process.env[ENV];
    expect(fromFlagOrEnv(undefined, ENV)).toBeUndefined();
  });

  it("lets an explicitly empty flag win over the environment", () => {
    vi.stubEnv(ENV, "from-env");
    expect(fromFlagOrEnv([""], ENV)).toEqual({ values: [""] });
  });

  it("reads only the variable it is told to read", () => {
    vi.stubEnv(ENV, "from-env");
    vi.stubEnv(`${ENV}_OTHER`, "other");
    expect(fromFlagOrEnv(undefined, `${ENV}_OTHER`)).toEqual({ values: ["other"], envName: `${ENV}_OTHER` });
    expect(fromFlagOrEnv(undefined, `${ENV}_MISSING`)).toBeUndefined();
  });
});
