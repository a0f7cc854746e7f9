/**
 * Obot's cells under faults: a kill -9 and (PostgreSQL) a connection cut part way through a paced
 * rotation between two EncryptionConfigurations, and the application writing with the old key
 * during one. Every row must stay as it was or be done (cell, additional data and row flag
 * together); a re-run finishes the job and archives the old key.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dbArg, registerSecret } from "../support/cli.js";
import { keyRows } from "../support/fixtures.js";
import { encryptionConfigYaml, k8sKey, sealK8s } from "../support/k8s-crypto.js";
import { expectObot, OBOT_RESOURCES, seedObot, type ObotField } from "../support/obot-fixtures.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";
import { runToEnd, startCli } from "./support/cli-process.js";
import { CuttableProxy } from "./support/tcp-proxy.js";

const ROWS = 240;

describe.each(ENGINE_KINDS)("Obot on %s under faults", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let dir: string;
  let fields: ObotField[];
  let oldConfig: string;
  let newConfig: string;
  const keys = { k0: k8sKey("aesgcm", "key0"), k1: k8sKey("aesgcm", "key1") };
  for (const key of Object.values(keys)) registerSecret(key.secret);
  const rotateArgs = (target: string) => ["rotate", "--db", target, "--preset", "obot", "--encryption-config", oldConfig, "--new-encryption-config", newConfig, "--yes"];

  beforeEach(async () => {
    database = await createTestDatabase(kind, "obotf");
    db = await openTestDb(database.target);
    url = dbArg(database.target);
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-obotf-"));
    oldConfig = join(dir, "old.yaml");
    newConfig = join(dir, "new.yaml");
    writeFileSync(oldConfig, encryptionConfigYaml(OBOT_RESOURCES, [[keys.k0], "identity"]), { mode: 0o600 });
    writeFileSync(newConfig, encryptionConfigYaml(OBOT_RESOURCES, [[keys.k1], [keys.k0], "identity"]), { mode: 0o600 });
    fields = await seedObot(db, keys.k0, ROWS);
    expect((await runToEnd(["keys", "init", "--db", url])).code).toBe(0);
  });

  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  async function expectFinishedByRerun(): Promise<void> {
    const rerun = await runToEnd([...rotateArgs(url), "--json"]);
    expect(rerun.code, rerun.stderr).toBe(0);
    await expectObot(db, fields, keys.k1);
    expect((await keyRows(db)).map((row) => [row.active_key_digest, row.revoked_key_digest])).toEqual([[null, "aesgcm:key0"], ["aesgcm:key1", null]]);
  }

  it("kill -9 part way through a rotation leaves every row as it was or done, and a re-run finishes it", async () => {
    const run = startCli([...rotateArgs(url), "--json-events", "--batch-size", "10", "--sleep", "20ms"]);
    expect(await run.waitForEvent((event) => event.type === "batch" && Number(event.done) >= 100), "the run got going").toBeDefined();
    run.kill("SIGKILL");
    expect((await run.done).signal).toBe("SIGKILL");
    await expectObot(db, fields, null, { eitherOf: [keys.k0, keys.k1] });
    await expectFinishedByRerun();
  });

  it("values the application writes with the old key during a rotation end under the new key", async () => {
    const run = startCli([...rotateArgs(url), "--json-events", "--batch-size", "10", "--sleep", "15ms"]);
    await run.waitForEvent((event) => event.type === "batch");
    const changed = fields.filter((field) => field.table === "users" && field.seeded === "key" && field.plaintext !== null && field.plaintext !== "").filter((_, index) => index % 11 === 0);
    for (const field of changed) {
      field.plaintext = `${field.plaintext} (changed by Obot)`;
      registerSecret(field.plaintext);
      await db.query(`UPDATE users SET ${field.column} = $1 WHERE id = $2`, [sealK8s(keys.k0, field.plaintext, field.aad), field.id]);
    }
    const finished = await run.done;
    expect([0, 4], finished.stderr).toContain(finished.code);
    await expectFinishedByRerun();
  });

  // SQLite has no connection to cut; the test exists for PostgreSQL only.
  if (kind === "postgres") {
    it("a connection cut part way through a rotation ends the run with exit 1 and loses nothing", async () => {
      const target = new URL(url);
      const proxy = await CuttableProxy.start({ host: target.hostname, port: Number(target.port) });
      try {
        const run = startCli([...rotateArgs(proxy.urlFor(url)), "--json-events", "--batch-size", "10", "--sleep", "20ms"]);
        await run.waitForEvent((event) => event.type === "batch" && Number(event.done) >= 60);
        proxy.cutAll();
        const cut = await run.done;
        expect(cut.code, cut.stderr).toBe(1);
        await expectObot(db, fields, null, { eitherOf: [keys.k0, keys.k1] });
      } finally {
        await proxy.close();
      }
      await expectFinishedByRerun();
    });
  }
});
