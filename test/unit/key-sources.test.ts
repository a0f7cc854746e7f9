/**
 * The key sources (src/key-sources) and how a key flag's values become keys: lists and repeats,
 * file permissions, JSON key files, environment variables, commands and age backups. Every error
 * is checked for the key's absence as well as for its words.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Encrypter } from "age-encryption";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { fromFlagOrEnv, keySourceContext, parseKeyList, parseSingleKey } from "../../src/cli/key-input.js";
import { aes256gcmKeyId } from "../../src/crypto/key-id.js";
import { DbcryptError } from "../../src/errors.js";
import { splitCommandLine } from "../../src/key-sources/command-line.js";
import { describeKeyList, splitKeyList } from "../../src/key-sources/registry.js";

const directory = mkdtempSync(join(tmpdir(), "dbcrypt-unit-sources-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

function newKey(): { text: string; id: string } {
  const bytes = randomBytes(32);
  return { text: bytes.toString("base64"), id: aes256gcmKeyId(bytes) };
}
const [k1, k2, k3] = [newKey(), newKey(), newKey()] as const;

let counter = 0;
function file(contents: string | Uint8Array, mode = 0o600): string {
  const path = join(directory, `f-${++counter}`);
  writeFileSync(path, contents, { mode });
  chmodSync(path, mode);
  return path;
}

async function thrown(body: () => Promise<unknown>): Promise<DbcryptError> {
  try {
    await body();
  } catch (error) {
    expect(error).toBeInstanceOf(DbcryptError);
    const visible = [(error as DbcryptError).message, (error as DbcryptError).hint ?? ""].join("\n");
    for (const key of [k1, k2, k3]) expect(visible).not.toContain(key.text.slice(0, 16));
    return error as DbcryptError;
  }
  throw new Error("expected a DbcryptError");
}

const ids = (keys: { id: string }[]) => keys.map((key) => key.id);
const context = (flags: Parameters<typeof keySourceContext>[0] = {}) => keySourceContext(flags);

describe("lists of key sources", () => {
  it("splits a comma list of sources into sources, and repeated flags add up", async () => {
    const a = file(`${k1.text}\n`);
    const b = file(`${k2.text}\n`);
    expect(ids(await parseKeyList({ values: [`@${a},@${b}`] }, "--keys"))).toEqual([k1.id, k2.id]);
    expect(ids(await parseKeyList({ values: [`@${a}`, `@${b}`, k3.text] }, "--keys"))).toEqual([k1.id, k2.id, k3.id]);
  });

  it("lets spaces surround a source in a list, as people write them", async () => {
    const a = file(k1.text);
    expect(ids(await parseKeyList({ values: [`${k2.text}, @${a}`] }, "--keys"))).toEqual([k2.id, k1.id]);
  });

  it("mixes literal keys, files, variables and commands in one value", async () => {
    vi.stubEnv("DBCRYPT_UNIT_K3", k3.text);
    const keys = await parseKeyList({ values: [`${k1.text},file://${file(k2.text)},env://DBCRYPT_UNIT_K3`] }, "--old-keys");
    expect(ids(keys)).toEqual([k1.id, k2.id, k3.id]);
    expect(keys.map((key) => key.source)).toEqual(["--old-keys (literal)", expect.stringMatching(/^file:\/\//), "env://DBCRYPT_UNIT_K3"]);
  });

  it("gives an exec: entry the rest of its line, commas and all", () => {
    expect(splitKeyList(`${k1.text},exec:printf %s a,b`, "--keys")).toEqual([k1.text, "exec:printf %s a,b"]);
    expect(splitKeyList(`exec:printf %s a,b\n${k1.text}`, "--keys")).toEqual(["exec:printf %s a,b", k1.text]);
  });

  it("refuses a key or a source after an exec: command on its line, without showing it", async () => {
    for (const tail of [k1.text, "@b.key", "env://X"]) {
      const error = await thrown(() => parseKeyList({ values: [`exec:cat a.key,${tail}`] }, "--keys"));
      expect(error.code).toBe("usage");
      expect(error.message).toBe("--keys entry 1 is an exec: command followed by more keys or sources; a command takes the rest of its line, so it must come last");
    }
  });

  it("does not show a key with a stray '.', only its position and length", async () => {
    const error = await thrown(() => parseKeyList({ values: [`@b.key,${k1.text}.`] }, "--keys"));
    expect(error.message).toBe("--keys entry 2 (45 characters, with a '.') is neither a key nor a key source");
  });

  it("refuses an entry that is neither a key nor a source, by position, with exit 2", async () => {
    const error = await thrown(() => parseKeyList({ values: [`${k1.text},b.key`] }, "--old-keys"));
    expect(error.code).toBe("usage");
    expect(error.message).toBe("--old-keys entry 2 (5 characters, with a '.') is neither a key nor a key source");
    expect(error.hint).toMatch(/@PATH or file:\/\/PATH/);
  });

  it("refuses an unknown URL scheme and points to exec:", async () => {
    const error = await thrown(() => parseKeyList({ values: ["vault://secret/dbcrypt"] }, "--keys"));
    expect(error.message).toBe("--keys entry 1: dbcrypt has no vault:// key source");
    expect(error.hint).toMatch(/exec:/);
  });

  it("reads an entry with no source syntax as a key, whose error shows no part of it", async () => {
    const mangled = `${k1.text.slice(0, 10)}!${k1.text.slice(10)}`;
    const error = await thrown(() => parseKeyList({ values: [mangled] }, "--keys"));
    expect(error.message).toBe("--keys key 1 contains characters that are not standard base64");
  });

  it("shows sources in continue commands, and literal keys as <key>", () => {
    expect(describeKeyList(`@a.key,${k1.text},env://X,exec:vault kv get -field=key secret/x`)).toBe("@a.key,<key>,env://X,exec:vault kv get -field=key secret/x");
  });

  it("names the environment variable as a literal key's source", async () => {
    vi.stubEnv("DBCRYPT_UNIT_LIST", `${k1.text},${k2.text}`);
    const keys = await parseKeyList(fromFlagOrEnv(undefined, "DBCRYPT_UNIT_LIST"), "--keys");
    expect(keys.map((key) => key.source)).toEqual(["env://DBCRYPT_UNIT_LIST", "env://DBCRYPT_UNIT_LIST"]);
  });

  it("numbers several keys of one file in their source", async () => {
    const path = file(`${k1.text}\n${k2.text}\n`);
    expect((await parseKeyList(`@${path}`, "--keys")).map((key) => key.source)).toEqual([`@${path}#1`, `@${path}#2`]);
  });

  it("refuses two keys for --new-key even from two sources", async () => {
    const error = await thrown(() => parseSingleKey({ values: [k1.text, k2.text] }, "--new-key"));
    expect(error.message).toBe("--new-key takes exactly one key");
  });
});

describe("key files", () => {
  it("refuses a file group or others can read, naming the mode and the fix", async () => {
    for (const [mode, words] of [[0o644, "group and others (mode 0644)"], [0o640, "group (mode 0640)"], [0o604, "others (mode 0604)"]] as const) {
      const path = file(k1.text, mode);
      const error = await thrown(() => parseKeyList(`file://${path}`, "--keys"));
      expect(error.code).toBe("bad_key");
      expect(error.message).toBe(`--keys: key file ${path} is readable by ${words}`);
      expect(error.hint).toBe(`chmod 600 ${path}, or pass --allow-insecure-key-file`);
    }
  });

  it("reads such a file when allowed, and an owner-only file always", async () => {
    expect(ids(await parseKeyList(`@${file(k1.text, 0o644)}`, "--keys", context({ allowInsecureKeyFile: true })))).toEqual([k1.id]);
    expect(ids(await parseKeyList(`@${file(k1.text, 0o400)}`, "--keys"))).toEqual([k1.id]);
  });

  it("reads file:///absolute and file://relative paths", async () => {
    const path = file(k1.text);
    expect(ids(await parseKeyList(`file://${path}`, "--keys"))).toEqual([k1.id]);
    const cwd = process.cwd();
    process.chdir(directory);
    try {
      expect(ids(await parseKeyList(`file://${path.slice(directory.length + 1)}`, "--keys"))).toEqual([k1.id]);
    } finally {
      process.chdir(cwd);
    }
  });

  it("reads a JSON key file by its key field (Authsome's master.key)", async () => {
    const path = file(JSON.stringify({ version: 1, key: k1.text, algorithm: "AES-256-GCM", note: "created by authsome" }));
    expect(ids(await parseKeyList(`@${path}`, "--keys"))).toEqual([k1.id]);
  });

  it("refuses JSON key files it cannot read, without echoing them", async () => {
    expect((await thrown(() => parseKeyList(`@${file(JSON.stringify({ version: 2, key: k1.text }))}`, "--keys"))).message).toMatch(/JSON key file of version 2; dbcrypt reads version 1$/);
    expect((await thrown(() => parseKeyList(`@${file(JSON.stringify({ version: 1 }))}`, "--keys"))).message).toMatch(/JSON key file without a "key" string$/);
    expect((await thrown(() => parseKeyList(`@${file(`{"version":1,"key":"${k1.text}"`)}`, "--keys"))).message).toMatch(/starts with \{ but is not valid JSON$/);
  });
});

describe("env://", () => {
  it("reads the variable, and says when it is unset or empty", async () => {
    vi.stubEnv("DBCRYPT_UNIT_ENV", `${k1.text}\n`);
    expect(ids(await parseKeyList("env://DBCRYPT_UNIT_ENV", "--keys"))).toEqual([k1.id]);
    delete process.env.DBCRYPT_UNIT_UNSET;
    expect((await thrown(() => parseKeyList("env://DBCRYPT_UNIT_UNSET", "--keys"))).message).toBe("env://DBCRYPT_UNIT_UNSET: DBCRYPT_UNIT_UNSET is not set");
    vi.stubEnv("DBCRYPT_UNIT_EMPTY", " ");
    expect((await thrown(() => parseKeyList("env://DBCRYPT_UNIT_EMPTY", "--keys"))).message).toBe("env://DBCRYPT_UNIT_EMPTY: DBCRYPT_UNIT_EMPTY is empty");
    expect((await thrown(() => parseKeyList("env://1BAD", "--keys"))).message).toBe("env://1BAD does not name an environment variable");
  });
});

describe("exec:", () => {
  it("reads the key from the command's standard output, trailing newline or not", async () => {
    const path = file(k1.text);
    expect(ids(await parseKeyList(`exec:cat ${path}`, "--keys"))).toEqual([k1.id]);
    expect(ids(await parseKeyList(`exec:printf '%s\\n' ${k2.text}`, "--keys"))).toEqual([k2.id]);
  });

  it("runs no shell: metacharacters are arguments", async () => {
    // Under a shell, `;` would run a second command and print k2.
    const keys = await parseKeyList(`exec:printf %s ${k1.text} ; echo ${k2.text}`, "--keys").catch((error: unknown) => error);
    expect(keys).toBeInstanceOf(DbcryptError);
  });

  it("runs a shell when the command is one", async () => {
    expect(ids(await parseKeyList(`exec:sh -c 'printf %s ${k1.text} | cat'`, "--keys"))).toEqual([k1.id]);
  });

  it("reports a failing command by its exit status, never its output", async () => {
    const path = file(k1.text);
    const error = await thrown(() => parseKeyList(`exec:sh -c 'cat ${path}; exit 7'`, "--keys"));
    expect(error.code).toBe("key_source_failed");
    expect(error.message).toBe(`exec:sh -c 'cat ${path}; exit 7': exited with status 7`);
  });

  it("stops a command that runs past the timeout", async () => {
    const started = Date.now();
    const error = await thrown(() => parseKeyList("exec:sleep 30", "--keys", context({ keyCommandTimeout: 300 })));
    expect(error.code).toBe("key_source_failed");
    expect(error.message).toBe("exec:sleep 30: did not finish within 300ms");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("reports a command that does not exist, one that prints nothing and a bad quote", async () => {
    expect((await thrown(() => parseKeyList("exec:dbcrypt-no-such-tool --x", "--keys"))).message).toBe("exec:dbcrypt-no-such-tool --x: command not found: dbcrypt-no-such-tool");
    const silent = await thrown(() => parseKeyList("exec:true", "--keys"));
    expect([silent.code, silent.message]).toEqual(["bad_key", "exec:true printed nothing on standard output"]);
    expect((await thrown(() => parseKeyList("exec:printf 'x", "--keys"))).message).toBe("exec:printf 'x: unclosed quote or trailing backslash");
  });

  it("stops a command that prints far more than a key", async () => {
    const error = await thrown(() => parseKeyList("exec:cat /dev/zero", "--keys"));
    expect(error.message).toMatch(/^exec:cat \/dev\/zero: printed more than 1048576 bytes/);
  });
});

describe("splitCommandLine", () => {
  it("splits words as a POSIX shell does, without expanding anything", () => {
    expect(splitCommandLine(`vault kv get -field=key secret/dbcrypt`)).toEqual(["vault", "kv", "get", "-field=key", "secret/dbcrypt"]);
    expect(splitCommandLine(`a 'b c' "d \\"e\\" $HOME" f\\ g ''`)).toEqual(["a", "b c", 'd "e" $HOME', "f g", ""]);
    expect(splitCommandLine(`"a\\b"`)).toEqual(["a\\b"]);
    expect(splitCommandLine(`a "b`)).toBeUndefined();
    expect(splitCommandLine(`a \\`)).toBeUndefined();
  });
});

describe("age:", () => {
  async function ageFile(text: string, passphrase: string): Promise<string> {
    const encrypter = new Encrypter();
    encrypter.setPassphrase(passphrase);
    encrypter.setScryptWorkFactor(10);
    return file(await encrypter.encrypt(text), 0o644);
  }

  it("opens a passphrase backup with the passphrase from a file or a variable", async () => {
    const backup = await ageFile(`${k1.text}\n`, "correct horse");
    expect(ids(await parseKeyList(`age:${backup}`, "--keys", context({ passphraseFile: file("correct horse\n") })))).toEqual([k1.id]);
    vi.stubEnv("DBCRYPT_UNIT_PASS", "correct horse");
    expect(ids(await parseKeyList(`age:${backup}`, "--keys", context({ passphraseEnv: "DBCRYPT_UNIT_PASS" })))).toEqual([k1.id]);
  });

  it("refuses a wrong passphrase, and a passphrase file others can read", async () => {
    const backup = await ageFile(k1.text, "correct horse");
    const wrong = await thrown(() => parseKeyList(`age:${backup}`, "--keys", context({ passphraseFile: file("battery staple") })));
    expect(wrong.code).toBe("bad_key");
    expect(wrong.message).toBe(`age:${backup}: the passphrase does not open it, or it was encrypted to a recipient key rather than a passphrase`);
    const open = file("correct horse", 0o644);
    expect((await thrown(() => parseKeyList(`age:${backup}`, "--keys", context({ passphraseFile: open })))).message).toBe(`--passphrase-file: passphrase file ${open} is readable by group and others (mode 0644)`);
  });

  it("asks for a passphrase only where someone can answer", async () => {
    const backup = await ageFile(k1.text, "pw");
    const error = await thrown(() => parseKeyList(`age:${backup}`, "--keys"));
    expect(error.code).toBe("usage");
    expect(error.message).toBe(`age:${backup} needs a passphrase and there is no terminal to ask on`);
  });

  it("says when a file is not an age file", async () => {
    expect((await thrown(() => parseKeyList(`age:${file(k1.text)}`, "--keys", context({ passphraseEnv: "PATH" })))).message).toMatch(/is not an age file$/);
  });
});

describe("exec: environment", () => {
  it("does not hand the run's env:// variables or the passphrase variable to the command", async () => {
    vi.stubEnv("DBCRYPT_UNIT_SECRET", k2.text);
    vi.stubEnv("DBCRYPT_UNIT_PASS", k3.text);
    vi.stubEnv("DBCRYPT_UNIT_VISIBLE", k1.text);
    const command = `exec:sh -c 'printf %s "$DBCRYPT_UNIT_SECRET$DBCRYPT_UNIT_PASS$DBCRYPT_UNIT_VISIBLE"'`;
    const sources = keySourceContext({ passphraseEnv: "DBCRYPT_UNIT_PASS" }, [[command, "env://DBCRYPT_UNIT_SECRET"]]);
    expect(ids(await parseKeyList({ values: [command] }, "--keys", sources))).toEqual([k1.id]);
  });

  it("does not hand the key variables to the command", async () => {
    vi.stubEnv("DBCRYPT_OLD_KEYS", k2.text);
    vi.stubEnv("DBCRYPT_UNIT_VISIBLE", k1.text);
    // The command prints every variable it got; only the unrelated one may be a key.
    const keys = await parseKeyList(`exec:sh -c 'printf %s "$DBCRYPT_OLD_KEYS$DBCRYPT_UNIT_VISIBLE"'`, "--keys");
    expect(ids(keys)).toEqual([k1.id]);
  });
});
