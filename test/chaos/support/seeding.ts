/**
 * A Coder-shaped database of a requested size, every plaintext registered as a secret the moment
 * it exists (so any CLI output containing one fails the run).
 */
import { expect } from "vitest";
import type { TestKey } from "../../support/coder-crypto.js";
import { createCoderSchema } from "../../support/coder-schema.js";
import { registerManifest } from "../../support/fixtures.js";
import { seedCoderData, type SeedManifest } from "../../support/seed.js";
import type { TestDb } from "../../support/test-db.js";
import { indexManifest, type SeededValues } from "./coder-state.js";

export interface ChaosSeed {
  manifest: SeedManifest;
  seeded: SeededValues;
  /** Rows in tables that hold encrypted columns (the users table has none and is not counted). */
  rows: number;
  /** Encrypted columns × rows: every value the oracle checks. */
  values: number;
  tables: number;
}

/** The seed writes about five rows with encrypted columns per user (links, secrets, tokens, SSH key). */
const ROWS_PER_USER = 5;

export async function seedChaosDatabase(db: TestDb, rows: number, key: TestKey): Promise<ChaosSeed> {
  await createCoderSchema(db);
  const manifest = await seedCoderData(db, { users: Math.ceil(rows / ROWS_PER_USER), key });
  registerManifest(manifest);
  const seeded = indexManifest(manifest);
  const seededRows = [...seeded.values()].reduce((sum, table) => sum + table.size, 0);
  expect(seededRows, "rows with encrypted columns").toBeGreaterThanOrEqual(rows);
  return { manifest, seeded, rows: seededRows, values: manifest.entries.length, tables: seeded.size };
}
