/**
 * Obot-shaped databases (obot-platform/obot pkg/gateway, gorm's default names): `users`,
 * `credentials` (the cell inside a JSON envelope) and `properties`, each with its boolean
 * `encrypted` column and Obot's additional-data strings. Seeded and checked with the independent
 * reading in k8s-crypto.ts.
 */
import { expect } from "vitest";
import { registerSecret } from "./cli.js";
import { openK8s, sealK8s, type K8sKey } from "./k8s-crypto.js";
import type { TestDb } from "./test-db.js";

export interface ObotField {
  table: "users" | "credentials" | "properties";
  id: string;
  column: string;
  aad: string;
  plaintext: string | null;
  /** How the row was seeded: under a key, as identity (base64 of the plaintext), or plaintext with encrypted=false. */
  seeded: "key" | "identity" | "plaintext";
}

export const OBOT_RESOURCES = ["credentials.obot.obot.ai", "users.obot.obot.ai", "properties.obot.obot.ai"];
export const USER_COLUMNS = ["username", "email", "icon_url", "display_name", "original_email", "original_username"];

export async function createObotSchema(db: TestDb): Promise<void> {
  const boolean = db.kind === "postgres" ? "boolean" : "boolean";
  await db.exec(`CREATE TABLE users (id text PRIMARY KEY, hashed_username text NOT NULL, encrypted ${boolean} NOT NULL, ${USER_COLUMNS.map((column) => `${column} text`).join(", ")})`);
  await db.exec(`CREATE TABLE credentials (id text PRIMARY KEY, name text NOT NULL, context text NOT NULL, encrypted ${boolean} NOT NULL, secrets text)`);
  await db.exec(`CREATE TABLE properties (key text PRIMARY KEY, encrypted ${boolean} NOT NULL, value text)`);
}

function flag(db: TestDb, value: boolean): boolean | number {
  return db.kind === "postgres" ? value : value ? 1 : 0;
}

function envelope(cell: string): string {
  return JSON.stringify({ _obot_encrypted_env: cell });
}

/** users × rows, credentials × rows/3, properties × rows/6; every 6th row plaintext, every 10th identity. */
export async function seedObot(db: TestDb, key: K8sKey, rows: number): Promise<ObotField[]> {
  await createObotSchema(db);
  const fields: ObotField[] = [];
  const stateOf = (index: number): ObotField["seeded"] => (index % 6 === 0 ? "plaintext" : index % 10 === 0 ? "identity" : "key");
  const store = (field: ObotField, json = false): string | null => {
    if (field.plaintext === null) return null;
    if (field.plaintext.length >= 6) registerSecret(field.plaintext);
    if (field.seeded === "plaintext") return field.plaintext;
    const cell = field.seeded === "identity" ? Buffer.from(field.plaintext, "utf8").toString("base64") : sealK8s(key, field.plaintext, field.aad);
    return json ? envelope(cell) : cell;
  };
  for (let index = 1; index <= rows; index++) {
    const id = `user-${String(index).padStart(4, "0")}`;
    const hashed = `h${index}x`;
    const seeded = stateOf(index);
    const values = USER_COLUMNS.map((column, position) => {
      const plaintext = position === 2 && index % 4 === 0 ? null : position === 1 && index % 5 === 0 ? "" : `${column} of ${id} ✓`;
      const field: ObotField = { table: "users", id, column, aad: `users.obot.obot.ai/${hashed}`, plaintext, seeded };
      fields.push(field);
      return store(field);
    });
    await db.query(`INSERT INTO users (id, hashed_username, encrypted, ${USER_COLUMNS.join(", ")}) VALUES ($1, $2, $3, ${USER_COLUMNS.map((_, position) => `$${position + 4}`).join(", ")})`, [id, hashed, flag(db, seeded !== "plaintext"), ...values]);
  }
  for (let index = 1; index <= Math.ceil(rows / 3); index++) {
    const id = `cred-${index}`;
    const seeded = stateOf(index);
    const field: ObotField = { table: "credentials", id, column: "secrets", aad: `cred${index}///default`, plaintext: JSON.stringify({ API_TOKEN: `token ${index} secret`, OTHER: "x" }), seeded };
    fields.push(field);
    await db.query("INSERT INTO credentials (id, name, context, encrypted, secrets) VALUES ($1, $2, $3, $4, $5)", [id, `cred${index}`, "default", flag(db, seeded !== "plaintext"), store(field, true)]);
  }
  for (let index = 1; index <= Math.ceil(rows / 6); index++) {
    const id = `setting.${index}`;
    const seeded = stateOf(index);
    const field: ObotField = { table: "properties", id, column: "value", aad: `properties.obot.obot.ai/${id}`, plaintext: `property value ${index}`, seeded };
    fields.push(field);
    await db.query("INSERT INTO properties (key, encrypted, value) VALUES ($1, $2, $3)", [id, flag(db, seeded !== "plaintext"), store(field)]);
  }
  return fields;
}

