import type { K8sAesGcmKey, SecretboxMaster } from "./app-keys.js";
import { tokenPlaintext } from "./dataset.js";
import type { Engine } from "./targets/target.js";

/**
 * The two datasets of issue 10, next to Coder's `oauth_tokens` (dataset.ts):
 *
 *  - `secretbox`: an AtelyaOS-shaped `messages(id, workspace_id, author, content_encrypted)`, rows
 *    spread over a few hundred workspaces, each cell sealed under its workspace's key; rotated with
 *    `--preset atelyaos`.
 *  - `k8s`: an Obot-shaped `properties(key, encrypted, value)`, each value sealed by Kubernetes'
 *    aesgcm provider with the additional data "properties.obot.obot.ai/" + key; rotated with
 *    `--preset obot` and EncryptionConfiguration files.
 *
 * Plaintexts are the same 100-200-byte tokens as Coder's rows (with another seed), so the three
 * schemes move the same amount of data per row. Everything is deterministic from the run's seed,
 * so every sampled row can be checked at the end.
 */
export type AppScheme = "secretbox" | "k8s";
export type SchemeName = "coder" | AppScheme;
export const SCHEME_NAMES: readonly SchemeName[] = ["coder", "secretbox", "k8s"];
export const APP_SCHEMES: readonly AppScheme[] = ["secretbox", "k8s"];

/** Distinct AtelyaOS workspaces the rows are spread over. */
export const WORKSPACES = 300;
export const OBOT_RESOURCES = ["credentials.obot.obot.ai", "users.obot.obot.ai", "properties.obot.obot.ai"];

export interface AppShape {
  scheme: AppScheme;
  preset: "atelyaos" | "obot";
  /** Short name for tables and logs. */
  label: string;
  table: string;
  keyColumn: string;
  valueColumn: string;
  /** Columns the bench inserts, in order, with their PostgreSQL array type for unnest. */
  columns: { name: string; pgArray: string }[];
  ddl(engine: Engine): string;
}

export const SECRETBOX_SHAPE: AppShape = {
  scheme: "secretbox",
  preset: "atelyaos",
  label: "AtelyaOS secretbox",
  table: "messages",
  keyColumn: "id",
  valueColumn: "content_encrypted",
  columns: [
    { name: "id", pgArray: "text[]" },
    { name: "workspace_id", pgArray: "text[]" },
    { name: "author", pgArray: "text[]" },
    { name: "content_encrypted", pgArray: "text[]" },
  ],
  ddl: (engine) =>
    engine === "postgres"
      ? `CREATE TABLE messages (id text PRIMARY KEY, workspace_id text NOT NULL, author text NOT NULL,
           created_at timestamp with time zone NOT NULL DEFAULT now(), content_encrypted text) WITH (autovacuum_enabled = false)`
      : `CREATE TABLE messages (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, author TEXT NOT NULL,
           created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, content_encrypted TEXT)`,
};

export const K8S_SHAPE: AppShape = {
  scheme: "k8s",
  preset: "obot",
  label: "Obot k8s aesgcm",
  table: "properties",
  keyColumn: "key",
  valueColumn: "value",
  columns: [
    { name: "key", pgArray: "text[]" },
    { name: "encrypted", pgArray: "boolean[]" },
    { name: "value", pgArray: "text[]" },
  ],
  ddl: (engine) =>
    engine === "postgres"
      ? "CREATE TABLE properties (key text PRIMARY KEY, encrypted boolean NOT NULL, value text) WITH (autovacuum_enabled = false)"
      : "CREATE TABLE properties (key TEXT PRIMARY KEY, encrypted BOOLEAN NOT NULL, value TEXT)",
};

export const APP_SHAPES: Readonly<Record<AppScheme, AppShape>> = { secretbox: SECRETBOX_SHAPE, k8s: K8S_SHAPE };

function mix32(seed: number): number {
  let x = seed | 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

const hex = (value: number, digits: number) => value.toString(16).padStart(8, "0").slice(0, digits);

/** Workspace number `n` as a UUID-shaped id. */
export function workspaceName(seed: number, n: number): string {
  const a = mix32(seed ^ (n * 0x27d4eb2d));
  const b = mix32(a + n);
  const c = mix32(b ^ 0x5bd1e995);
  return `${hex(a, 8)}-${hex(b, 4)}-4${hex(b >>> 16, 3)}-a${hex(c, 3)}-${hex(c >>> 12, 4)}${n.toString(16).padStart(8, "0")}`;
}

/** Row `id`'s text primary key (zero-padded, so text order is insertion order). */
export function messageId(id: number): string {
  return `msg_${String(id).padStart(10, "0")}`;
}

export function workspaceOf(seed: number, id: number): string {
  return workspaceName(seed, mix32(seed ^ Math.imul(id, 0x85ebca6b)) % WORKSPACES);
}

export function propertyKey(id: number): string {
  return `setting.${String(id).padStart(10, "0")}`;
}

export function propertyAad(key: string): string {
  return `properties.obot.obot.ai/${key}`;
}

/** The plaintext of row `id` of a scheme's table (Coder's token generator under another seed). */
export function appPlaintext(seed: number, scheme: AppScheme, id: number): Buffer {
  return tokenPlaintext(seed ^ (scheme === "secretbox" ? 0x5ec2e7b0 : 0x6b38a1c5), id);
}

/** Rows as columns, in AppShape.columns order. */
export interface AppChunk {
  count: number;
  columns: unknown[][];
}

export function secretboxChunk(seed: number, firstId: number, count: number, key: SecretboxMaster): AppChunk {
  const ids: string[] = [];
  const workspaces: string[] = [];
  const authors: string[] = [];
  const cells: string[] = [];
  for (let id = firstId; id < firstId + count; id++) {
    const workspace = workspaceOf(seed, id);
    ids.push(messageId(id));
    workspaces.push(workspace);
    authors.push(`user-${id % 997}`);
    cells.push(key.seal(appPlaintext(seed, "secretbox", id), workspace));
  }
  return { count, columns: [ids, workspaces, authors, cells] };
}

export function k8sChunk(seed: number, firstId: number, count: number, key: K8sAesGcmKey): AppChunk {
  const keys: string[] = [];
  const flags: boolean[] = [];
  const cells: string[] = [];
  for (let id = firstId; id < firstId + count; id++) {
    const name = propertyKey(id);
    keys.push(name);
    flags.push(true);
    cells.push(key.seal(appPlaintext(seed, "k8s", id), propertyAad(name)));
  }
  return { count, columns: [keys, flags, cells] };
}
