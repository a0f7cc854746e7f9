import { afterEach, beforeEach } from "vitest";
import { dbArg } from "../../support/cli.js";
import { createTestDatabase, openTestDb, type CreatedTestDatabase, type TestDb } from "../../support/test-db.js";
import { CuttableProxy } from "./tcp-proxy.js";

export interface ProxiedPostgres {
  database: CreatedTestDatabase;
  db: TestDb;
  proxy: CuttableProxy;
}

/**
 * Gives every test of the calling suite a fresh PostgreSQL database, a connection to it, and a
 * CuttableProxy in front of it; all three are gone after the test. Read the fields inside a test.
 */
export function useProxiedPostgres(label: string): ProxiedPostgres {
  const fixture = {} as ProxiedPostgres;
  beforeEach(async () => {
    fixture.database = await createTestDatabase("postgres", label);
    fixture.db = await openTestDb(fixture.database.target);
    const url = new URL(dbArg(fixture.database.target));
    fixture.proxy = await CuttableProxy.start({ host: url.hostname, port: Number(url.port) });
  });
  afterEach(async () => {
    await fixture.proxy?.close();
    await fixture.db?.close();
    await fixture.database?.cleanup();
  });
  return fixture;
}
