/**
 * Seeds the Coder-shaped schema (coder-schema.ts) with realistic rows, encrypted the way Coder
 * writes them (reference §3.3), and records every seeded plaintext so tests can prove that after an
 * operation every value still decrypts to what was put in.
 */
import { randomUUID } from "node:crypto";
import { openValue, sealValue } from "./coder-crypto.js";
import { encryptedColumnsOf, primaryKeyOf } from "./coder-schema.js";
import { quoteIdent, type TestDb } from "./test-db.js";

export interface SeedKey {
  bytes: Buffer;
  id: string;
}

export interface SeedOptions {
  users: number;
  /** Encrypt with this key (and register it in dbcrypt_keys); null or absent seeds plaintext. */
  key?: SeedKey | null;
  /** Adds a Coder-style system user (is_system = true). Defaults to true. */
  includeSystemUser?: boolean;
}

export interface ManifestEntry {
  table: string;
  /** Primary key values, stringified, in primary-key order. */
  pk: Record<string, string>;
  column: string;
  keyIdColumn: string;
  /** What the column holds once decrypted; null for a NULL value. */
  plaintext: string | null;
}

export interface SeededUser {
  id: string;
  username: string;
  isSystem: boolean;
  deleted: boolean;
}

export interface SeedManifest {
  entries: ManifestEntry[];
  /** Rows inserted by this seed, per table (dbcrypt_keys excluded). */
  rowCounts: Record<string, number>;
  users: SeededUser[];
}

export interface ColumnState {
  pk: Record<string, string>;
  value: string | null;
  keyId: string | null;
}

export interface ExpectedValues {
  /** null: every value must be plaintext. */
  keyId: string | null;
  /** When given, every encrypted value must decrypt with it to the seeded plaintext. */
  key?: Buffer;
}

type Row = Record<string, unknown>;

/**
 * How Coder stores a blank value (§3.3). "Blank" is empty after trimming; the product trims ASCII
 * whitespace only, and so do we, so both sides agree.
 *  - always: encrypted even when empty
 *  - blank: blank stays plaintext with a NULL key id
 *  - blank-or-empty-object: blank or '{}' is stored as '{}' with a NULL key id
 */
type BlankRule = "always" | "blank" | "blank-or-empty-object";

const BLANK_RULES: Record<string, BlankRule> = {
  mcp_server_configs: "blank",
  mcp_server_user_tokens: "blank",
  ai_provider_keys: "blank",
  chat_mcp_servers: "blank-or-empty-object",
};

const ASCII_BLANK = /^[ \t\n\r\v\f]*$/;
const EMPTY_OBJECT = /^[ \t\n\r\v\f]*\{\}[ \t\n\r\v\f]*$/;
const MAX_PARAMS_PER_STATEMENT = 900; // under SQLite's historical limit of 999
const MAX_REPORTED_PROBLEMS = 25;

export async function seedCoderData(db: TestDb, opts: SeedOptions): Promise<SeedManifest> {
  const key = opts.key ?? null;
  await db.exec("BEGIN");
  try {
    if (key) await ensureActiveKeyRow(db, key);
    const builder = new SeedBuilder(key);
    const users = planUsers(opts.users, opts.includeSystemUser ?? true);
    const mcpConfigIds = addSharedRows(builder, await nextCryptoKeySequence(db));
    users.forEach((user, index) => addUserRows(builder, user, index, mcpConfigIds[0]));
    for (const [table, rows] of builder.rowsByTable) await insertRows(db, table, rows);
    await db.exec("COMMIT");
    return { entries: builder.entries, rowCounts: builder.rowCounts(), users };
  } catch (error) {
    await db.exec("ROLLBACK");
    throw error;
  }
}

/** Inserts the key's active row in dbcrypt_keys as Coder does (number = max + 1, canary 'coder'). */
export async function ensureActiveKeyRow(db: TestDb, key: SeedKey): Promise<void> {
  const existing = await db.query<{ active_key_digest: string | null }>(
    "SELECT active_key_digest FROM dbcrypt_keys WHERE active_key_digest = $1 OR revoked_key_digest = $1",
    [key.id],
  );
  if (existing.some((row) => row.active_key_digest === null)) {
    throw new Error(`key ${key.id} is revoked in dbcrypt_keys; Coder never re-activates a revoked key`);
  }
  if (existing.length > 0) return;
  const [next] = await db.query<{ number: number }>("SELECT COALESCE(MAX(number), 0) + 1 AS number FROM dbcrypt_keys");
  await db.query(
    "INSERT INTO dbcrypt_keys (number, active_key_digest, created_at, test) VALUES ($1, $2, CURRENT_TIMESTAMP, $3)",
    [next?.number ?? 1, key.id, sealValue(key.bytes, "coder")],
  );
}

