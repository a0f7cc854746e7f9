/**
 * Property-based tests (fast-check) over the CLI's input surface, through the built binary on both
 * engines. Each generated input gets the exit code docs/exit-codes.md documents for it, a first
 * error line that is the whole error on one line, no secret in any output (runCli's leak scan),
 * and — where nothing may change — the same database checksum before and after.
 *
 *  - key lists: malformed, repeated, URL-safe, unpadded, wrong length, CR/LF-wrapped, given as a
 *    flag, an environment variable, @FILE or @-;
 *  - config files: one fault injected into a valid config (unknown keys with control characters,
 *    wrong types, missing tables and columns, broken JSON, NULL for a NOT NULL column);
 *  - hostile identifiers: tables, columns and the keys table named with quotes, semicolons,
 *    spaces, unicode, upper case, SQL placeholder syntax, and prefixes SQLite treats specially;
 *  - values: unicode and multi-megabyte plaintexts, NULLs and empty strings in every position
 *    (value, key id, primary key);
 *  - corrupt ciphertexts at random rows: reported by primary key, left untouched, key kept.
 *
 * Runs per property: DBCRYPT_CHAOS_RUNS; the seed: DBCRYPT_CHAOS_SEED (see support/settings.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyIdOf, openValue, sealValue, type TestKey } from "../support/coder-crypto.js";
import { dbArg, registerSecret, runCli, type CliRun } from "../support/cli.js";
import { CODER_TABLES, createCoderSchema } from "../support/coder-schema.js";
import { freshKey } from "../support/fixtures.js";
import { seedCoderData } from "../support/seed.js";
import { checksumDatabase, createTestDatabase, ENGINE_KINDS, openTestDb, quoteIdent, type CreatedTestDatabase, type EngineKind, type TestDb } from "../support/test-db.js";
import { recordFigures } from "./support/report.js";
import { chaos, timeoutFor } from "./support/settings.js";

const RUNS = chaos.propertyRuns;
const PROPERTY_OPTIONS = { numRuns: RUNS, seed: chaos.seed, endOnFailure: true } as const;
/** Runs that spawn several CLI processes each get fewer runs. */
const HEAVY_RUNS = Math.max(2, Math.ceil(RUNS / 2));

interface Database {
  created: CreatedTestDatabase;
  db: TestDb;
  url: string;
}

async function openDatabase(kind: EngineKind, label: string): Promise<Database> {
  const created = await createTestDatabase(kind, label);
  return { created, db: await openTestDb(created.target), url: dbArg(created.target) };
}

async function closeDatabase(database: Database | undefined): Promise<void> {
  await database?.db.close();
  await database?.created.cleanup();
}

