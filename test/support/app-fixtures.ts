/**
 * AtelyaOS- and Company-Agents-shaped databases for the end-to-end and chaos suites: the tables
 * their docs name, seeded through the independent oracles in app-crypto.ts, and one assertion that
 * every row still holds what was seeded, under the expected master key (or as plaintext).
 */
import { createHash } from "node:crypto";
import { expect } from "vitest";
import { openSecretbox, sealSecretbox, type Spelling } from "./app-crypto.js";
import { registerSecret } from "./cli.js";
import { keyIdOf, openValue, sealValue, type TestKey } from "./coder-crypto.js";
import type { TestDb } from "./test-db.js";

export interface AppCell {
  table: string;
  column: string;
  id: string;
  /** The AtelyaOS workspace id of the row (unused by Company Agents). */
  workspace: string;
  plaintext: string | null;
  /** How the seed spelt the cell, which a rewrite must keep. */
  spelling: Spelling;
}

export interface AppShape {
  name: "atelyaos" | "company-agents";
  /** Tables and their encrypted column, in the preset's terms. */
  columns: { table: string; column: string; spelling: Spelling }[];
  keyId(key: TestKey): string;
  create(db: TestDb): Promise<void>;
  seal(key: TestKey, cell: AppCell): string;
  open(key: TestKey, cell: AppCell, stored: string): string | undefined;
}

export const ATELYAOS: AppShape = {
  name: "atelyaos",
  columns: [
    { table: "messages", column: "content_encrypted", spelling: "base64" },
    { table: "integrations", column: "access_token_encrypted", spelling: "base64url-unpadded" },
    { table: "webhook_bridges", column: "api_key_encrypted", spelling: "hex" },
  ],
  keyId: (key) => createHash("sha256").update("xsalsa20poly1305").update(key.bytes).digest("hex").slice(0, 7),
  async create(db) {
    await db.exec("CREATE TABLE messages (id text PRIMARY KEY, workspace_id text NOT NULL, author text, content_encrypted text)");
    await db.exec("CREATE TABLE integrations (id text PRIMARY KEY, workspace_id text NOT NULL, provider text NOT NULL, access_token_encrypted text)");
    await db.exec("CREATE TABLE webhook_bridges (id text PRIMARY KEY, workspace_id text NOT NULL, api_key_encrypted text)");
  },
  seal: (key, cell) => sealSecretbox(key.bytes, cell.workspace, cell.plaintext as string, cell.spelling),
  open: (key, cell, stored) => openSecretbox(key.bytes, cell.workspace, stored),
};

export const COMPANY_AGENTS: AppShape = {
  name: "company-agents",
  columns: [{ table: "secrets", column: "value", spelling: "base64" }],
  keyId: (key) => keyIdOf(key.bytes),
  async create(db) {
    await db.exec("CREATE TABLE secrets (id text PRIMARY KEY, company_id text NOT NULL, name text NOT NULL, value text)");
  },
  seal: (key, cell) => sealValue(key.bytes, cell.plaintext as string),
  open: (key, cell, stored) => {
    try {
      return openValue(key.bytes, stored);
    } catch {
      return undefined;
    }
  },
};

export const APP_SHAPES: readonly AppShape[] = [ATELYAOS, COMPANY_AGENTS];

const WORKSPACES = ["ws-alpha", "ws-beta", "ws-gamma", "ws-delta"];

/**
 * `rows` rows per table, every one encrypted under `key` except: every 10th NULL, and every 7th a
 * short legacy plaintext (shorter than nonce and tag, so it cannot be mistaken for ciphertext).
 */
export async function seedApp(db: TestDb, app: AppShape, key: TestKey, rows: number): Promise<AppCell[]> {
  await app.create(db);
  const cells: AppCell[] = [];
  for (const { table, column, spelling } of app.columns) {
    for (let index = 1; index <= rows; index++) {
      const id = `${table.slice(0, 3)}-${String(index).padStart(5, "0")}`;
      const workspace = WORKSPACES[index % WORKSPACES.length] as string;
      const plaintext = index % 10 === 0 ? null : index % 7 === 0 ? `legacy ${index}` : `${table} secret ${index} ✓ ${"x".repeat(index % 13)}`;
      if (plaintext !== null) registerSecret(plaintext);
      const cell: AppCell = { table, column, id, workspace, plaintext, spelling };
      const stored = plaintext === null || index % 7 === 0 ? plaintext : app.seal(key, cell);
      const extra = app.name === "atelyaos" ? (table === "integrations" ? ["workspace_id", "provider"] : table === "messages" ? ["workspace_id", "author"] : ["workspace_id"]) : ["company_id", "name"];
      const values = app.name === "atelyaos" ? extra.map((name) => (name === "workspace_id" ? workspace : `${name} ${index}`)) : [`company ${index % 3}`, `name ${index}`];
      const placeholders = [...extra, column].map((_, position) => `$${position + 2}`).join(", ");
      await db.query(`INSERT INTO ${table} (id, ${extra.join(", ")}, ${column}) VALUES ($1, ${placeholders})`, [id, ...values, stored]);
      cells.push(cell);
    }
  }
  return cells;
}

/** Every seeded row is there, under `key` (or plaintext when key is null), in its seeded spelling. */
export async function expectAppCells(db: TestDb, app: AppShape, cells: AppCell[], key: TestKey | null, options: { spellingKept?: boolean; asSeeded?: boolean } = {}): Promise<void> {
  for (const { table, column } of app.columns) {
    const stored = new Map((await db.query<{ id: string; v: string | null }>(`SELECT id, ${column} AS v FROM ${table}`)).map((row) => [row.id, row.v]));
    for (const cell of cells.filter((candidate) => candidate.table === table)) {
      expect(stored.has(cell.id), `${table} ${cell.id} exists`).toBe(true);
      const value = stored.get(cell.id) ?? null;
      if (cell.plaintext === null || key === null || (options.asSeeded && isLegacy(cell))) {
        expect(value, `${table} ${cell.id} is plaintext`).toBe(cell.plaintext);
        continue;
      }
      expect(app.open(key, cell, value as string), `${table} ${cell.id} opens under ${app.keyId(key)}`).toBe(cell.plaintext);
      if (options.spellingKept) expect(value, `${table} ${cell.id} keeps its spelling (${cell.spelling})`).toMatch(SPELLINGS[cell.spelling]);
    }
  }
}

/** Seeded as plaintext: the leftovers rotate must encrypt. */
export function isLegacy(cell: AppCell): boolean {
  return cell.plaintext !== null && cell.plaintext.startsWith("legacy ");
}

const SPELLINGS: Record<Spelling, RegExp> = {
  "base64": /^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  "base64url-unpadded": /^[A-Za-z0-9_-]+$/,
  "hex": /^(?:[0-9a-f]{2})+$/,
};
