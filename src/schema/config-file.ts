import { readFileSync, existsSync } from "node:fs";
import { knownSchemes } from "../crypto/schemes/registry.js";
import { DbcryptError } from "../errors.js";
import type { PlaintextRule } from "./model.js";

/**
 * dbcrypt.config.json: optional overrides on top of catalog discovery. Validation is strict (an
 * unknown key is an error, with its path) because a misspelt "exclude" that is silently ignored
 * would make a destructive run touch a table the operator meant to keep out.
 */
export interface ColumnConfig {
  keyIdColumn?: string;
  keepPlaintext?: PlaintextRule;
  clearTo?: string | null;
  exclude?: boolean;
  /** How the scheme writes new cells in this column (a spelling or envelope the scheme knows). */
  cellFormat?: string;
}

export interface TableConfig {
  exclude?: boolean;
  rowKey?: string[];
  deletePolicy?: "delete-row" | "clear";
  setOnClear?: string[];
  columns?: Record<string, ColumnConfig>;
  /** The scheme's row-context inputs, each mapped to a column of this table (`{"workspace": "workspace_id"}`). */
  context?: Record<string, string>;
  /** Additional authenticated data built from the row: a template with {column} placeholders. */
  aad?: string;
  /** Legacy forms of the additional data to try when the template's does not authenticate. */
  aadFallback?: string[];
  /** The Kubernetes resource the table's rows belong to (`users.obot.obot.ai`), to tell which configured resources no walked table holds. */
  resource?: string;
  /** A boolean column saying whether the row's values are encrypted (Obot's `encrypted`): read, and written by rotate and decrypt. */
  rowFlag?: string;
}

export interface DbcryptConfig {
  /** The value scheme of every encrypted column (crypto/schemes); Coder's when absent. */
  scheme?: string;
  /** The scheme's own options (crypto/schemes/*), checked by the scheme. */
  schemeOptions?: Record<string, unknown>;
  preset?: PresetName;
  keysTable?: string;
  tables?: Record<string, TableConfig>;
  /** From --aad-fallback empty (not a file key): try empty additional data after each table's own. */
  aadFallbackEmpty?: boolean;
}

