import type { DatabaseReader, Dialect, KeyRow } from "../db/dialect.js";
import { DEFAULT_POSTGRES_LIMITS, DEFAULT_SQLITE_BUSY_TIMEOUT_MS, type PostgresSessionLimits } from "../db/session-limits.js";
import { parseDatabaseTarget } from "../db/target.js";
import { DbcryptError } from "../errors.js";
import { loadConfigFile, type DbcryptConfig, type PresetName } from "../schema/config-file.js";
import { planSchema } from "../schema/discover.js";
import type { SchemaPlan } from "../schema/model.js";
import { tableLabel } from "../schema/model.js";
import type { Partition } from "../db/partition.js";

export const DEFAULT_KEYS_TABLE = "dbcrypt_keys";

export interface SessionRequest {
  database: string | undefined;
  configPath: string | undefined;
  /** --preset: wins over the config file's. */
  preset?: PresetName | undefined;
  /** Scheme options from flags (--encryption-config…): win over the config file's. */
  schemeOptions?: Record<string, unknown>;
  /** --aad-fallback empty: every table's additional data is also tried empty. */
  aadFallbackEmpty?: boolean;
  keysTable: string | undefined;
  command: string;
  /** status, keys list and dry runs open the database read-only, so they can never write. */
  readOnly: boolean;
  limits?: SessionLimits;
}

export interface SessionLimits {
  postgres: PostgresSessionLimits;
  sqliteBusyTimeoutMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { postgres: DEFAULT_POSTGRES_LIMITS, sqliteBusyTimeoutMs: DEFAULT_SQLITE_BUSY_TIMEOUT_MS };

/** What status, keys list and dry runs get: a database they can only read (by type, and on the server). */
export interface ReadSession {
  dialect: DatabaseReader;
  config: DbcryptConfig;
  configPath: string | undefined;
}

export interface Session extends ReadSession {
  dialect: Dialect;
}

/** Config first, then the connection: a bad config file fails before anything is opened. */
export async function openSession(request: SessionRequest): Promise<Session> {
  const loaded = loadConfigFile(request.configPath);
  const config: DbcryptConfig = request.preset === undefined ? { ...loaded.config } : { ...loaded.config, preset: request.preset };
  if (request.schemeOptions !== undefined && Object.keys(request.schemeOptions).length > 0) config.schemeOptions = { ...config.schemeOptions, ...request.schemeOptions };
  if (request.aadFallbackEmpty) config.aadFallbackEmpty = true;
  const path = loaded.path;
  const keysTable = request.keysTable ?? config.keysTable ?? DEFAULT_KEYS_TABLE;
  const target = parseDatabaseTarget(request.database);
  const limits = request.limits ?? DEFAULT_SESSION_LIMITS;
  // Each dialect loads its driver: only the one this database needs is imported.
  const dialect: Dialect =
    target.kind === "postgres"
      ? await (await import("../db/postgres.js")).PostgresDialect.connect(target.url, keysTable, { command: request.command, limits: limits.postgres, readOnly: request.readOnly })
      : (await import("../db/sqlite.js")).SqliteDialect.open(target.path, keysTable, { readOnly: request.readOnly, busyTimeoutMs: limits.sqliteBusyTimeoutMs });
  return { dialect, config, configPath: path };
}

export async function requireKeysTable(dialect: DatabaseReader): Promise<void> {
  if (!(await dialect.keysTableExists())) {
    throw new DbcryptError("keys_table_missing", `the database has no ${dialect.keysTable} table`, {
      hint: `check --db and --keys-table; to adopt the scheme in a new application run \`dbcrypt keys init\``,
    });
  }
}

export async function loadSchema(session: ReadSession): Promise<SchemaPlan> {
  return planSchema(await session.dialect.introspect(), session.config, session.dialect.keysTable);
}

/** Write commands refuse a schema with an encrypted table they could not walk safely. */
export function assertNoRefusedTables(plan: SchemaPlan): void {
  if (plan.refused.length === 0) return;
  throw new DbcryptError("schema_refused", `${plan.refused.length} table(s) with encrypted columns cannot be processed safely`, {
    hint: "add a primary key, or name a unique NOT NULL rowKey for the table in dbcrypt.config.json, or exclude it there",
    details: plan.refused.map((table) => `${tableLabel(table.ref)} (${table.columns.join(", ")}) ${table.reason}`),
    subject: { tables: plan.refused.map((table) => tableLabel(table.ref)) },
  });
}

export interface WritePreparation {
  schema: SchemaPlan;
  /** A dry run: checks and a plan only, so nothing that writes anywhere (a KMS Encrypt included) may happen. */
  dryRun: boolean;
  /** The keys table as read under the run lock. */
  keys: KeyRow[];
}

/**
 * The preamble every writing command shares: the keys table exists, every encrypted table can be
 * walked, and the run lock is held before the keys table is read, so what the checks see cannot
 * be changed by another dbcrypt run.
 */
export async function withWritePreparation<T>(session: Session, command: string, body: (prepared: WritePreparation) => Promise<T>, partition?: Partition): Promise<T> {
  const schema = await checkedSchema(session);
  try {
    const lock = await session.dialect.acquireRunLock(command, partition);
    try {
      return await body({ schema, dryRun: false, keys: await session.dialect.readKeys() });
    } finally {
      await lock.release();
    }
  } finally {
    await schema.scheme.close?.();
  }
}

/** The same preamble for a dry run: no lock (it writes nothing), on a session that cannot write. */
export async function withDryRunPreparation<T>(session: ReadSession, body: (prepared: WritePreparation) => Promise<T>): Promise<T> {
  const schema = await checkedSchema(session);
  try {
    return await body({ schema, dryRun: true, keys: await session.dialect.readKeys() });
  } finally {
    await schema.scheme.close?.();
  }
}

async function checkedSchema(session: ReadSession): Promise<SchemaPlan> {
  await requireKeysTable(session.dialect);
  const schema = await loadSchema(session);
  assertNoRefusedTables(schema);
  return schema;
}
