import { DEFAULT_SCHEME, schemeNamed } from "../crypto/schemes/registry.js";
import { DbcryptError } from "../errors.js";
import { CODER_MARKER_TABLES, CODER_PRESET, type PresetTableRules } from "./coder-preset.js";
import type { ColumnConfig, DbcryptConfig, TableConfig } from "./config-file.js";
import { appPresetNamed, type AppPreset } from "./app-presets.js";
import type { ValueScheme } from "../crypto/schemes/value-scheme.js";
import type {
  CatalogColumn,
  CatalogTable,
  DeletePolicy,
  EncryptedColumn,
  EncryptedTable,
  RefusedTable,
  SchemaPlan,
  SchemaWarning,
} from "./model.js";
import { tableLabel } from "./model.js";

const KEY_ID_SUFFIX = "_key_id";

/**
 * Turns catalog facts into the list of encrypted columns: foreign keys to the keys table first
 * (they are what blocks a revoke, so missing one is the bug Coder's CLI has in #25381), then the
 * `<col>` / `<col>_key_id` naming rule for schemas without such foreign keys, then the config file.
 */
export function planSchema(catalog: CatalogTable[], config: DbcryptConfig, keysTable: string): SchemaPlan {
  const byLabel = new Map(catalog.map((table) => [tableLabel(table), table]));
  checkConfigNamesExist(config, byLabel);
  const preset = choosePreset(catalog, config);
  const appPreset = appPresetNamed(preset);
  const schemeName = config.scheme ?? appPreset?.scheme;
  const schemeOptions = appPreset?.schemeOptions === undefined ? config.schemeOptions : { ...appPreset.schemeOptions, ...config.schemeOptions };
  const scheme = schemeNamed(schemeName ?? DEFAULT_SCHEME.name, schemeOptions);
  if ((scheme.keyIdSource === "prefix" || scheme.keyIdSource === "embedded") && scheme.keyIdOfCell === undefined) {
    throw new DbcryptError("internal", `value scheme "${scheme.name}" keeps key ids inside the values but cannot read them (no keyIdOfCell)`);
  }
  if (scheme.keyIdSource === "trial" && scheme.looksSealed === undefined) {
    throw new DbcryptError("internal", `value scheme "${scheme.name}" finds keys by trial but cannot tell ciphertext from plaintext (no looksSealed)`);
  }
  const keyIdsInValues = scheme.keyIdSource !== "column";
  const tables: EncryptedTable[] = [];
  const refused: RefusedTable[] = [];
  const warnings: SchemaWarning[] = [];
  const walkedResources = new Set<string>();
  const presetTables = appPreset === undefined ? new Map<string, TableConfig>() : confirmAppPreset(preset, appPreset, byLabel, warnings);
  for (const table of catalog) {
    if (table.name === keysTable) continue;
    const label = tableLabel(table);
    const tableConfig = mergeTableConfig(presetTables.get(label) ?? presetTables.get(table.name), config.tables?.[label] ?? config.tables?.[table.name]);
    if (tableConfig?.exclude) continue;
    const presetRules = preset === "coder" ? CODER_PRESET[table.name] : undefined;
    const columns = encryptedColumnsOf(table, tableConfig, presetRules, keyIdsInValues);
    const unmapped = unmappedForeignKeys(table, columns, tableConfig);
    if (unmapped.length > 0) {
      // A key-id column dbcrypt cannot pair with its data would block every revoke later, after
      // the data was rewritten (Coder's #25381); refuse it up front instead.
      refused.push({
        ref: table,
        columns: unmapped,
        reason: `has key-id column(s) ${unmapped.join(", ")} with a foreign key to ${keysTable} but no text data column named without "_key_id"; map them with "keyIdColumn" in the config file, or exclude the table`,
      });
      continue;
    }
    if (columns.length === 0) continue;
    // SQLite lets PRIMARY KEY columns hold NULL; a unique NOT NULL key always addresses every row.
    const notNullPrimaryKey = table.primaryKey?.every((name) => table.columns.some((column) => column.name === name && !column.nullable))
      ? table.primaryKey
      : undefined;
    const rowKey = tableConfig?.rowKey ?? notNullPrimaryKey ?? table.uniqueNotNullKeys[0] ?? table.primaryKey;
    if (rowKey === undefined || rowKey.length === 0) {
      refused.push({
        ref: table,
        columns: columns.map((column) => column.column),
        reason: "has no primary key or unique NOT NULL key, so its rows cannot be addressed safely",
      });
      continue;
    }
    const rowKeyTypes = rowKey.map((name) => requireColumn(table, name, `rowKey of ${label}`).dataType);
    const context = contextOf(table, tableConfig, scheme, columns, config.aadFallbackEmpty === true);
    if (typeof context === "string") {
      refused.push({ ref: table, columns: columns.map((column) => column.column), reason: context });
      continue;
    }
    for (const column of columns) {
      const cellFormat = tableConfig?.columns?.[column.column]?.cellFormat;
      if (cellFormat !== undefined) column.cellFormat = cellFormat;
    }
    if (tableConfig?.resource !== undefined) walkedResources.add(tableConfig.resource);
    tables.push({
      ref: { schema: table.schema, name: table.name },
      rowKey,
      rowKeyTypes,
      columns,
      deletePolicy: deletePolicyOf(table, tableConfig, presetRules),
      ...context,
    });
    if (preset === "coder") warnings.push(...unknownToPreset(table, label, columns, tableConfig, presetRules));
  }
  warnings.push(...unwalkedResources(scheme, walkedResources));
  return { tables, refused, warnings, preset, scheme };
}

