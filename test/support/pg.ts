import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { safeLabel } from "./sqlite.js";

export interface PgTestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Creates an empty, uniquely named database on the suite's server (see global-setup.ts). */
export async function createPgDatabase(label = "db"): Promise<PgTestDatabase> {
  const adminUrl = inject("pgAdminUrl");
  const name = uniqueDatabaseName(label);
  // template0 guarantees an empty database even if a shared server's template1 was modified.
  await withAdminClient(adminUrl, (client) =>
    client.query(`CREATE DATABASE ${client.escapeIdentifier(name)} TEMPLATE template0 ENCODING 'UTF8'`),
  );
  return { url: databaseUrl(adminUrl, name), drop: () => dropDatabase(adminUrl, name) };
}

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdminClient(adminUrl, async (client) => {
    await client.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
      [name],
    );
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)}`);
  });
}

/** dbcrypt_t_<label>_<random>: lowercase, at most 39 bytes, well under PostgreSQL's 63. */
function uniqueDatabaseName(label: string): string {
  return `dbcrypt_t_${safeLabel(label, 20)}_${randomBytes(4).toString("hex")}`;
}

function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withAdminClient<T>(adminUrl: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}
