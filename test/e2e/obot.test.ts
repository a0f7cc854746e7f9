/**
 * Obot: Kubernetes EncryptionConfiguration cells through the built CLI on both databases. Keys come
 * from the operator's configuration files (--encryption-config, --new-encryption-config); cells,
 * row flags and JSON envelopes are checked with an independent implementation (k8s-crypto.ts).
 * The lifecycle is Coder's: rotate → rotate → decrypt → rotate → delete, plus what real Obot data
 * holds: identity-stored values, leftover plaintext rows, legacy additional data, double
 * encryption, and values under a KMS plugin dbcrypt cannot reach.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dbArg, registerSecret, runCli } from "../support/cli.js";
import { keyRows } from "../support/fixtures.js";
import { encryptionConfigYaml, k8sKey, sealK8s, type K8sKey } from "../support/k8s-crypto.js";
import { expectObot, OBOT_RESOURCES, seedObot, type ObotField } from "../support/obot-fixtures.js";
import { createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

const ROWS = 30;

describe.each(ENGINE_KINDS)("Obot on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let dir: string;
  let fields: ObotField[];
  const keys = { k0: k8sKey("aesgcm", "key0"), k1: k8sKey("aesgcm", "key1"), k2: k8sKey("secretbox", "key2"), k3: k8sKey("aesgcm", "key3", 16) };
  for (const key of Object.values(keys)) registerSecret(key.secret);
  const config = (name: string, providers: Parameters<typeof encryptionConfigYaml>[1]) => {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, encryptionConfigYaml(OBOT_RESOURCES, providers), { mode: 0o600 });
    return path;
  };
  const cli = (args: string[]) => runCli([...args, "--db", url, "--preset", "obot"]);
  const idOf = (key: K8sKey) => `${key.provider}:${key.name}`;

  beforeEach(async () => {
    database = await createTestDatabase(kind, "obot");
    db = await openTestDb(database.target);
    url = dbArg(database.target);
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-obot-"));
    fields = await seedObot(db, keys.k0, ROWS);
    expect((await cli(["keys", "init"])).code).toBe(0);
  });

  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  it("census counts values by provider key name from the prefixes, with no keys given", async () => {
    const census = await cli(["status", "--json"]);
    expect(census.code, census.stdout + census.stderr).toBe(0);
    const report = JSON.parse(census.stdout);
    const users = report.columns.find((column: { column: string }) => column.column === "users.username");
    expect(users.encrypted).toEqual({ [idOf(keys.k0)]: 23, identity: 2 });
    expect(users.plaintext).toMatchObject({ toEncrypt: 5 });
    // The preset's tables this database does not have are named, not guessed at.
    expect(report.warnings.map((warning: { message: string }) => warning.message).join("\n")).toMatch(/preset obot lists table identities, which the database does not have/);
  });

  it("rotate → rotate → decrypt → rotate → delete, with keys from the configuration files", async () => {
    const c0 = config("c0", [[keys.k0], "identity"]);
    const c1 = config("c1", [[keys.k1], [keys.k0], "identity"]);
    const c2 = config("c2", [[keys.k2], [keys.k1]]);
    const c3 = config("c3", [[keys.k3], "identity"]);
    await expectObot(db, fields, null, { asSeeded: true, seedKey: keys.k0 });

    const first = await cli(["rotate", "--encryption-config", c0, "--new-encryption-config", c1, "--yes", "--batch-size", "7", "--json"]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ status: "done", keysInserted: [idOf(keys.k0), idOf(keys.k1)], keysRevoked: [idOf(keys.k0)] });
    await expectObot(db, fields, keys.k1);

    const gate = await cli(["status", "--encryption-config", c1, "--verify", "--require-key", idOf(keys.k1)]);
    expect(gate.code, gate.stdout).toBe(0);

    const second = await cli(["rotate", "--encryption-config", c1, "--new-encryption-config", c2, "--yes"]);
    expect(second.code, second.stderr).toBe(0);
    await expectObot(db, fields, keys.k2);

    // A user row flagged encrypted with no value at all: decrypt must clear its flag too.
    await db.query("INSERT INTO users (id, hashed_username, encrypted) VALUES ('user-empty', 'hempty', $1)", [kind === "postgres" ? true : 1]);
    const decrypt = await cli(["decrypt", "--encryption-config", c2, "--yes", "--json"]);
    expect(decrypt.code, decrypt.stderr).toBe(0);
    await expectObot(db, fields, null);
    const emptyRow = await db.query<{ encrypted: boolean | number }>("SELECT encrypted FROM users WHERE id = 'user-empty'");
    expect(Boolean(emptyRow[0]?.encrypted)).toBe(false);
    await db.query("DELETE FROM users WHERE id = 'user-empty'");
    expect((await keyRows(db)).every((row) => row.active_key_digest === null)).toBe(true);

    const third = await cli(["rotate", "--new-encryption-config", c3, "--yes"]);
    expect(third.code, third.stderr).toBe(0);
    await expectObot(db, fields, keys.k3);

    const wiped = await cli(["delete", "--yes", "--json"]);
    expect(wiped.code, wiped.stderr).toBe(0);
    for (const table of ["users", "credentials", "properties"]) {
      const left = await db.query<{ n: number | string }>(`SELECT count(*) AS n FROM ${table}`);
      expect(Number(left[0]?.n), table).toBe(0);
    }
    expect((await keyRows(db)).every((row) => row.active_key_digest === null)).toBe(true);
  });

  it("refuses to start while values are under a key no configuration has, or under a KMS plugin", async () => {
    const other = config("other", [[keys.k1]]);
    const refused = await cli(["rotate", "--encryption-config", other, "--new-encryption-config", other, "--yes", "--json"]);
    expect(refused.code).toBe(3);
    expect(JSON.parse(refused.stdout).error).toMatchObject({ code: "unknown_key", subject: { keyIds: expect.arrayContaining([idOf(keys.k0), "identity"]) } });
    await db.query("UPDATE properties SET value = $1, encrypted = $2 WHERE key = 'setting.1'", [Buffer.from("k8s:enc:kms:v2:aws-kms:\x0a\x03abc").toString("base64"), kind === "postgres" ? true : 1]);
    const c1 = config("c1", [[keys.k1], [keys.k0], "identity"]);
    const kms = await cli(["rotate", "--encryption-config", c1, "--new-encryption-config", c1, "--yes", "--json"]);
    expect(kms.code).toBe(3);
    expect(JSON.parse(kms.stdout).error.details.join("\n")).toMatch(/properties\.value: 1 value\(s\) under KMS provider aws-kms \(kms:v2:aws-kms\/\?\); pass an --encryption-config that lists it with its plugin's endpoint/);
    await expectObot(db, fields.filter((field) => !(field.table === "properties" && field.id === "setting.1")), null, { asSeeded: true, seedKey: keys.k0 });
  });

  it("reports a value under the wrong additional data with the AAD tried, and --aad-fallback empty repairs legacy rows", async () => {
    const legacy = fields.find((field) => field.table === "users" && field.seeded === "key" && field.plaintext !== null && field.plaintext !== "") as ObotField;
    await db.query(`UPDATE users SET ${legacy.column} = $1 WHERE id = $2`, [sealK8s(keys.k0, legacy.plaintext as string, ""), legacy.id]);
    const c1 = config("c1", [[keys.k1], [keys.k0], "identity"]);
    const run = await cli(["rotate", "--encryption-config", c1, "--new-encryption-config", c1, "--yes", "--json"]);
    expect(run.code).toBe(3);
    const result = JSON.parse(run.stdout);
    expect(result.status).toBe("failed-rows");
    expect(result.undecryptable).toEqual([expect.objectContaining({ table: "users", rowKey: { id: legacy.id }, failure: expect.objectContaining({ column: legacy.column, keyId: idOf(keys.k0), reason: expect.stringContaining(`additional data "${legacy.aad}"`) }) })]);
    // The old key still encrypts that value, so it is kept.
    expect(result.keysKept).toEqual([expect.objectContaining({ keyId: idOf(keys.k0) })]);

    const repaired = await cli(["rotate", "--encryption-config", c1, "--new-encryption-config", c1, "--yes", "--aad-fallback", "empty", "--json"]);
    expect(repaired.code, repaired.stdout).toBe(0);
    expect(JSON.parse(repaired.stdout).keysRevoked).toEqual([idOf(keys.k0)]);
    await expectObot(db, fields, keys.k1);
  });

  it("reports a double-encrypted value, and --repair-double-encryption rotates it as the inner value", async () => {
    const victim = fields.find((field) => field.table === "users" && field.seeded === "key" && field.plaintext !== null && field.plaintext !== "") as ObotField;
    const inner = sealK8s(keys.k0, victim.plaintext as string, victim.aad);
    await db.query(`UPDATE users SET ${victim.column} = $1 WHERE id = $2`, [sealK8s(keys.k0, inner, victim.aad), victim.id]);
    const c1 = config("c1", [[keys.k1], [keys.k0], "identity"]);
    const run = await cli(["rotate", "--encryption-config", c1, "--new-encryption-config", c1, "--yes", "--json"]);
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout).undecryptable[0].failure.reason).toMatch(/double-encrypted/);
    const repaired = await cli(["rotate", "--encryption-config", c1, "--new-encryption-config", c1, "--yes", "--repair-double-encryption"]);
    expect(repaired.code, repaired.stdout + repaired.stderr).toBe(0);
    await expectObot(db, fields, keys.k1);
  });

  it("writes with aescbc (no MAC) only when allowed, and says so in the plan", async () => {
    const cbcKey = k8sKey("aescbc", "cbc1");
    registerSecret(cbcKey.secret);
    const c0 = config("c0", [[keys.k0], "identity"]);
    const cbc = config("cbc", [[cbcKey], [keys.k0], "identity"]);
    const refused = await cli(["rotate", "--encryption-config", c0, "--new-encryption-config", cbc, "--yes"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.split("\n")[0]).toMatch(/aescbc, which has no MAC; pass --allow-aescbc-writes/);
    const allowed = await cli(["rotate", "--encryption-config", c0, "--new-encryption-config", cbc, "--allow-aescbc-writes", "--yes", "--json"]);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(JSON.parse(allowed.stdout).plan.warnings).toContainEqual(expect.stringMatching(/aescbc has no MAC/));
    await expectObot(db, fields, cbcKey);
  });

  it("warns about resources the configuration encrypts that no walked table holds, so their keys are kept", async () => {
    const path = join(dir, "wide.yaml");
    writeFileSync(path, encryptionConfigYaml([...OBOT_RESOURCES, "mcpauditlogs.obot.obot.ai"], [[keys.k0], "identity"]), { mode: 0o600 });
    const census = await cli(["status", "--encryption-config", path, "--json"]);
    expect(census.code, census.stdout).toBe(0);
    expect(JSON.parse(census.stdout).warnings.map((warning: { message: string }) => warning.message)).toContainEqual(expect.stringMatching(/covers mcpauditlogs\.obot\.obot\.ai, which no table dbcrypt walks holds/));
  });

  it("a bad configuration file is exit 2 naming the file and line, before the database is touched", async () => {
    const path = join(dir, "bad.yaml");
    writeFileSync(path, "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [users.obot.obot.ai]\n    providers:\n      - aesgcm:\n          keys:\n            - name: key0\n              secret: c2hvcnQ=\n", { mode: 0o600 });
    const run = await cli(["status", "--encryption-config", path]);
    expect(run.code).toBe(2);
    expect(run.stderr.split("\n")[0]).toMatch(new RegExp(`bad\\.yaml:9: aesgcm key "key0": secret is 5 bytes`));
  });
});