/**
 * Resources the Kubernetes configuration encrypts that no walked table holds (Obot's MCP audit
 * logs, say): their values stay under the old keys, so dropping those keys from the application's
 * configuration would make them unreadable. Said only where tables name their resource.
 */
function unwalkedResources(scheme: ValueScheme, walked: Set<string>): SchemaWarning[] {
  if (scheme.configuredResources === undefined || walked.size === 0) return [];
  return scheme
    .configuredResources()
    .filter((resource) => !walked.has(resource) && resource !== "*.*" && !resource.startsWith("*."))
    .map((resource) => ({
      ref: { schema: undefined, name: resource },
      column: "",
      message: `the encryption config covers ${resource}, which no table dbcrypt walks holds: its values stay under their keys, so keep the old keys in the application's configuration until they are rotated too (name the table under "tables" with its "aad" and "rowFlag")`,
    }));
}

/**
 * Discovered columns the Coder preset does not know (Coder adds encrypted columns often). Their rule
 * is the default "never", so `rotate` encrypts even a blank value that Coder may keep as plaintext
 * with a NULL key id. Naming keepPlaintext for the column in the config file silences the warning.
 */
function unknownToPreset(
  table: CatalogTable,
  label: string,
  columns: EncryptedColumn[],
  tableConfig: TableConfig | undefined,
  presetRules: PresetTableRules | undefined,
): SchemaWarning[] {
  const warnings: SchemaWarning[] = [];
  for (const column of columns) {
    if (column.source === "config" || presetRules?.columns.includes(column.column)) continue;
    if (tableConfig?.columns?.[column.column]?.keepPlaintext !== undefined) continue;
    let message =
      `${label}.${column.column}: not in dbcrypt's Coder preset; every non-NULL value will be encrypted ` +
      `(Coder may keep blank values plaintext); set tables["${label}"].columns["${column.column}"].keepPlaintext in the config file (dbcrypt.config.json)`;
    // A table the preset does not name gets the default delete policy, "clear" (deletePolicyOf).
    if (presetRules === undefined && tableConfig?.deletePolicy === undefined) {
      message += `; delete will clear it to ${column.clearTo === null ? "NULL" : JSON.stringify(column.clearTo)} in place unless tables["${label}"].deletePolicy says otherwise`;
    }
    warnings.push({ ref: { schema: table.schema, name: table.name }, column: column.column, message });
  }
  return warnings;
}