export const PRESET_NAMES = ["auto", "coder", "atelyaos", "company-agents", "obot", "none"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export const DEFAULT_CONFIG_FILE = "dbcrypt.config.json";
const PLAINTEXT_RULES: readonly PlaintextRule[] = ["never", "empty", "blank", "blank-or-empty-object"];

/** Reads the named file, or dbcrypt.config.json in the working directory when present. */
export function loadConfigFile(explicitPath: string | undefined): { config: DbcryptConfig; path: string | undefined } {
  const path = explicitPath ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  if (path === undefined) return { config: {}, path: undefined };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new DbcryptError("bad_config", `cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? "read error"}`, {
      hint: "check the --config path",
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new DbcryptError("bad_config", `config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  return { config: validateConfig(parsed, path), path };
}

export function validateConfig(input: unknown, origin: string): DbcryptConfig {
  const fail = (at: string, problem: string): never => {
    throw new DbcryptError("bad_config", `config ${origin}: ${at} ${problem}`, {
      hint: "see docs/config.md and docs/config.schema.json",
    });
  };
  const root = expectObject(input, "(top level)", fail);
  allowOnly(root, ["$schema", "scheme", "schemeOptions", "preset", "keysTable", "tables"], "(top level)", fail);
  const config: DbcryptConfig = {};
  if (root.scheme !== undefined) {
    const known = knownSchemes();
    if (typeof root.scheme !== "string" || !known.includes(root.scheme)) fail("scheme", `must be one of ${known.map((name) => `"${name}"`).join(", ")}`);
    config.scheme = root.scheme as string;
  }
  if (root.schemeOptions !== undefined) config.schemeOptions = expectObject(root.schemeOptions, "schemeOptions", fail);
  if (root.preset !== undefined) {
    if (!(PRESET_NAMES as readonly unknown[]).includes(root.preset)) fail("preset", `must be one of ${PRESET_NAMES.map((name) => `"${name}"`).join(", ")}`);
    config.preset = root.preset as PresetName;
  }
  if (root.keysTable !== undefined) config.keysTable = expectIdentifier(root.keysTable, "keysTable", fail);
  if (root.tables !== undefined) {
    const tables = expectObject(root.tables, "tables", fail);
    config.tables = {};
    for (const [tableName, tableInput] of Object.entries(tables)) {
      config.tables[tableName] = validateTable(tableInput, `tables["${tableName}"]`, fail);
    }
  }
  return config;
}

type Fail = (at: string, problem: string) => never;

function validateTable(input: unknown, at: string, fail: Fail): TableConfig {
  const raw = expectObject(input, at, fail);
  allowOnly(raw, ["exclude", "rowKey", "deletePolicy", "setOnClear", "columns", "context", "aad", "aadFallback", "rowFlag", "resource"], at, fail);
  const table: TableConfig = {};
  if (raw.aad !== undefined) {
    if (typeof raw.aad !== "string") fail(`${at}.aad`, "must be a string (a template with {column} placeholders)");
    table.aad = raw.aad as string;
  }
  if (raw.aadFallback !== undefined) {
    if (!Array.isArray(raw.aadFallback) || raw.aadFallback.some((item) => typeof item !== "string")) fail(`${at}.aadFallback`, "must be an array of templates");
    table.aadFallback = [...(raw.aadFallback as string[])];
  }
  if (raw.rowFlag !== undefined) table.rowFlag = expectIdentifier(raw.rowFlag, `${at}.rowFlag`, fail);
  if (raw.resource !== undefined) table.resource = expectIdentifier(raw.resource, `${at}.resource`, fail);
  if (raw.exclude !== undefined) table.exclude = expectBoolean(raw.exclude, `${at}.exclude`, fail);
  if (raw.rowKey !== undefined) table.rowKey = expectIdentifierList(raw.rowKey, `${at}.rowKey`, fail);
  if (raw.deletePolicy !== undefined) {
    if (raw.deletePolicy !== "delete-row" && raw.deletePolicy !== "clear") fail(`${at}.deletePolicy`, 'must be "delete-row" or "clear"');
    table.deletePolicy = raw.deletePolicy as TableConfig["deletePolicy"];
  }
  if (raw.setOnClear !== undefined) table.setOnClear = expectIdentifierList(raw.setOnClear, `${at}.setOnClear`, fail);
  if (raw.context !== undefined) {
    const context = expectObject(raw.context, `${at}.context`, fail);
    table.context = Object.fromEntries(Object.entries(context).map(([input, column]) => [input, expectIdentifier(column, `${at}.context.${input}`, fail)]));
  }
  if (raw.columns !== undefined) {
    const columns = expectObject(raw.columns, `${at}.columns`, fail);
    table.columns = {};
    for (const [columnName, columnInput] of Object.entries(columns)) {
      table.columns[columnName] = validateColumn(columnInput, `${at}.columns["${columnName}"]`, fail);
    }
  }
  return table;
}

function validateColumn(input: unknown, at: string, fail: Fail): ColumnConfig {
  const raw = expectObject(input, at, fail);
  allowOnly(raw, ["keyIdColumn", "keepPlaintext", "clearTo", "exclude", "cellFormat"], at, fail);
  const column: ColumnConfig = {};
  if (raw.cellFormat !== undefined) column.cellFormat = expectIdentifier(raw.cellFormat, `${at}.cellFormat`, fail);
  if (raw.keyIdColumn !== undefined) column.keyIdColumn = expectIdentifier(raw.keyIdColumn, `${at}.keyIdColumn`, fail);
  if (raw.keepPlaintext !== undefined) {
    if (!PLAINTEXT_RULES.includes(raw.keepPlaintext as PlaintextRule)) fail(`${at}.keepPlaintext`, `must be one of ${PLAINTEXT_RULES.join(", ")}`);
    column.keepPlaintext = raw.keepPlaintext as PlaintextRule;
  }
  if (raw.clearTo !== undefined) {
    if (raw.clearTo !== null && typeof raw.clearTo !== "string") fail(`${at}.clearTo`, "must be a string or null");
    column.clearTo = raw.clearTo as string | null;
  }
  if (raw.exclude !== undefined) column.exclude = expectBoolean(raw.exclude, `${at}.exclude`, fail);
  return column;
}

function expectObject(value: unknown, at: string, fail: Fail): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(at, "must be an object");
  return value as Record<string, unknown>;
}

function allowOnly(value: Record<string, unknown>, allowed: string[], at: string, fail: Fail): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(at, `has unknown key "${key}" (allowed: ${allowed.join(", ")})`);
  }
}

function expectBoolean(value: unknown, at: string, fail: Fail): boolean {
  if (typeof value !== "boolean") fail(at, "must be true or false");
  return value as boolean;
}

function expectIdentifier(value: unknown, at: string, fail: Fail): string {
  if (typeof value !== "string" || value.length === 0) fail(at, "must be a non-empty string");
  return value as string;
}

function expectIdentifierList(value: unknown, at: string, fail: Fail): string[] {
  if (!Array.isArray(value) || value.length === 0) fail(at, "must be a non-empty array of column names");
  return (value as unknown[]).map((item, index) => expectIdentifier(item, `${at}[${index}]`, fail));
}