/** Every table of the database, so "nothing changed" also catches a table that appeared. */
async function snapshot(db: TestDb): Promise<string> {
  const tables = db.kind === "postgres"
    ? (await db.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'")).map((row) => row.name)
    : (await db.query<{ name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table'")).map((row) => row.name);
  tables.sort();
  return `${tables.join(",")}:${await checksumDatabase(db, tables)}`;
}

const CONTROL = /[\u0000-\u001f\u007f\u2028\u2029]/;

/** An error exit: the first stderr line is the whole error on one line; with --json, the same message. */
function expectOneLineError(run: CliRun, json: boolean): string {
  const first = run.stderr.split("\n")[0] ?? "";
  expect(first, run.stderr).toMatch(/^dbcrypt: error: \S/);
  expect(run.stderr).not.toMatch(/^\s+at /m);
  if (json) {
    const document = JSON.parse(run.stdout) as { error: { message: string; exitCode: number; code: string } };
    expect(document.error.exitCode).toBe(run.code);
    expect(CONTROL.test(document.error.message), `message has a control character: ${JSON.stringify(document.error.message)}`).toBe(false);
    expect(first).toBe(`dbcrypt: error: ${document.error.message}`);
    return document.error.code;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Keys and key lists

const STANDARD_PADDED = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Go's base64.StdEncoding as reference §1.1 describes it: CR and LF skipped, padding required. */
function decodeLikeGo(text: string): Buffer | undefined {
  const compact = text.replace(/[\r\n]/g, "");
  if (compact === "" || !STANDARD_PADDED.test(compact)) return undefined;
  return Buffer.from(compact, "base64");
}

type KeyOracle = { ok: true; ids: string[] } | { ok: false };

/** docs/cli.md "Keys": comma- or newline-separated, one trailing separator ignored, @FILE trimmed. */
function oracleKeyList(raw: string | undefined, fromFile: boolean): KeyOracle {
  if (raw === undefined || (raw === "" && !fromFile)) return { ok: true, ids: [] };
  const text = fromFile ? raw.trim() : raw;
  const parts = text.split(/[,\n]/);
  if (parts.length > 1 && parts.at(-1) === "") parts.pop();
  const ids: string[] = [];
  for (const part of parts) {
    const bytes = decodeLikeGo(part);
    if (bytes === undefined || bytes.length !== 32) return { ok: false };
    const id = keyIdOf(bytes);
    if (ids.includes(id)) return { ok: false };
    ids.push(id);
  }
  return { ok: true, ids };
}

function oracleSingleKey(raw: string | undefined, fromFile: boolean): KeyOracle {
  if (raw === undefined || (raw === "" && !fromFile)) return { ok: false };
  const text = fromFile ? raw.trim() : raw;
  if (text.includes(",")) return { ok: false };
  const bytes = decodeLikeGo(text);
  return bytes !== undefined && bytes.length === 32 ? { ok: true, ids: [keyIdOf(bytes)] } : { ok: false };
}

const TOKEN_KINDS = ["valid", "valid", "valid", "length", "urlsafe", "unpadded", "extra-padding", "junk", "crlf", "hex", "empty", "trailing-bits", "repeat", "same-bytes", "edge-space"] as const;

const tokenArbitrary = fc.record({
  kind: fc.constantFrom(...TOKEN_KINDS),
  bytes: fc.uint8Array({ minLength: 64, maxLength: 64 }),
  length: fc.integer({ min: 0, max: 64 }),
  at: fc.nat(),
  char: fc.constantFrom(" ", "\t", "!", "é", "\u00a0", ".", "*", "=", "\\", "-", "_", "\r", "\n", "🔑", ",", "\u2028"),
  ref: fc.nat(),
});
type TokenSpec = typeof tokenArbitrary extends fc.Arbitrary<infer T> ? T : never;

/** Flips a padding bit of a 32-byte key's base64: a different text for the same bytes (Go accepts it). */
function twiddleTrailingBits(text: string): string {
  if (text.length !== 44 || !text.endsWith("=")) return text;
  const index = BASE64_ALPHABET.indexOf(text[42] as string);
  return `${text.slice(0, 42)}${BASE64_ALPHABET[index ^ 1]}=`;
}

function materializeTokens(specs: TokenSpec[]): string[] {
  const texts: string[] = [];
  for (const [position, spec] of specs.entries()) {
    const valid = Buffer.from(spec.bytes.subarray(0, 32)).toString("base64");
    const earlier = position > 0 ? texts[spec.ref % position] : undefined;
    let text: string;
    switch (spec.kind) {
      case "valid": text = valid; break;
      case "length": text = Buffer.from(spec.bytes.subarray(0, spec.length === 32 ? 33 : spec.length)).toString("base64"); break;
      case "urlsafe": text = valid.replace(/\+/g, "-").replace(/\//g, "_"); break;
      case "unpadded": text = valid.replace(/=+$/, ""); break;
      case "extra-padding": text = `${valid}==`; break;
      case "junk": { const at = spec.at % (valid.length + 1); text = `${valid.slice(0, at)}${spec.char}${valid.slice(at)}`; break; }
      case "crlf": { const at = spec.at % (valid.length + 1); text = `${valid.slice(0, at)}\r\n${valid.slice(at)}`; break; }
      case "hex": text = Buffer.from(spec.bytes.subarray(0, 32)).toString("hex"); break;
      case "empty": text = ""; break;
      case "trailing-bits": text = twiddleTrailingBits(valid); break;
      case "repeat": text = earlier ?? valid; break;
      case "same-bytes": text = earlier !== undefined ? twiddleTrailingBits(earlier) : valid; break;
      case "edge-space": text = spec.at % 2 === 0 ? ` ${valid}` : `${valid}\t`; break;
    }
    texts.push(text);
    // Key material and near-key text must never be echoed.
    registerSecret(text);
    registerSecret(Buffer.from(spec.bytes.subarray(0, 32)));
  }
  return texts;
}

const keyCaseArbitrary = fc.record({
  engine: fc.constantFrom(...ENGINE_KINDS),
  command: fc.constantFrom("rotate", "decrypt", "status"),
  tokens: fc.array(tokenArbitrary, { minLength: 1, maxLength: 4 }),
  separator: fc.constantFrom(",", "\n", ",\n", "\r\n"),
  trailing: fc.boolean(),
  delivery: fc.constantFrom("flag", "env", "file", "stdin"),
  fileEdges: fc.constantFrom("", "\n", "\r\n", "  \n\t"),
  json: fc.boolean(),
});

// ---------------------------------------------------------------------------------------------
// Config files

const ODD_NAMES = ["exlude", "a\nb", "tab\there", "quote\"d", "nul\u0000", "TABLES", "tables ", "ünï", "🔑", "esc\u001b[31m", "line\u2028sep", "$schema ", ""];
const oddName = fc.oneof(fc.constantFrom(...ODD_NAMES), fc.string({ unit: "binary", minLength: 1, maxLength: 10 }));
const nonBoolean = fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null), fc.constant([]), fc.constant({}));
const nonString = fc.oneof(fc.integer(), fc.boolean(), fc.constant([]), fc.constant({}));
const nonIdentifierList = fc.oneof(fc.constant([]), fc.constant("id"), fc.constant([1]), fc.constant([""]), fc.constant(null), fc.constant({}));

type ConfigFault = { kind: string; text: string };

function validConfig(): Record<string, any> {
  return {
    tables: {
      user_links: { columns: { oauth_access_token: { keepPlaintext: "never" } } },
      gitsshkeys: { deletePolicy: "clear" },
    },
  };
}

const configFaultArbitrary: fc.Arbitrary<ConfigFault> = fc.oneof(
  fc.record({ level: fc.constantFrom("top", "table", "column"), name: oddName }).filter(({ level, name }) => !(level === "top" ? ["$schema", "preset", "keysTable", "tables"] : level === "table" ? ["exclude", "rowKey", "deletePolicy", "setOnClear", "columns"] : ["keyIdColumn", "keepPlaintext", "clearTo", "exclude"]).includes(name)).map(({ level, name }) => {
    const config = validConfig();
    const target = level === "top" ? config : level === "table" ? config.tables.gitsshkeys : config.tables.user_links.columns.oauth_access_token;
    target[name] = true;
    return { kind: `unknown ${level} key`, text: JSON.stringify(config) };
  }),
  fc.oneof(
    fc.record({ path: fc.constant("preset"), value: fc.oneof(nonString, fc.constantFrom("Coder", "", "auto ")) }),
    fc.record({ path: fc.constant("keysTable"), value: fc.oneof(nonString, fc.constant(""), fc.constant(null)) }),
    fc.record({ path: fc.constant("tables"), value: fc.oneof(fc.constant([]), fc.constant("x"), fc.integer(), fc.constant(null)) }),
    fc.record({ path: fc.constant("tables.gitsshkeys"), value: fc.oneof(fc.boolean(), fc.constant([]), fc.constant("x"), fc.constant(null)) }),
    fc.record({ path: fc.constant("tables.gitsshkeys.exclude"), value: nonBoolean }),
    fc.record({ path: fc.constant("tables.gitsshkeys.rowKey"), value: nonIdentifierList }),
    fc.record({ path: fc.constant("tables.gitsshkeys.setOnClear"), value: nonIdentifierList }),
    fc.record({ path: fc.constant("tables.gitsshkeys.deletePolicy"), value: fc.oneof(nonString, fc.constantFrom("drop", "Delete-Row", "")) }),
    fc.record({ path: fc.constant("tables.gitsshkeys.columns"), value: fc.oneof(fc.constant([]), fc.constant("x"), fc.constant(null)) }),
    fc.record({ path: fc.constant("tables.user_links.columns.oauth_access_token.keepPlaintext"), value: fc.oneof(nonString, fc.constantFrom("always", "Blank", "")) }),
    fc.record({ path: fc.constant("tables.user_links.columns.oauth_access_token.clearTo"), value: nonString }),
    fc.record({ path: fc.constant("tables.user_links.columns.oauth_access_token.keyIdColumn"), value: fc.oneof(nonString, fc.constant(""), fc.constant(null)) }),
    fc.record({ path: fc.constant("tables.user_links.columns.oauth_access_token.exclude"), value: nonBoolean }),
  ).map(({ path, value }) => {
    const config = validConfig();
    const steps = path.split(".");
    let target: Record<string, any> = config;
    for (const step of steps.slice(0, -1)) target = target[step];
    target[steps.at(-1) as string] = value;
    return { kind: `wrong type at ${path}`, text: JSON.stringify(config) };
  }),
  oddName.filter((name) => !CODER_TABLES.includes(name)).map((name) => {
    const config = validConfig();
    config.tables[name] = { exclude: true };
    return { kind: "a table that does not exist", text: JSON.stringify(config) };
  }),
  fc.record({ name: oddName, where: fc.constantFrom("columns", "rowKey", "setOnClear", "keyIdColumn") }).filter(({ name }) => !["oauth_access_token", "oauth_refresh_token", "user_id", "login_type", "linked_id", "updated_at", "oauth_access_token_key_id", "oauth_refresh_token_key_id", "private_key", "public_key", "private_key_key_id"].includes(name)).map(({ name, where }) => {
    const config = validConfig();
    if (where === "columns") config.tables.user_links.columns[name] = { keepPlaintext: "blank" };
    else if (where === "keyIdColumn") config.tables.user_links.columns.oauth_access_token.keyIdColumn = name;
    else config.tables.gitsshkeys[where] = [name];
    return { kind: `a column that does not exist (${where})`, text: JSON.stringify(config) };
  }),
  fc.constantFrom("oauth_access_token", "oauth_refresh_token").map((column) => {
    const config = validConfig();
    config.tables.user_links.columns[column] = { clearTo: null };
    return { kind: "clearTo null on a NOT NULL column", text: JSON.stringify(config) };
  }),
  fc.record({ cut: fc.nat(), variant: fc.constantFrom("truncate", "trailing-comma", "single-quotes", "empty", "bom", "array", "number", "string", "null", "comment") }).map(({ cut, variant }) => {
    const valid = JSON.stringify(validConfig(), null, 2);
    const text = {
      truncate: valid.slice(0, 1 + (cut % (valid.length - 1))),
      "trailing-comma": valid.replace(/}\s*$/, ",}"),
      "single-quotes": valid.replace(/"/g, "'"),
      empty: "",
      bom: `\uFEFF${valid}`,
      array: "[]",
      number: "42",
      string: '"tables"',
      null: "null",
      comment: `// dbcrypt\n${valid}`,
    }[variant];
    return { kind: `broken JSON (${variant})`, text };
  }),
);

// ---------------------------------------------------------------------------------------------
// Hostile identifiers and values

const IDENTIFIER_CHARS = ['"', "'", ";", " ", "-", "`", "$", "?", ":", "@", "\\", "/", "*", "%", ".", "[", "]", "(", ")", ",", "é", "ß", "中", "🔑", "Ω", "A", "Q", "Z", "a", "q", "z", "0", "9", "_", "\t", "\u00a0", "$1", ":k0", "?1", "--", "/*"];
const identifierArbitrary = fc
  .tuple(fc.constantFrom("", "", "sqlite", "SQLite", "sqliteX", "pg_", "Dbcrypt_Keys", "x"), fc.array(fc.constantFrom(...IDENTIFIER_CHARS), { minLength: 1, maxLength: 10 }))
  .map(([prefix, chars]) => `${prefix}${chars.join("")}`)
  // SQLite reserves sqlite_*; PostgreSQL's names are at most 63 bytes, and "_key_id" is appended.
  .filter((name) => !/^sqlite_/i.test(name) && Buffer.byteLength(`${name}_key_id`) <= 63);

const identifiersArbitrary = fc
  .record({ table: identifierArbitrary, pk: identifierArbitrary, first: identifierArbitrary, second: identifierArbitrary, other: identifierArbitrary, keysTable: fc.option(identifierArbitrary, { freq: 2 }) })
  .filter((names) => {
    const all = [names.table, names.pk, names.first, names.second, names.other, `${names.first}_key_id`, `${names.second}_key_id`];
    const lower = all.map((name) => name.toLowerCase());
    // SQLite compares column names case-insensitively; the keys table must not be the data table.
    return new Set(lower).size === lower.length && names.keysTable?.toLowerCase() !== names.table.toLowerCase() && names.keysTable?.toLowerCase() !== "dbcrypt_keys";
  });

/** Text a column can hold on both engines: any Unicode except NUL (PostgreSQL text cannot hold it). */
const textArbitrary = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }).map((text) => text.replace(/\u0000/g, "")) },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "\t\n", "{}", " {} ", "NULL", "null", "'); DROP TABLE x; --", "\uFEFFbom", "e\u0301", "👩‍👩‍👧", "\u202Eabc") },
);