/** Foreign-key columns to the keys table that no encrypted column uses and the config did not exclude. */
function unmappedForeignKeys(table: CatalogTable, columns: EncryptedColumn[], tableConfig: TableConfig | undefined): string[] {
  const mapped = new Set(columns.map((column) => column.keyIdColumn));
  const excluded = new Set(
    Object.entries(tableConfig?.columns ?? {}).filter(([, column]) => column.exclude).map(([name]) => `${name}${KEY_ID_SUFFIX}`),
  );
  return table.keysTableForeignKeys.map((foreignKey) => foreignKey.column).filter((column) => !mapped.has(column) && !excluded.has(column));
}

/**
 * An application preset's tables as far as the database has them: a listed table or column that
 * is missing is a warning (the application's version may not have it yet), never an error.
 */
function confirmAppPreset(name: string, preset: AppPreset, byLabel: Map<string, CatalogTable>, warnings: SchemaWarning[]): Map<string, TableConfig> {
  const confirmed = new Map<string, TableConfig>();
  for (const [tableName, tableConfig] of Object.entries(preset.tables)) {
    const table = byLabel.get(tableName);
    if (table === undefined) {
      warnings.push({ ref: { schema: undefined, name: tableName }, column: "", message: `preset ${name} lists table ${tableName}, which the database does not have; it is skipped` });
      continue;
    }
    const columns: Record<string, ColumnConfig> = {};
    for (const [columnName, columnConfig] of Object.entries(tableConfig.columns ?? {})) {
      if (table.columns.some((column) => column.name === columnName)) columns[columnName] = columnConfig;
      else warnings.push({ ref: table, column: columnName, message: `preset ${name} lists column ${tableName}.${columnName}, which the database does not have; it is skipped` });
    }
    if (Object.keys(columns).length > 0) confirmed.set(tableName, { ...tableConfig, columns });
  }
  return confirmed;
}

/** The config file's entry for a table over the preset's: its columns and settings win. */
function mergeTableConfig(fromPreset: TableConfig | undefined, fromConfig: TableConfig | undefined): TableConfig | undefined {
  if (fromPreset === undefined) return fromConfig;
  if (fromConfig === undefined) return fromPreset;
  const columns = { ...fromPreset.columns, ...fromConfig.columns };
  const context = fromConfig.context ?? fromPreset.context;
  return { ...fromPreset, ...fromConfig, columns, ...(context === undefined ? {} : { context }) };
}

/**
 * The row-context columns the scheme needs for this table, or why the table cannot be processed.
 * A mapping the scheme does not use is a config error: it would suggest the cells depend on a
 * column they do not.
 */
function contextOf(table: CatalogTable, tableConfig: TableConfig | undefined, scheme: ValueScheme, columns: EncryptedColumn[], tryEmptyAad: boolean): Pick<EncryptedTable, "context" | "aad" | "rowFlag"> | string {
  const required = scheme.contextInputs ?? [];
  const usable = [...required, ...(scheme.optionalContextInputs ?? [])];
  const mapping = tableConfig?.context ?? {};
  const refuse = (what: string, input: string): never => {
    throw new DbcryptError("bad_config", `${tableLabel(table)}: ${what} gives the value scheme "${scheme.name}" input "${input}", which it does not use (it uses: ${usable.join(", ") || "none"})`, {
      hint: `remove ${what} from the table in the config file, or choose the scheme that uses it`,
    });
  };
  for (const input of Object.keys(mapping)) if (!usable.includes(input)) refuse(`context.${input}`, input);
  if (mapping.encrypted !== undefined) {
    // The flag is written too, and counted by the database census: only rowFlag says all of that.
    throw new DbcryptError("bad_config", `${tableLabel(table)}: name the row flag column with "rowFlag", not context.encrypted`, { hint: 'replace "context": {"encrypted": …} with "rowFlag": … in the config file' });
  }
  if (tableConfig?.aad !== undefined && !usable.includes("aad")) refuse("aad", "aad");
  if (tableConfig?.rowFlag !== undefined && !usable.includes("encrypted")) refuse("rowFlag", "encrypted");
  if (columns.every((column) => column.keyIdColumn !== undefined)) return { context: [] };
  const context: EncryptedTable["context"] = [];
  const hasColumn = (name: string) => table.columns.some((column) => column.name === name);
  for (const input of usable) {
    const columnName = mapping[input];
    if (columnName === undefined) {
      if (required.includes(input)) return `needs the column holding each row's ${input} for value scheme "${scheme.name}"; name it under tables["${tableLabel(table)}"].context.${input} in the config file`;
      continue;
    }
    if (!hasColumn(columnName)) return `has no column ${columnName}, which its context.${input} names; fix the config file or the preset's mapping`;
    context.push({ input, column: columnName });
  }
  const result: Pick<EncryptedTable, "context" | "aad" | "rowFlag"> = { context };
  if (tableConfig?.rowFlag !== undefined) {
    if (!hasColumn(tableConfig.rowFlag)) return `has no column ${tableConfig.rowFlag}, which its rowFlag names`;
    context.push({ input: "encrypted", column: tableConfig.rowFlag });
    result.rowFlag = tableConfig.rowFlag;
  }
  if (tableConfig?.aad !== undefined) {
    const templates = [tableConfig.aad, ...(tableConfig.aadFallback ?? [])];
    for (const name of new Set(templates.flatMap((template) => [...template.matchAll(/\{([^{}]+)\}/g)].map((match) => match[1] as string)))) {
      if (!hasColumn(name)) return `has no column ${name}, which its additional-data template names`;
      context.push({ input: `column:${name}`, column: name });
    }
    result.aad = { template: tableConfig.aad, fallbacks: [...(tableConfig.aadFallback ?? []), ...(tryEmptyAad ? [""] : [])] };
  }
  return result;
}

