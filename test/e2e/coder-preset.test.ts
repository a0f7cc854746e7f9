/**
 * The Coder preset against Coder's current write rules, through the built CLI on both databases:
 * tables newer than the shared test schema (chat_providers, chat_automation_triggers) keep blank
 * values (Go's strings.TrimSpace) as plaintext with a NULL key id, as Coder writes them, and a
 * column the preset does not know is processed under the defaults with a warning, not silently.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openValue } from "../support/coder-crypto.js";
import { createCoderSchema } from "../support/coder-schema.js";
import { dbArg, registerSecret, runCli } from "../support/cli.js";
import { freshKey } from "../support/fixtures.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

describe.each(ENGINE_KINDS)("Coder's newer encrypted columns on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;

  beforeEach(async () => {
    database = await createTestDatabase(kind, "coder_new");
    db = await openTestDb(database.target);
    await createCoderSchema(db);
    url = dbArg(database.target);
    const keyId = (table: string, column: string) => `${column}_key_id text CONSTRAINT ${table}_${column}_key_id_fkey REFERENCES dbcrypt_keys (active_key_digest)`;
    await db.exec(`CREATE TABLE chat_providers (id text PRIMARY KEY, api_key text NOT NULL DEFAULT '', ${keyId("chat_providers", "api_key")})`);
    await db.exec(`CREATE TABLE chat_automation_triggers (id text PRIMARY KEY, webhook_secret text, ${keyId("chat_automation_triggers", "webhook_secret")})`);
    await db.exec(`CREATE TABLE chat_future_things (id text PRIMARY KEY, token text, ${keyId("chat_future_things", "token")})`);
    for (const [id, apiKey] of [["p1", "sk-live-provider-key"], ["p2", ""], ["p3", "  \t "]] as const) {
      if (apiKey.length >= 6) registerSecret(apiKey);
      await db.query("INSERT INTO chat_providers (id, api_key) VALUES ($1, $2)", [id, apiKey]);
    }
    for (const [id, secret] of [["t1", "whsec-trigger-secret"], ["t2", null], ["t3", " "]] as const) {
      if (secret !== null && secret.length >= 6) registerSecret(secret);
      await db.query("INSERT INTO chat_automation_triggers (id, webhook_secret) VALUES ($1, $2)", [id, secret]);
    }
    await db.query("INSERT INTO chat_future_things (id, token) VALUES ('f1', '')");
  });

  afterEach(async () => {
    await db.close();
    await database.cleanup();
  });

  it("rotate keeps blank and whitespace-only values plaintext with a NULL key id, as Coder does", async () => {
    const key = freshKey();
    const status = await runCli(["status", "--db", url, "--json"]);
    const report = JSON.parse(status.stdout);
    expect(report.preset).toBe("coder");
    expect(report.warnings).toEqual([expect.objectContaining({ table: "chat_future_things", column: "token", message: expect.stringMatching(/not in dbcrypt's Coder preset/) })]);
    const rotate = await runCli(["rotate", "--db", url, "--new-key", key.base64, "--yes", "--json"]);
    expect(rotate.code, rotate.stderr).toBe(0);
    expect(JSON.parse(rotate.stdout).plan.warnings).toEqual([expect.stringMatching(/chat_future_things\.token: not in dbcrypt's Coder preset/)]);
    const providers = await db.query<{ id: string; api_key: string; api_key_key_id: string | null }>("SELECT id, api_key, api_key_key_id FROM chat_providers ORDER BY id");
    expect(providers.map((row) => [row.id, row.api_key_key_id])).toEqual([["p1", key.id], ["p2", null], ["p3", null]]);
    expect(openValue(key.bytes, providers[0]?.api_key as string)).toBe("sk-live-provider-key");
    expect(providers.slice(1).map((row) => row.api_key)).toEqual(["", "  \t "]);
    const triggers = await db.query<{ id: string; webhook_secret: string | null; webhook_secret_key_id: string | null }>("SELECT id, webhook_secret, webhook_secret_key_id FROM chat_automation_triggers ORDER BY id");
    expect(triggers.map((row) => [row.id, row.webhook_secret_key_id])).toEqual([["t1", key.id], ["t2", null], ["t3", null]]);
    // The unknown column takes the default rule, never: even '' is encrypted, which the warning said.
    const future = await db.query<{ token_key_id: string | null }>("SELECT token_key_id FROM chat_future_things");
    expect(future[0]?.token_key_id).toBe(key.id);
  });
});