export async function readColumnStates(
  db: TestDb,
  table: string,
  column: string,
  keyIdColumn: string,
  pkCols: readonly string[],
): Promise<ColumnState[]> {
  const pkList = pkCols.map(quoteIdent).join(", ");
  const rows = await db.query(
    `SELECT ${pkList}, ${quoteIdent(column)} AS dbcrypt_value, ${quoteIdent(keyIdColumn)} AS dbcrypt_key_id ` +
      `FROM ${quoteIdent(table)} ORDER BY ${pkList}`,
  );
  return rows.map((row) => ({
    pk: Object.fromEntries(pkCols.map((pkCol) => [pkCol, String(row[pkCol])])),
    value: (row.dbcrypt_value as string | null) ?? null,
    keyId: (row.dbcrypt_key_id as string | null) ?? null,
  }));
}

/**
 * Checks every manifest entry against the database. Blank values that Coder keeps as plaintext may
 * be either plaintext with a NULL key id or encrypted. Errors name table, column and primary key but
 * never a value.
 */
export async function assertAllValues(db: TestDb, manifest: SeedManifest, expect: ExpectedValues): Promise<void> {
  const problems: string[] = [];
  for (const entries of groupByColumn(manifest.entries)) {
    const first = entries[0];
    if (!first) continue;
    const states = await readColumnStates(db, first.table, first.column, first.keyIdColumn, primaryKeyOf(first.table));
    const stateByPk = new Map(states.map((state) => [pkLabel(state.pk), state]));
    for (const entry of entries) {
      const state = stateByPk.get(pkLabel(entry.pk));
      const problem = state ? checkValue(entry, state, expect) : "row is missing";
      if (problem) problems.push(`${entry.table}.${entry.column} ${pkLabel(entry.pk)}: ${problem}`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, MAX_REPORTED_PROBLEMS);
    const more = problems.length > shown.length ? `\n… and ${problems.length - shown.length} more` : "";
    throw new Error(
      `${problems.length} of ${manifest.entries.length} seeded values are not as expected:\n${shown.join("\n")}${more}`,
    );
  }
}

/** Whether Coder would store this plaintext as plaintext (NULL key id) in this table. */
export function coderKeepsPlaintext(table: string, plaintext: string | null): boolean {
  if (plaintext === null) return true;
  switch (BLANK_RULES[table] ?? "always") {
    case "always":
      return false;
    case "blank":
      return ASCII_BLANK.test(plaintext);
    case "blank-or-empty-object":
      return ASCII_BLANK.test(plaintext) || EMPTY_OBJECT.test(plaintext);
  }
}

function checkValue(entry: ManifestEntry, state: ColumnState, expect: ExpectedValues): string | null {
  if (entry.plaintext === null) {
    return state.value === null && state.keyId === null ? null : `expected NULL value and key id, ${describe(state)}`;
  }
  const plaintextAllowed = expect.keyId === null || coderKeepsPlaintext(entry.table, entry.plaintext);
  if (state.keyId === null && plaintextAllowed) {
    return state.value === entry.plaintext ? null : "plaintext value differs from the seeded one";
  }
  if (state.keyId !== expect.keyId) return `expected key id ${keyIdText(expect.keyId)}, ${describe(state)}`;
  if (state.value === null) return "encrypted value is NULL";
  if (!expect.key) return null;
  let decrypted: string;
  try {
    decrypted = openValue(expect.key, state.value);
  } catch {
    return `value does not decrypt with key ${keyIdText(expect.keyId)}`;
  }
  return decrypted === entry.plaintext ? null : "decrypts to something other than the seeded value";
}

function describe(state: ColumnState): string {
  return `found ${state.value === null ? "a NULL" : "a non-NULL"} value with key id ${keyIdText(state.keyId)}`;
}

function keyIdText(keyId: string | null): string {
  return keyId === null ? "NULL" : `'${keyId}'`;
}

function pkLabel(pk: Record<string, string>): string {
  return JSON.stringify(pk);
}

function groupByColumn(entries: ManifestEntry[]): ManifestEntry[][] {
  const groups = new Map<string, ManifestEntry[]>();
  for (const entry of entries) {
    const groupKey = `${entry.table}.${entry.column}`;
    const group = groups.get(groupKey) ?? [];
    group.push(entry);
    groups.set(groupKey, group);
  }
  return [...groups.values()];
}

/** Collects rows per table, encrypting as Coder would and recording each value in the manifest. */
class SeedBuilder {
  readonly rowsByTable = new Map<string, Row[]>();
  readonly entries: ManifestEntry[] = [];

  constructor(private readonly key: SeedKey | null) {}

  /** `row` holds plaintext in the encrypted columns; their key-id columns are filled in here. */
  add(table: string, row: Row): void {
    const stored: Row = { ...row };
    const pk = Object.fromEntries(primaryKeyOf(table).map((pkCol) => [pkCol, String(row[pkCol])]));
    for (const { column, keyIdColumn } of encryptedColumnsOf(table)) {
      const plaintext = storedPlaintext(table, row[column] as string | null);
      const { value, keyId } = this.encrypt(table, plaintext);
      stored[column] = value;
      stored[keyIdColumn] = keyId;
      this.entries.push({ table, pk, column, keyIdColumn, plaintext });
    }
    const rows = this.rowsByTable.get(table) ?? [];
    rows.push(stored);
    this.rowsByTable.set(table, rows);
  }

  rowCounts(): Record<string, number> {
    return Object.fromEntries([...this.rowsByTable].map(([table, rows]) => [table, rows.length]));
  }

  private encrypt(table: string, plaintext: string | null): { value: string | null; keyId: string | null } {
    if (!this.key || plaintext === null || coderKeepsPlaintext(table, plaintext)) {
      return { value: plaintext, keyId: null };
    }
    return { value: sealValue(this.key.bytes, plaintext), keyId: this.key.id };
  }
}

/** chat_mcp_servers normalises a blank or '{}' header set to exactly '{}'. */
function storedPlaintext(table: string, plaintext: string | null): string | null {
  if (plaintext !== null && BLANK_RULES[table] === "blank-or-empty-object" && coderKeepsPlaintext(table, plaintext)) {
    return "{}";
  }
  return plaintext;
}

function planUsers(count: number, includeSystemUser: boolean): SeededUser[] {
  const users = Array.from({ length: count }, (_, index) => ({
    id: randomUUID(),
    username: `user-${index}`,
    isSystem: false,
    deleted: index % 4 === 3,
  }));
  if (includeSystemUser) users.push({ id: randomUUID(), username: "prebuilds", isSystem: true, deleted: false });
  return users;
}

async function nextCryptoKeySequence(db: TestDb): Promise<number> {
  const [row] = await db.query<{ next: number }>("SELECT COALESCE(MAX(sequence), 0) + 1 AS next FROM crypto_keys");
  return Number(row?.next ?? 1);
}

/** Rows not owned by a user. Returns the MCP server config ids; the first one has user tokens. */
function addSharedRows(builder: SeedBuilder, firstSequence: number): [string, ...string[]] {
  const now = new Date();
  builder.add("crypto_keys", {
    feature: "workspace_apps_token",
    sequence: firstSequence,
    secret: `crypto-secret-${randomUUID()}`,
    starts_at: now,
  });
  builder.add("crypto_keys", {
    feature: "workspace_apps_token",
    sequence: firstSequence + 1,
    secret: `crypto-secret-${randomUUID()}`,
    starts_at: now,
  });
  // Coder NULLs the secret of a deleted crypto key.
  builder.add("crypto_keys", { feature: "oidc_convert", sequence: firstSequence, secret: null, starts_at: now });

  const fullConfigId = randomUUID();
  const blankConfigId = randomUUID();
  const mixedConfigId = randomUUID();
  builder.add("mcp_server_configs", {
    id: fullConfigId,
    oauth2_client_secret: `mcp-client-secret-${fullConfigId}`,
    api_key_value: `mcp-api-key-${fullConfigId}`,
    custom_headers: `{"X-Api-Token":"mcp-header-${fullConfigId}"}`,
    signing_secret: `mcp-signing-${fullConfigId}`,
  });
  builder.add("mcp_server_configs", {
    id: blankConfigId,
    oauth2_client_secret: "",
    api_key_value: "",
    custom_headers: "{}",
    signing_secret: "",
  });
  builder.add("mcp_server_configs", {
    id: mixedConfigId,
    oauth2_client_secret: `mcp-client-secret-${mixedConfigId}`,
    api_key_value: "   ",
    custom_headers: "{}",
    signing_secret: "",
  });

  const workspaceSecretId = randomUUID();
  builder.add("workspace_secrets", { id: workspaceSecretId, value: `ws-secret-${workspaceSecretId}`, cleared_at: null });
  const multilineSecretId = randomUUID();
  builder.add("workspace_secrets", {
    id: multilineSecretId,
    value: `line one ${multilineSecretId}\nline two: ünïcødé ✓`,
    cleared_at: null,
  });
  builder.add("workspace_secrets", { id: randomUUID(), value: null, cleared_at: now });

  const aiKeyId = randomUUID();
  builder.add("ai_provider_keys", { id: aiKeyId, api_key: `sk-ai-${aiKeyId}` });
  builder.add("ai_provider_keys", { id: randomUUID(), api_key: "" });

  const chatServerId = randomUUID();
  builder.add("chat_mcp_servers", { id: chatServerId, headers: `{"Authorization":"Bearer chat-${chatServerId}"}` });
  builder.add("chat_mcp_servers", { id: randomUUID(), headers: "{}" });

  return [fullConfigId, blankConfigId, mixedConfigId];
}

function addUserRows(builder: SeedBuilder, user: SeededUser, index: number, mcpConfigId: string): void {
  const uid = user.id;
  builder.add("users", { id: uid, username: user.username, is_system: user.isSystem, deleted: user.deleted });
  builder.add("gitsshkeys", {
    user_id: uid,
    private_key: `-----BEGIN OPENSSH PRIVATE KEY-----\nprivate-${uid}\n-----END OPENSSH PRIVATE KEY-----\n`,
    public_key: `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 public-${uid}`,
  });
  if (user.isSystem) {
    // System users log in with type "none" and have no tokens, but Coder still encrypts the ''.
    addUserLink(builder, uid, "none", "", "");
    return;
  }

  // Coder deletes a user's links when the user is soft-deleted; their other rows survive.
  if (!user.deleted) {
    addUserLink(builder, uid, "github", `access-${uid}`, `refresh-${uid}`);
    if (index % 3 === 1) addUserLink(builder, uid, "oidc", "", "");
  }
  builder.add("external_auth_links", {
    provider_id: "github",
    user_id: uid,
    oauth_access_token: `ext-access-${uid}`,
    oauth_refresh_token: index % 5 === 2 ? "" : `ext-refresh-${uid}`,
    oauth_refresh_failure_reason: "",
    updated_at: new Date(),
  });
  builder.add("user_secrets", { id: randomUUID(), user_id: uid, name: "api-token", value: `secret-${uid}` });
  if (index === 0) {
    builder.add("user_secrets", { id: randomUUID(), user_id: uid, name: "unicode", value: `pässwörd-🔑-${uid}` });
  }
  if (index === 1) builder.add("user_secrets", { id: randomUUID(), user_id: uid, name: "empty", value: "" });
  builder.add("mcp_server_user_tokens", {
    mcp_server_config_id: mcpConfigId,
    user_id: uid,
    access_token: `mcp-access-${uid}`,
    refresh_token: index % 2 === 0 ? `mcp-refresh-${uid}` : "",
  });
}

function addUserLink(builder: SeedBuilder, userId: string, loginType: string, access: string, refresh: string): void {
  builder.add("user_links", {
    user_id: userId,
    login_type: loginType,
    linked_id: loginType === "none" ? "" : `${loginType}-${userId}`,
    oauth_access_token: access,
    oauth_refresh_token: refresh,
    updated_at: new Date(),
  });
}

/** Multi-row INSERTs: seeding thousands of users row by row would dominate a test's run time. */
async function insertRows(db: TestDb, table: string, rows: Row[]): Promise<void> {
  const columns = Object.keys(rows[0] ?? {});
  const rowsPerStatement = Math.max(1, Math.floor(MAX_PARAMS_PER_STATEMENT / columns.length));
  const columnList = columns.map(quoteIdent).join(", ");
  for (let start = 0; start < rows.length; start += rowsPerStatement) {
    const params: unknown[] = [];
    const tuples = rows.slice(start, start + rowsPerStatement).map((row) => {
      if (Object.keys(row).length !== columns.length) throw new Error(`seed rows for ${table} differ in shape`);
      const placeholders = columns.map((column) => `$${params.push(row[column] ?? null)}`);
      return `(${placeholders.join(", ")})`;
    });
    await db.query(`INSERT INTO ${quoteIdent(table)} (${columnList}) VALUES ${tuples.join(", ")}`, params);
  }
}