function choosePreset(catalog: CatalogTable[], config: DbcryptConfig): SchemaPlan["preset"] {
  if (config.preset !== undefined && config.preset !== "auto") return config.preset;
  const looksLikeCoder = catalog.some(
    (table) => CODER_MARKER_TABLES.includes(table.name) && table.keysTableForeignKeys.length > 0,
  );
  return looksLikeCoder ? "coder" : "none";
}

function encryptedColumnsOf(
  table: CatalogTable,
  tableConfig: TableConfig | undefined,
  presetRules: PresetTableRules | undefined,
  keyIdsInValues: boolean,
): EncryptedColumn[] {
  const found = new Map<string, EncryptedColumn>();
  const columnByName = new Map(table.columns.map((column) => [column.name, column]));
  const add = (dataColumn: CatalogColumn, keyIdColumn: string | undefined, source: EncryptedColumn["source"]) => {
    const presetClear = presetRules?.clearTo && dataColumn.name in presetRules.clearTo ? (presetRules.clearTo[dataColumn.name] ?? null) : undefined;
    found.set(dataColumn.name, {
      column: dataColumn.name,
      keyIdColumn,
      keepPlaintext: presetRules?.keepPlaintext?.[dataColumn.name] ?? "never",
      // A preset's null is for the nullable column of current Coder; a schema version where the
      // column is NOT NULL gets the column default instead of an error the operator never caused.
      clearTo: presetClear === undefined || (presetClear === null && !dataColumn.nullable) ? defaultClearValue(dataColumn) : presetClear,
      source,
    });
  };
  // Under a scheme that keeps key ids inside the values, columns are named in the config only: a
  // `<col>_key_id` column found here would mix the two ways of finding a value's key.
  const discovered = keyIdsInValues ? [] : table.keysTableForeignKeys;
  for (const foreignKey of discovered) {
    if (!foreignKey.column.endsWith(KEY_ID_SUFFIX)) continue;
    const dataColumn = columnByName.get(foreignKey.column.slice(0, -KEY_ID_SUFFIX.length));
    if (dataColumn?.isText) add(dataColumn, foreignKey.column, "foreign-key");
  }
  const foreignKeyColumns = new Set(table.keysTableForeignKeys.map((foreignKey) => foreignKey.column));
  for (const keyIdColumn of keyIdsInValues ? [] : table.columns) {
    if (!keyIdColumn.isText || !keyIdColumn.name.endsWith(KEY_ID_SUFFIX)) continue;
    if (foreignKeyColumns.has(keyIdColumn.name)) continue;
    const dataColumn = columnByName.get(keyIdColumn.name.slice(0, -KEY_ID_SUFFIX.length));
    if (dataColumn?.isText && !found.has(dataColumn.name)) add(dataColumn, keyIdColumn.name, "naming-rule");
  }
  for (const [columnName, columnConfig] of Object.entries(tableConfig?.columns ?? {})) {
    // Checked before exclude too: a misspelt exclude must fail, not leave the real column in.
    const dataColumn = requireColumn(table, columnName, "config");
    if (columnConfig.exclude) {
      found.delete(columnName);
      continue;
    }
    if (keyIdsInValues && columnConfig.keyIdColumn !== undefined) {
      throw new DbcryptError("bad_config", `${tableLabel(table)}.${columnName}: keyIdColumn does not apply, the value scheme keeps key ids inside the values`, {
        hint: "remove keyIdColumn from this column in the config file",
      });
    }
    // A scheme that keeps key ids inside the values has no key-id column to find or require.
    const keyIdColumn = keyIdsInValues ? undefined : (columnConfig.keyIdColumn ?? found.get(columnName)?.keyIdColumn ?? `${columnName}${KEY_ID_SUFFIX}`);
    if (keyIdColumn !== undefined) requireColumn(table, keyIdColumn, "config");
    if (!found.has(columnName)) add(dataColumn, keyIdColumn, "config");
    const column = found.get(columnName) as EncryptedColumn;
    column.keyIdColumn = keyIdColumn;
    if (columnConfig.keepPlaintext !== undefined) column.keepPlaintext = columnConfig.keepPlaintext;
    if (columnConfig.clearTo !== undefined) column.clearTo = columnConfig.clearTo;
  }
  for (const column of found.values()) {
    if (column.clearTo === null && columnByName.get(column.column)?.nullable === false) {
      throw new DbcryptError("bad_config", `${tableLabel(table)}.${column.column} is NOT NULL but would be cleared to null`, {
        hint: "set clearTo to a string for this column in the config file",
      });
    }
  }
  return [...found.values()].sort((a, b) => a.column.localeCompare(b.column));
}

