/**
 * validateConfig: strict validation of dbcrypt.config.json. Every unknown key at every level is an
 * error naming its path, and every wrong type is an error naming the field.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfigFile, validateConfig, type DbcryptConfig } from "../../src/schema/config-file.js";
import { DbcryptError } from "../../src/errors.js";
import { exitCodeForError } from "../../src/cli/exit-codes.js";

function rejection(input: unknown, origin = "dbcrypt.config.json"): DbcryptError {
  try {
    validateConfig(input, origin);
  } catch (error) {
    expect(error).toBeInstanceOf(DbcryptError);
    expect((error as DbcryptError).code).toBe("bad_config");
    expect(exitCodeForError(error as DbcryptError)).toBe(2);
    return error as DbcryptError;
  }
  throw new Error("expected validateConfig to reject the input");
}

const FULL: DbcryptConfig = {
  preset: "coder",
  keysTable: "dbcrypt_keys",
  tables: {
    user_links: { exclude: false, rowKey: ["user_id", "login_type"], deletePolicy: "delete-row" },
    "app.secrets": {
      deletePolicy: "clear",
      setOnClear: ["cleared_at"],
      columns: {
        token: { keyIdColumn: "token_kid", keepPlaintext: "blank", clearTo: null, exclude: false },
        note: { clearTo: "" },
        headers: { keepPlaintext: "blank-or-empty-object", clearTo: "{}" },
        legacy: { exclude: true },
      },
    },
  },
};

describe("validateConfig accepts", () => {
  it("an empty object", () => {
    expect(validateConfig({}, "x")).toEqual({});
  });

  it("every documented field, returning exactly what was given", () => {
    expect(validateConfig(JSON.parse(JSON.stringify(FULL)), "x")).toEqual(FULL);
  });

  it("a $schema key (and drops it)", () => {
    expect(validateConfig({ $schema: "./docs/config.schema.json", preset: "none" }, "x")).toEqual({ preset: "none" });
  });

  it.each(["auto", "coder", "none"])("preset %s", (preset) => {
    expect(validateConfig({ preset }, "x").preset).toBe(preset);
  });

  it.each(["never", "empty", "blank", "blank-or-empty-object"])("keepPlaintext %s", (rule) => {
    expect(validateConfig({ tables: { t: { columns: { c: { keepPlaintext: rule } } } } }, "x").tables?.t?.columns?.c?.keepPlaintext).toBe(rule);
  });
});

describe("validateConfig: the value scheme", () => {
  it("accepts a known scheme by name", () => {
    expect(validateConfig({ scheme: "coder" }, "dbcrypt.config.json")).toEqual({ scheme: "coder" });
  });

  it("refuses an unknown scheme, listing the known ones", () => {
    expect(rejection({ scheme: "rot13" }).message).toBe('config dbcrypt.config.json: scheme must be one of "coder", "secretbox-workspace", "aes256gcm-master", "k8s-encryption-config"');
    expect(rejection({ scheme: 7 }).message).toMatch(/^config dbcrypt.config.json: scheme must be one of /);
  });
});

describe("validateConfig rejects unknown keys, naming where", () => {
  it.each([
    ["top level", { preset: "auto", tabels: {} }, '(top level) has unknown key "tabels"'],
    ["top level, case differs", { Preset: "auto" }, '(top level) has unknown key "Preset"'],
    ["table level", { tables: { user_links: { exlude: true } } }, 'tables["user_links"] has unknown key "exlude"'],
    ["table level, column-only key", { tables: { t: { keyIdColumn: "x" } } }, 'tables["t"] has unknown key "keyIdColumn"'],
    ["column level", { tables: { t: { columns: { c: { clear_to: "" } } } } }, 'tables["t"].columns["c"] has unknown key "clear_to"'],
    ["column level, table-only key", { tables: { t: { columns: { c: { deletePolicy: "clear" } } } } }, 'tables["t"].columns["c"] has unknown key "deletePolicy"'],
    ["second table", { tables: { a: {}, b: { rowkey: ["id"] } } }, 'tables["b"] has unknown key "rowkey"'],
  ])("%s", (_name, input, expected) => {
    const error = rejection(input, "my.json");
    expect(error.message).toContain(`config my.json: ${expected}`);
    expect(error.message).toMatch(/\(allowed: [^)]+\)/);
    expect(error.hint).toMatch(/docs\/config/);
  });

  it("lists the allowed keys for the level", () => {
    expect(rejection({ x: 1 }).message).toContain("(allowed: $schema, scheme, schemeOptions, preset, keysTable, tables)");
    expect(rejection({ tables: { t: { x: 1 } } }).message).toContain("(allowed: exclude, rowKey, deletePolicy, setOnClear, columns, context, aad, aadFallback, rowFlag, resource)");
    expect(rejection({ tables: { t: { columns: { c: { x: 1 } } } } }).message).toContain("(allowed: keyIdColumn, keepPlaintext, clearTo, exclude, cellFormat)");
  });
});

describe("validateConfig rejects wrong types, naming the field", () => {
  it.each([
    ["a non-object document", [], "(top level) must be an object"],
    ["null", null, "(top level) must be an object"],
    ["a string document", "coder", "(top level) must be an object"],
    ["an unknown preset", { preset: "Coder" }, 'preset must be one of "auto", "coder", "atelyaos", "company-agents", "obot", "none"'],
    ["a boolean preset", { preset: true }, 'preset must be one of "auto", "coder", "atelyaos", "company-agents", "obot", "none"'],
    ["an empty keysTable", { keysTable: "" }, "keysTable must be a non-empty string"],
    ["a numeric keysTable", { keysTable: 1 }, "keysTable must be a non-empty string"],
    ["tables as an array", { tables: [] }, "tables must be an object"],
    ["tables as null", { tables: null }, "tables must be an object"],
    ["a table as a boolean", { tables: { t: true } }, 'tables["t"] must be an object'],
    ["a table as an array", { tables: { t: ["c"] } }, 'tables["t"] must be an object'],
    ["exclude as a string", { tables: { t: { exclude: "yes" } } }, 'tables["t"].exclude must be true or false'],
    ["exclude as a number", { tables: { t: { exclude: 1 } } }, 'tables["t"].exclude must be true or false'],
    ["rowKey as a string", { tables: { t: { rowKey: "id" } } }, 'tables["t"].rowKey must be a non-empty array of column names'],
    ["an empty rowKey", { tables: { t: { rowKey: [] } } }, 'tables["t"].rowKey must be a non-empty array of column names'],
    ["a numeric rowKey entry", { tables: { t: { rowKey: ["id", 2] } } }, 'tables["t"].rowKey[1] must be a non-empty string'],
    ["an empty rowKey entry", { tables: { t: { rowKey: [""] } } }, 'tables["t"].rowKey[0] must be a non-empty string'],
    ["an unknown deletePolicy", { tables: { t: { deletePolicy: "delete" } } }, 'tables["t"].deletePolicy must be "delete-row" or "clear"'],
    ["setOnClear as a string", { tables: { t: { setOnClear: "cleared_at" } } }, 'tables["t"].setOnClear must be a non-empty array of column names'],
    ["a null setOnClear entry", { tables: { t: { setOnClear: [null] } } }, 'tables["t"].setOnClear[0] must be a non-empty string'],
    ["columns as an array", { tables: { t: { columns: ["c"] } } }, 'tables["t"].columns must be an object'],
    ["a column as a string", { tables: { t: { columns: { c: "c_key_id" } } } }, 'tables["t"].columns["c"] must be an object'],
    ["an empty keyIdColumn", { tables: { t: { columns: { c: { keyIdColumn: "" } } } } }, 'tables["t"].columns["c"].keyIdColumn must be a non-empty string'],
    ["an unknown keepPlaintext", { tables: { t: { columns: { c: { keepPlaintext: "whitespace" } } } } }, 'tables["t"].columns["c"].keepPlaintext must be one of never, empty, blank, blank-or-empty-object'],
    ["a boolean keepPlaintext", { tables: { t: { columns: { c: { keepPlaintext: true } } } } }, 'tables["t"].columns["c"].keepPlaintext must be one of'],
    ["a numeric clearTo", { tables: { t: { columns: { c: { clearTo: 0 } } } } }, 'tables["t"].columns["c"].clearTo must be a string or null'],
    ["an object clearTo", { tables: { t: { columns: { c: { clearTo: {} } } } } }, 'tables["t"].columns["c"].clearTo must be a string or null'],
    ["a string column exclude", { tables: { t: { columns: { c: { exclude: "true" } } } } }, 'tables["t"].columns["c"].exclude must be true or false'],
  ])("%s", (_name, input, expected) => {
    expect(rejection(input).message).toContain(expected);
  });

  it("reports the origin it was given", () => {
    expect(rejection({ preset: 1 }, "/etc/dbcrypt.json").message).toMatch(/^config \/etc\/dbcrypt\.json: preset /);
  });
});

describe("loadConfigFile", () => {
  const directory = mkdtempSync(join(tmpdir(), "dbcrypt-unit-config-"));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it("reads and validates an explicit file", () => {
    const path = join(directory, "ok.json");
    writeFileSync(path, JSON.stringify({ preset: "none", tables: { t: { exclude: true } } }));
    expect(loadConfigFile(path)).toEqual({ config: { preset: "none", tables: { t: { exclude: true } } }, path });
  });

  it("names a missing explicit file", () => {
    const path = join(directory, "missing.json");
    expect(() => loadConfigFile(path)).toThrow(`cannot read config file ${path}: ENOENT`);
  });

  it("refuses invalid JSON with bad_config", () => {
    const path = join(directory, "broken.json");
    writeFileSync(path, "{ preset: none }");
    try {
      loadConfigFile(path);
      expect.unreachable();
    } catch (error) {
      expect((error as DbcryptError).code).toBe("bad_config");
      expect((error as DbcryptError).message).toContain(`config file ${path} is not valid JSON`);
    }
  });

  it("validates what it read, naming the file", () => {
    const path = join(directory, "typo.json");
    writeFileSync(path, JSON.stringify({ tables: { t: { exlude: true } } }));
    expect(() => loadConfigFile(path)).toThrow(`config ${path}: tables["t"] has unknown key "exlude"`);
  });
});