/** Opens a cell the way something other than a local key would (a KMS plugin): plaintext, or undefined. */
export interface CellOpener {
  name: string;
  open(cell: string, aad: string): string | undefined;
}

const ID_COLUMN: Record<ObotField["table"], string> = { users: "id", credentials: "id", properties: "key" };

/**
 * Every field holds its plaintext: under `key` with its row flagged encrypted, or (key null) as
 * plaintext with the flag cleared. `asSeeded` checks the seeded state instead.
 */
export async function expectObot(db: TestDb, fields: ObotField[], key: K8sKey | null, options: { asSeeded?: boolean; seedKey?: K8sKey; eitherOf?: K8sKey[]; opener?: CellOpener } = {}): Promise<void> {
  const tables = new Map<string, Map<string, Record<string, unknown>>>();
  for (const table of ["users", "credentials", "properties"] as const) {
    const rows = await db.query<Record<string, unknown>>(`SELECT * FROM ${table}`);
    tables.set(table, new Map(rows.map((row) => [String(row[ID_COLUMN[table]]), row])));
  }
  for (const field of fields) {
    const row = tables.get(field.table)?.get(field.id);
    const where = `${field.table} ${field.id}.${field.column}`;
    expect(row, where).toBeDefined();
    const stored = (row as Record<string, unknown>)[field.column] as string | null;
    const encrypted = Boolean((row as Record<string, unknown>).encrypted);
    if (options.eitherOf !== undefined) {
      // Part way through a rotation: each row is either still as seeded or done, never between.
      expectSeededOrUnder(field, stored, encrypted, options.eitherOf, where);
      continue;
    }
    const state = options.asSeeded ? field.seeded : key === null && options.opener === undefined ? "plaintext" : "key";
    const underKey = options.asSeeded ? options.seedKey : key;
    if (state === "plaintext") {
      expect(encrypted, `${where} row flag`).toBe(false);
      expect(stored, where).toBe(field.plaintext);
      continue;
    }
    expect(encrypted, `${where} row flag`).toBe(true);
    if (field.plaintext === null) {
      expect(stored, where).toBeNull();
      continue;
    }
    const cell = field.table === "credentials" ? (JSON.parse(stored as string) as Record<string, string>)._obot_encrypted_env : stored;
    expect(typeof cell, `${where} cell (credentials keep their JSON envelope)`).toBe("string");
    if (state === "identity") expect(Buffer.from(cell as string, "base64").toString("utf8"), where).toBe(field.plaintext);
    else if (options.opener !== undefined) expect(options.opener.open(cell as string, field.aad), `${where} opens under ${options.opener.name} with its AAD`).toBe(field.plaintext);
    else expect(openK8s(underKey as K8sKey, cell as string, field.aad), `${where} opens under ${underKey?.provider}:${underKey?.name} with its AAD`).toBe(field.plaintext);
  }
}

/** One field part way through a rotation; the row's flag is checked against its seeding (a row flips whole). */
function expectSeededOrUnder(field: ObotField, stored: string | null, encrypted: boolean, keys: K8sKey[], where: string): void {
  if (!encrypted) {
    expect(field.seeded, `${where}: only a row seeded as plaintext may still be plaintext`).toBe("plaintext");
    expect(stored, where).toBe(field.plaintext);
    return;
  }
  if (field.plaintext === null) {
    expect(stored, where).toBeNull();
    return;
  }
  const cell = field.table === "credentials" ? (JSON.parse(stored as string) as Record<string, string>)._obot_encrypted_env : stored;
  const opened = keys.some((key) => openK8s(key, cell as string, field.aad) === field.plaintext);
  const identity = field.seeded === "identity" && Buffer.from(cell as string, "base64").toString("utf8") === field.plaintext;
  expect(opened || identity, `${where} opens under one of the keys (or is still identity-stored)`).toBe(true);
}