function defaultClearValue(column: CatalogColumn): string | null {
  return column.nullable ? null : "";
}

function deletePolicyOf(
  table: CatalogTable,
  tableConfig: TableConfig | undefined,
  presetRules: PresetTableRules | undefined,
): DeletePolicy {
  const setOnClear = tableConfig?.setOnClear;
  for (const column of setOnClear ?? []) requireColumn(table, column, "setOnClear");
  if (tableConfig?.deletePolicy === "delete-row") return { action: "delete-row" };
  if (tableConfig?.deletePolicy === "clear") return { action: "clear", setTimestampColumns: setOnClear ?? [] };
  const base = presetRules?.deletePolicy ?? { action: "clear", setTimestampColumns: [] };
  if (base.action === "clear" && setOnClear !== undefined) return { action: "clear", setTimestampColumns: setOnClear };
  if (base.action === "clear") {
    return { action: "clear", setTimestampColumns: base.setTimestampColumns.filter((name) => table.columns.some((c) => c.name === name)) };
  }
  return base;
}

function requireColumn(table: CatalogTable, name: string, where: string): CatalogColumn {
  const column = table.columns.find((candidate) => candidate.name === name);
  if (column === undefined) {
    throw new DbcryptError("bad_config", `${where} names column ${tableLabel(table)}.${name}, which does not exist`, {
      hint: "fix the column name in the config file",
    });
  }
  return column;
}

function checkConfigNamesExist(config: DbcryptConfig, byLabel: Map<string, CatalogTable>): void {
  const names = new Set([...byLabel.keys(), ...[...byLabel.values()].map((table) => table.name)]);
  for (const tableName of Object.keys(config.tables ?? {})) {
    if (!names.has(tableName)) {
      throw new DbcryptError("bad_config", `config names table ${tableName}, which does not exist in the database`, {
        hint: "fix or remove that entry under \"tables\" in the config file",
      });
    }
  }
}