const valueRowsArbitrary = fc.uniqueArray(
  fc.record({
    pk: fc.string({ unit: "binary", maxLength: 8 }).map((text) => text.replace(/\u0000/g, "")),
    first: textArbitrary,
    // A key id with a foreign key to the keys table can hold NULL but not '' (no such key row).
    firstKeyId: fc.constant(null),
    second: fc.option(textArbitrary, { freq: 2 }),
    secondKeyId: fc.constantFrom(null, ""),
  }),
  { minLength: 1, maxLength: 6, selector: (row) => row.pk },
);

/** Now and then one row gets a 1–3 MB value (and the first run always does, see `examples`). */
const bigValueArbitrary = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.record({ row: fc.nat(), megabytes: fc.double({ min: 1, max: 3, noNaN: true }) }) },
);

function bigText(megabytes: number): string {
  const unit = "ünïcødé ✓ 🔑 ";
  return `${unit.repeat(Math.ceil((megabytes * 1024 * 1024) / Buffer.byteLength(unit)))}${randomBytes(8).toString("hex")}`;
}

// ---------------------------------------------------------------------------------------------

describe("property-based input surface", () => {
  const coder = new Map<EngineKind, Database & { keyA: TestKey }>();
  const plain = new Map<EngineKind, Database>();
  let scratch: string;
  const figures: Record<string, number> = {};

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "dbcrypt-chaos-props-"));
    for (const kind of ENGINE_KINDS) {
      const database = await openDatabase(kind, "chaos_props");
      await createCoderSchema(database.db);
      const keyA = freshKey();
      const manifest = await seedCoderData(database.db, { users: 3, key: keyA });
      for (const entry of manifest.entries) if (entry.plaintext !== null) registerSecret(entry.plaintext);
      coder.set(kind, { ...database, keyA });
      const bare = await openDatabase(kind, "chaos_props_plain");
      expect((await runCli(["keys", "init", "--db", bare.url])).code).toBe(0);
      plain.set(kind, bare);
    }
  }, 120_000);

  afterAll(async () => {
    recordFigures("properties", { runsPerProperty: RUNS, heavyRunsPerProperty: HEAVY_RUNS, ...figures });
    for (const database of [...coder.values(), ...plain.values()]) await closeDatabase(database);
    rmSync(scratch, { recursive: true, force: true });
  });

  function count(name: string): void {
    figures[name] = (figures[name] ?? 0) + 1;
  }

  it("malformed keys and key lists: exit 2 naming the flag, or 3 for valid keys the database does not use; nothing written", async () => {
    await fc.assert(
      fc.asyncProperty(keyCaseArbitrary, async (input) => {
        const database = coder.get(input.engine)!;
        const texts = materializeTokens(input.tokens);
        const sep = input.separator;
        const list = (parts: string[]) => `${parts.join(sep)}${input.trailing && parts.length > 0 ? sep : ""}`;
        const values: { flag: string; env: string; text: string }[] = [];
        if (input.command === "rotate") {
          values.push({ flag: "--new-key", env: "DBCRYPT_NEW_KEY", text: texts[0] as string });
          if (texts.length > 1) values.push({ flag: "--old-keys", env: "DBCRYPT_OLD_KEYS", text: list(texts.slice(1)) });
        } else {
          values.push({ flag: "--keys", env: input.command === "decrypt" ? "DBCRYPT_DECRYPT_KEYS" : "DBCRYPT_KEYS", text: list(texts) });
        }
        const args: string[] = [input.command, "--db", database.url];
        const env: Record<string, string> = {};
        let stdin: string | undefined;
        const fromFile = new Map<string, boolean>();
        for (const [index, value] of values.entries()) {
          const delivery = input.delivery === "stdin" && index > 0 ? "flag" : input.delivery;
          fromFile.set(value.flag, delivery === "file" || delivery === "stdin");
          if (delivery === "flag") args.push(`${value.flag}=${value.text}`);
          else if (delivery === "env") env[value.env] = value.text;
          else if (delivery === "stdin") {
            args.push(`${value.flag}=@-`);
            stdin = `${input.fileEdges}${value.text}${input.fileEdges}`;
          } else {
            const path = join(scratch, `key-${randomBytes(6).toString("hex")}`);
            writeFileSync(path, `${input.fileEdges}${value.text}${input.fileEdges}`, { mode: 0o600 });
            args.push(`${value.flag}=@${path}`);
          }
        }
        if (input.command !== "status") args.push("--yes");
        if (input.json) args.push("--json");
        // The environment cannot carry NUL and an empty variable counts as unset (docs/cli.md).
        const envText = (flag: string) => values.find((value) => value.flag === flag);
        const given = (flag: string): string | undefined => {
          const value = envText(flag);
          if (value === undefined) return undefined;
          if (input.delivery === "env" && value.text === "") return undefined;
          return value.text;
        };
        let valid: boolean;
        if (input.command === "rotate") {
          const newKey = oracleSingleKey(given("--new-key"), fromFile.get("--new-key") ?? false);
          const oldKeys = oracleKeyList(given("--old-keys"), fromFile.get("--old-keys") ?? false);
          valid = newKey.ok && oldKeys.ok && !oldKeys.ids.includes(newKey.ids[0] as string);
        } else {
          const keys = oracleKeyList(given("--keys"), fromFile.get("--keys") ?? false);
          valid = keys.ok && (input.command === "status" || keys.ids.length > 0);
          // status with no keys at all checks nothing key-related: not a key-list case.
          fc.pre(!(input.command === "status" && keys.ok && keys.ids.length === 0));
        }
        const before = await snapshot(database.db);
        const run = await runCli(args, { env, input: stdin });
        count(valid ? "keyInputsValid" : "keyInputsMalformed");
        if (!valid) {
          expect(run.code, `${JSON.stringify(values)}\n${run.stderr}`).toBe(2);
          const code = expectOneLineError(run, input.json);
          expect(run.stderr.split("\n")[0]).toMatch(/--new-key|--old-keys|--keys/);
          if (input.json) expect(["bad_key", "usage"]).toContain(code);
        } else if (input.command === "status") {
          // Valid keys, none of them the database's: a status problem, not an error.
          expect(run.code, run.stdout + run.stderr).toBe(3);
          if (input.json) expect(JSON.parse(run.stdout)).toMatchObject({ healthy: false });
        } else {
          expect(run.code, `${JSON.stringify(values)}\n${run.stderr}`).toBe(3);
          const code = expectOneLineError(run, input.json);
          expect(run.stderr.split("\n")[0]).toContain(`active key(s) ${database.keyA.id} that were not supplied`);
          if (input.json) expect(code).toBe("unknown_key");
        }
        expect(await snapshot(database.db)).toBe(before);
      }),
      { ...PROPERTY_OPTIONS, numRuns: RUNS * 2 },
    );
  }, timeoutFor(RUNS * 2, 3_000));

  it("malformed config files: exit 2 (bad_config) with a one-line error, nothing written", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ENGINE_KINDS), configFaultArbitrary, async (engine, fault) => {
        const database = coder.get(engine)!;
        const path = join(scratch, `config-${randomBytes(6).toString("hex")}.json`);
        writeFileSync(path, fault.text, { mode: 0o600 });
        const before = await snapshot(database.db);
        // A config wrongly accepted would let this rotate write: the checksum would change.
        const run = await runCli(["rotate", "--db", database.url, "--config", path, "--new-key", freshKey().base64, "--old-keys", database.keyA.base64, "--yes", "--json"]);
        count("configFaults");
        expect(run.code, `${fault.kind}: ${JSON.stringify(fault.text)}\n${run.stderr}`).toBe(2);
        expect(expectOneLineError(run, true), fault.kind).toBe("bad_config");
        expect(await snapshot(database.db)).toBe(before);
      }),
      PROPERTY_OPTIONS,
    );
  }, timeoutFor(RUNS, 3_000));

  describe.each(ENGINE_KINDS)("on %s", (kind) => {
    it("hostile identifiers: rotate, rotate again, verify and decrypt round-trip every value", async () => {
      await fc.assert(
        fc.asyncProperty(identifiersArbitrary, fc.array(textArbitrary, { minLength: 1, maxLength: 4 }), async (names, texts) => {
          const { db, url } = plain.get(kind)!;
          const q = quoteIdent;
          const keysTable = names.keysTable ?? "dbcrypt_keys";
          const keysFlag = names.keysTable === null ? [] : ["--keys-table", keysTable];
          try {
            if (names.keysTable !== null) {
              const init = await runCli(["keys", "init", "--db", url, ...keysFlag]);
              expect(init.code, init.stderr).toBe(0);
            }
            const fk = (column: string) => `${q(`${column}_key_id`)} text REFERENCES ${q(keysTable)} (active_key_digest)`;
            await db.exec(
              `CREATE TABLE ${q(names.table)} (${q(names.pk)} text NOT NULL PRIMARY KEY, ${q(names.first)} text NOT NULL, ${fk(names.first)}, ` +
                `${q(names.second)} text, ${fk(names.second)}, ${q(names.other)} text)`,
            );
            const rows = texts.map((text, index) => ({ pk: `${index}${Array.from(text).slice(0, 3).join("")}`, first: text, second: index % 2 === 0 ? null : `${text}-second`, other: `other ${index}` }));
            for (const row of rows) {
              for (const value of [row.first, row.second]) if (value) registerSecret(value);
              await db.query(`INSERT INTO ${q(names.table)} (${q(names.pk)}, ${q(names.first)}, ${q(names.second)}, ${q(names.other)}) VALUES ($1, $2, $3, $4)`, [row.pk, row.first, row.second, row.other]);
            }
            const expectUnder = async (key: TestKey | null) => {
              const stored = await db.query<Record<string, string | null>>(
                `SELECT ${q(names.pk)} AS pk, ${q(names.first)} AS first, ${q(`${names.first}_key_id`)} AS first_key, ${q(names.second)} AS second, ` +
                  `${q(`${names.second}_key_id`)} AS second_key, ${q(names.other)} AS other FROM ${q(names.table)}`,
              );
              expect(stored).toHaveLength(rows.length);
              for (const row of stored) {
                const original = rows.find((candidate) => candidate.pk === row.pk)!;
                expect(row.other).toBe(original.other);
                expect(row.first_key).toBe(key?.id ?? null);
                expect(key ? openValue(key.bytes, row.first!) : row.first).toBe(original.first);
                expect(row.second_key).toBe(original.second === null ? null : key?.id ?? null);
                expect(key && original.second !== null ? openValue(key.bytes, row.second!) : row.second).toBe(original.second);
              }
            };
            const keyOne = freshKey();
            const keyTwo = freshKey();
            const encrypt = await runCli(["rotate", "--db", url, ...keysFlag, "--new-key", keyOne.base64, "--yes", "--batch-size", "2"]);
            expect(encrypt.code, encrypt.stdout + encrypt.stderr).toBe(0);
            await expectUnder(keyOne);
            const rotate = await runCli(["rotate", "--db", url, ...keysFlag, "--new-key", keyTwo.base64, "--old-keys", keyOne.base64, "--yes", "--batch-size", "3"]);
            expect(rotate.code, rotate.stdout + rotate.stderr).toBe(0);
            await expectUnder(keyTwo);
            const verify = await runCli(["status", "--db", url, ...keysFlag, "--keys", keyTwo.base64, "--verify", "--json"]);
            expect(verify.code, verify.stdout).toBe(0);
            expect(JSON.parse(verify.stdout).verified.values).toBe(rows.length + rows.filter((row) => row.second !== null).length);
            const decrypt = await runCli(["decrypt", "--db", url, ...keysFlag, "--keys", keyTwo.base64, "--yes"]);
            expect(decrypt.code, decrypt.stdout + decrypt.stderr).toBe(0);
            await expectUnder(null);
            count(`hostileIdentifiers_${kind}`);
          } finally {
            await db.exec(`DROP TABLE IF EXISTS ${q(names.table)}`);
            if (names.keysTable !== null) await db.exec(`DROP TABLE IF EXISTS ${q(names.keysTable)}`);
          }
        }),
        { ...PROPERTY_OPTIONS, numRuns: HEAVY_RUNS },
      );
    }, timeoutFor(HEAVY_RUNS, 8_000));

    it("unicode and multi-megabyte values, NULLs and empty strings in every position round-trip exactly", async () => {
      await fc.assert(
        fc.asyncProperty(valueRowsArbitrary, bigValueArbitrary, async (rows, big) => {
          const { db, url } = plain.get(kind)!;
          const table = "chaos values";
          const q = quoteIdent;
          await db.exec(
            `CREATE TABLE ${q(table)} (pk text NOT NULL PRIMARY KEY, a text NOT NULL, a_key_id text REFERENCES dbcrypt_keys (active_key_digest), ` +
              // b_key_id has no foreign key (found by the naming rule), so it can hold '' as Coder's plaintext marker.
              `b text, b_key_id text, note text)`,
          );
          try {
            const inserted = rows.map((row, index) => ({ ...row, first: big !== null && big.row % rows.length === index ? bigText(big.megabytes) : row.first }));
            for (const row of inserted) {
              for (const value of [row.first, row.second]) if (value) registerSecret(value);
              await db.query(`INSERT INTO ${q(table)} (pk, a, a_key_id, b, b_key_id, note) VALUES ($1, $2, $3, $4, $5, $6)`, [row.pk, row.first, row.firstKeyId, row.second, row.secondKeyId, `note ${row.pk}`]);
            }
            const read = async () => new Map((await db.query<Record<string, string | null>>(`SELECT pk, a, a_key_id, b, b_key_id, note FROM ${q(table)}`)).map((row) => [row.pk as string, row]));
            const key = freshKey();
            const encrypt = await runCli(["rotate", "--db", url, "--new-key", key.base64, "--yes", "--batch-size", "2"]);
            expect(encrypt.code, encrypt.stdout + encrypt.stderr).toBe(0);
            let stored = await read();
            for (const row of inserted) {
              const now = stored.get(row.pk)!;
              expect(now.note).toBe(`note ${row.pk}`);
              // Every non-NULL value is encrypted, '' included (rule "never"); a NULL keeps its key id.
              expect(now.a_key_id).toBe(key.id);
              expect(openValue(key.bytes, now.a!) === row.first, `row ${JSON.stringify(row.pk)} a`).toBe(true);
              if (row.second === null) expect([now.b, now.b_key_id]).toEqual([null, row.secondKeyId]);
              else {
                expect(now.b_key_id).toBe(key.id);
                expect(openValue(key.bytes, now.b!)).toBe(row.second);
              }
            }
            const decrypt = await runCli(["decrypt", "--db", url, "--keys", key.base64, "--yes", "--batch-size", "3"]);
            expect(decrypt.code, decrypt.stdout + decrypt.stderr).toBe(0);
            stored = await read();
            for (const row of inserted) {
              const now = stored.get(row.pk)!;
              expect(now.a === row.first, `row ${JSON.stringify(row.pk)} a after decrypt`).toBe(true);
              expect(now.a_key_id).toBeNull();
              expect(now.b).toBe(row.second);
              expect(now.b_key_id).toBe(row.second === null ? row.secondKeyId : null);
            }
            count(big !== null ? `valuesWithMultiMegabyte_${kind}` : `values_${kind}`);
          } finally {
            await db.exec(`DROP TABLE ${q(table)}`);
          }
        }),
        { ...PROPERTY_OPTIONS, numRuns: HEAVY_RUNS, examples: [[[{ pk: "", first: "", firstKeyId: null, second: null, secondKeyId: "" }, { pk: "p", first: " ", firstKeyId: null, second: "", secondKeyId: "" }], { row: 0, megabytes: 2 }]] },
      );
    }, timeoutFor(HEAVY_RUNS, 15_000));

    it("corrupt ciphertexts at random rows: exit 3, reported by primary key, untouched, key kept; --verify finds each", async () => {
      const corruption = fc.constantFrom("flip", "truncate", "junk", "empty", "null", "short", "trailing-bits", "wrapped");
      await fc.assert(
        fc.asyncProperty(fc.array(fc.record({ first: corruption, second: fc.option(corruption), at: fc.nat() }).map((row) => row), { minLength: 1, maxLength: 6 }), fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }), async (corruptions, damaged) => {
          const { db, url } = plain.get(kind)!;
          const table = "chaos corrupt";
          const q = quoteIdent;
          const keyOne = freshKey();
          const keyTwo = freshKey();
          await db.exec(`CREATE TABLE ${q(table)} (id integer NOT NULL PRIMARY KEY, a text NOT NULL, a_key_id text REFERENCES dbcrypt_keys (active_key_digest), b text, b_key_id text REFERENCES dbcrypt_keys (active_key_digest))`);
          try {
            await db.query("INSERT INTO dbcrypt_keys (number, active_key_digest, created_at, test) VALUES ((SELECT COALESCE(MAX(number), 0) + 1 FROM dbcrypt_keys), $1, CURRENT_TIMESTAMP, $2)", [keyOne.id, sealValue(keyOne.bytes, "coder")]);
            const corrupt = (stored: string, how: string, at: number): string | null => {
              const blob = Buffer.from(stored, "base64");
              switch (how) {
                case "flip": blob[at % blob.length]! ^= 1 << (at % 8); return blob.toString("base64");
                case "truncate": return blob.subarray(0, at % blob.length).toString("base64");
                case "junk": return `${stored.slice(0, at % stored.length)}*${stored.slice(at % stored.length)}`;
                case "empty": return "";
                case "null": return null;
                case "short": return blob.subarray(0, at % 12).toString("base64");
                // Not corrupt: Go ignores a base64 text's padding bits and skips CR/LF.
                case "trailing-bits": return stored.length % 4 === 0 && stored.endsWith("=") && !stored.endsWith("==") ? `${stored.slice(0, -2)}${BASE64_ALPHABET[BASE64_ALPHABET.indexOf(stored.at(-2)!) ^ 1]}=` : stored;
                case "wrapped": return `${stored.slice(0, at % stored.length)}\r\n${stored.slice(at % stored.length)}`;
              }
              return stored;
            };
            /** Opens like Coder would: CR/LF skipped before the strict base64 check. */
            const opens = (stored: string | null, plaintext: string) => {
              if (stored === null) return false;
              try {
                return openValue(keyOne.bytes, stored.replace(/[\r\n]/g, "")) === plaintext;
              } catch {
                return false;
              }
            };
            const rows = corruptions.map((spec, index) => {
              const first = `first secret ${index} ${randomBytes(4).toString("hex")}`;
              const second = index % 2 === 0 ? `second secret ${index} ${randomBytes(4).toString("hex")}` : null;
              registerSecret(first);
              if (second) registerSecret(second);
              const hit = damaged[index] ?? false;
              const a = hit ? corrupt(sealValue(keyOne.bytes, first), spec.first, spec.at) ?? "" : sealValue(keyOne.bytes, first);
              const b = second === null ? null : hit && spec.second !== null ? corrupt(sealValue(keyOne.bytes, second), spec.second, spec.at + 7) : sealValue(keyOne.bytes, second);
              for (const value of [a, b]) if (value) registerSecret(value);
              const bad = !opens(a, first) || (second !== null && !opens(b, second));
              return { id: index + 1, first, second, a, b, bad };
            });
            for (const row of rows) {
              await db.query(`INSERT INTO ${q(table)} (id, a, a_key_id, b, b_key_id) VALUES ($1, $2, $3, $4, $5)`, [row.id, row.a, keyOne.id, row.b, row.second === null ? null : keyOne.id]);
            }
            const expectedBad = rows.filter((row) => row.bad).map((row) => String(row.id)).sort();
            const run = await runCli(["rotate", "--db", url, "--new-key", keyTwo.base64, "--old-keys", keyOne.base64, "--yes", "--json", "--batch-size", "2"]);
            expect(run.code, run.stderr).toBe(expectedBad.length > 0 ? 3 : 0);
            const result = JSON.parse(run.stdout);
            expect([...new Set((result.undecryptable as { rowKey: { id: string } }[]).map((failure) => failure.rowKey.id))].sort()).toEqual(expectedBad);
            const stored = await db.query<{ id: number; a: string; a_key_id: string; b: string | null; b_key_id: string | null }>(`SELECT id, a, a_key_id, b, b_key_id FROM ${q(table)}`);
            for (const now of stored) {
              const row = rows.find((candidate) => candidate.id === Number(now.id))!;
              if (row.bad) expect([now.a, now.a_key_id, now.b, now.b_key_id], `row ${row.id} untouched`).toEqual([row.a, keyOne.id, row.b, row.second === null ? null : keyOne.id]);
              else {
                expect(openValue(keyTwo.bytes, now.a)).toBe(row.first);
                if (row.second !== null) expect(openValue(keyTwo.bytes, now.b!)).toBe(row.second);
              }
            }
            const [keyOneRow] = await db.query<{ active: string | null }>("SELECT active_key_digest AS active FROM dbcrypt_keys WHERE active_key_digest = $1 OR revoked_key_digest = $1", [keyOne.id]);
            expect(keyOneRow?.active ?? null, "the old key is kept exactly when a row still uses it").toBe(expectedBad.length > 0 ? keyOne.id : null);
            const verify = await runCli(["status", "--db", url, "--keys", expectedBad.length > 0 ? `${keyTwo.base64},${keyOne.base64}` : keyTwo.base64, "--verify", "--json"]);
            expect(verify.code, verify.stdout).toBe(expectedBad.length > 0 ? 3 : 0);
            expect([...new Set((JSON.parse(verify.stdout).verified.undecryptable as { rowKey: { id: string } }[]).map((failure) => failure.rowKey.id))].sort()).toEqual(expectedBad);
            count(expectedBad.length > 0 ? `corruptRuns_${kind}` : `corruptRunsAllValid_${kind}`);
            figures[`corruptRows_${kind}`] = (figures[`corruptRows_${kind}`] ?? 0) + expectedBad.length;
          } finally {
            await db.exec(`DROP TABLE ${q(table)}`);
            // Retire this run's keys so the next run starts with no active key.
            await db.query("UPDATE dbcrypt_keys SET revoked_key_digest = active_key_digest, active_key_digest = NULL, revoked_at = CURRENT_TIMESTAMP WHERE active_key_digest IS NOT NULL");
          }
        }),
        { ...PROPERTY_OPTIONS, numRuns: HEAVY_RUNS },
      );
    }, timeoutFor(HEAVY_RUNS, 8_000));
  });
});
