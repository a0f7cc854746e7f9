/**
 * Small helpers the end-to-end suites share: keys and seeded values that are registered as
 * secrets the moment they exist (so any CLI output containing them fails the test), and the keys
 * table as plain rows.
 */
import { randomKey, type TestKey } from "./coder-crypto.js";
import { registerSecret } from "./cli.js";
import type { SeedManifest } from "./seed.js";
import { quoteIdent, type TestDb } from "./test-db.js";

export function freshKey(): TestKey {
  const key = randomKey();
  registerSecret(key.bytes);
  return key;
}

export function registerManifest(manifest: SeedManifest): void {
  for (const entry of manifest.entries) if (entry.plaintext !== null) registerSecret(entry.plaintext);
}

export interface KeyRowState {
  number: number;
  active_key_digest: string | null;
  revoked_key_digest: string | null;
  test: string;
}

export async function keyRows(db: TestDb, table = "dbcrypt_keys"): Promise<KeyRowState[]> {
  const rows = await db.query<KeyRowState>(`SELECT number, active_key_digest, revoked_key_digest, test FROM ${quoteIdent(table)} ORDER BY number`);
  return rows.map((row) => ({ ...row, number: Number(row.number) }));
}
