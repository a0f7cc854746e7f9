/**
 * Obot behind a KMS: Kubernetes KMS v2 plugins reached over their unix sockets, through the built
 * CLI on both databases. The plugins are real gRPC servers in this process (test/support/
 * kms-plugin-server.ts, backed by local keys); cells are checked by opening them the way the API
 * server does, through the plugin. The rotations are the ones operators ask for: a local aesgcm key
 * to a KMS (Obot "custom" → "aws"), a key rotated inside the KMS, one KMS to another (obot#1998,
 * AWS → Azure), and out of the KMS altogether; and a plugin that is down stops a run unchanged.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { kmsV2KeyIdFor } from "../../src/crypto/k8s/kms-v2-provider.js";
import { dbArg, registerSecret, runCli } from "../support/cli.js";
import { encryptionConfigYaml, k8sKey } from "../support/k8s-crypto.js";
import { KmsPluginServer, kubernetesKmsV2Open, kubernetesKmsV2Writer } from "../support/kms-plugin-server.js";
import { expectObot, OBOT_RESOURCES, seedObot, type CellOpener, type ObotField } from "../support/obot-fixtures.js";
import { checksumDatabase, createTestDatabase, ENGINE_KINDS, openTestDb, type CreatedTestDatabase, type TestDb } from "../support/test-db.js";

const ROWS = 24;
const OBOT_TABLES = ["users", "credentials", "properties", "dbcrypt_keys"];

describe.each(ENGINE_KINDS)("Obot through KMS v2 plugins on %s", (kind) => {
  let database: CreatedTestDatabase;
  let db: TestDb;
  let url: string;
  let dir: string;
  let fields: ObotField[];
  let aws: KmsPluginServer;
  let azure: KmsPluginServer;
  const local = k8sKey("aesgcm", "key0");
  registerSecret(local.secret);
  const config = (name: string, providers: Parameters<typeof encryptionConfigYaml>[1]) => {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(path, encryptionConfigYaml(OBOT_RESOURCES, providers), { mode: 0o600 });
    return path;
  };
  const cli = (args: string[]) => runCli([...args, "--db", url, "--preset", "obot"]);
  const through = (server: KmsPluginServer, name: string): CellOpener => ({
    name,
    // Obot's JSON envelope is unwrapped by expectObot; a cell here is bare base64.
    open: (cell, aad) => kubernetesKmsV2Open(server, name, cell, aad),
  });
  const encryptedIds = async (configPath: string): Promise<string[]> => {
    const census = await cli(["status", "--encryption-config", configPath, "--json"]);
    expect(census.code, census.stdout + census.stderr).toBe(0);
    const columns = JSON.parse(census.stdout).columns as { encrypted: Record<string, number> }[];
    return [...new Set(columns.flatMap((column) => Object.keys(column.encrypted)))].sort();
  };

  beforeEach(async () => {
    database = await createTestDatabase(kind, "obotkms");
    db = await openTestDb(database.target);
    url = dbArg(database.target);
    dir = mkdtempSync(join(tmpdir(), "dbcrypt-obot-kms-"));
    fields = await seedObot(db, local, ROWS);
    expect((await cli(["keys", "init"])).code).toBe(0);
    aws = await KmsPluginServer.start();
    azure = await KmsPluginServer.start();
  });

  afterEach(async () => {
    await aws.stop();
    await azure.stop();
    rmSync(dir, { recursive: true, force: true });
    await db.close();
    await database.cleanup();
  });

  it("custom → aws → (key rotated inside the KMS) → azure → decrypt, one Encrypt per write run", async () => {
    const custom = config("custom", [[local], "identity"]);
    const awsConfig = config("aws", [{ kms: "aws-kms", endpoint: aws.endpoint }, [local], "identity"]);
    const awsOnly = config("aws-only", [{ kms: "aws-kms", endpoint: aws.endpoint }, "identity"]);
    const azureConfig = config("azure", [{ kms: "azure-kms", endpoint: azure.endpoint }, { kms: "aws-kms", endpoint: aws.endpoint }, "identity"]);
    const awsKeyId = () => kmsV2KeyIdFor("aws-kms", aws.currentKeyId);

    // A dry run plans under the plugin's current key without making it Encrypt anything.
    const planned = await cli(["rotate", "--encryption-config", custom, "--new-encryption-config", awsConfig, "--dry-run", "--json"]);
    expect(planned.code, planned.stdout + planned.stderr).toBe(0);
    expect(JSON.parse(planned.stdout).plan.keySources).toContainEqual({ keyId: awsKeyId(), source: `KMS plugin aws-kms at ${aws.endpoint}`, writes: true });
    expect(aws.calls.Encrypt).toBe(0);

    const toAws = await cli(["rotate", "--encryption-config", custom, "--new-encryption-config", awsConfig, "--yes", "--json", "--batch-size", "5"]);
    expect(toAws.code, toAws.stdout + toAws.stderr).toBe(0);
    const result = JSON.parse(toAws.stdout);
    expect(result).toMatchObject({ status: "done", keysRevoked: ["aesgcm:key0"] });
    expect(result.plan.keySources).toContainEqual({ keyId: awsKeyId(), source: `KMS plugin aws-kms at ${aws.endpoint}`, writes: true });
    // The API server's discipline: one Encrypt of one seed for the whole run, after a Status.
    expect(aws.calls.Encrypt).toBe(1);
    expect(aws.calls.Decrypt).toBe(0);
    await expectObot(db, fields, null, { opener: through(aws, "aws-kms") });
    expect(await encryptedIds(awsOnly)).toEqual([awsKeyId()]);

    // A new process reads the run's cells with one Decrypt of their one DEK source.
    aws.resetCalls();
    const gate = await cli(["status", "--encryption-config", awsOnly, "--verify", "--require-key", awsKeyId()]);
    expect(gate.code, gate.stdout + gate.stderr).toBe(0);
    expect(aws.calls.Decrypt).toBe(1);

    // The key rotated inside the KMS: every cell under the old key id is stale and is rewritten.
    const before = awsKeyId();
    aws.rotateKey();
    expect(await encryptedIds(awsOnly)).toEqual([before]);
    const stale = await cli(["rotate", "--encryption-config", awsOnly, "--new-encryption-config", awsOnly, "--yes", "--json"]);
    expect(stale.code, stale.stdout + stale.stderr).toBe(0);
    expect(JSON.parse(stale.stdout).plan.lines.every((line: { from: string; to: string }) => line.from === before && line.to === awsKeyId())).toBe(true);
    expect(await encryptedIds(awsOnly)).toEqual([awsKeyId()]);
    await expectObot(db, fields, null, { opener: through(aws, "aws-kms") });

    // One KMS to another (obot#1998): both plugins up during the move, azure first in the new config.
    aws.resetCalls();
    const toAzure = await cli(["rotate", "--encryption-config", awsOnly, "--new-encryption-config", azureConfig, "--yes"]);
    expect(toAzure.code, toAzure.stdout + toAzure.stderr).toBe(0);
    expect(azure.calls.Encrypt).toBe(1);
    expect(aws.calls.Encrypt).toBe(0);
    await expectObot(db, fields, null, { opener: through(azure, "azure-kms") });
    expect(await encryptedIds(azureConfig)).toEqual([kmsV2KeyIdFor("azure-kms", azure.currentKeyId)]);

    const decrypted = await cli(["decrypt", "--encryption-config", azureConfig, "--yes"]);
    expect(decrypted.code, decrypted.stdout + decrypted.stderr).toBe(0);
    await expectObot(db, fields, null);
  });

  it("reads cells the API server wrote in both DEK modes, one Decrypt per distinct DEK source", async () => {
    const seedMode = kubernetesKmsV2Writer(aws, "aws-kms", "seed");
    const keyMode = kubernetesKmsV2Writer(aws, "aws-kms", "aes-gcm-key");
    const properties = fields.filter((field) => field.table === "properties");
    for (const [index, field] of properties.entries()) {
      const writer = index % 2 === 0 ? seedMode : keyMode;
      await db.query("UPDATE properties SET value = $1, encrypted = $2 WHERE key = $3", [writer.seal(field.plaintext as string, field.aad), kind === "postgres" ? true : 1, field.id]);
    }
    const awsConfig = config("aws", [{ kms: "aws-kms", endpoint: aws.endpoint }, [local], "identity"]);
    aws.resetCalls();
    const decrypted = await cli(["decrypt", "--encryption-config", awsConfig, "--yes", "--batch-size", "2"]);
    expect(decrypted.code, decrypted.stdout + decrypted.stderr).toBe(0);
    expect(aws.calls.Decrypt).toBe(2);
    await expectObot(db, fields, null);
  });

  it.each([
    ["unhealthy", (server: KmsPluginServer) => server.setHealthz("err: key disabled"), /Status reports healthz "err: key disabled"/],
    ["slow", (server: KmsPluginServer) => server.setDelayMs(5_000), /Status failed: no answer within 500ms/],
    ["unreachable", async (server: KmsPluginServer) => server.stop(), /Status failed/],
  ] as const)("a plugin that is %s stops the run, exit 1, naming the socket and the call, nothing written", async (_mode, breakIt, words) => {
    const custom = config("custom", [[local], "identity"]);
    const awsConfig = config("aws", [{ kms: "aws-kms", endpoint: aws.endpoint, timeout: "500ms" }, [local], "identity"]);
    await breakIt(aws);
    const before = await checksumDatabase(db, OBOT_TABLES);
    const started = Date.now();
    const run = await cli(["rotate", "--encryption-config", custom, "--new-encryption-config", awsConfig, "--yes"]);
    expect(run.code, run.stderr).toBe(1);
    const firstLine = run.stderr.split("\n")[0] as string;
    expect(firstLine).toContain(`KMS plugin aws-kms at ${aws.endpoint}`);
    expect(firstLine).toMatch(words);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await checksumDatabase(db, OBOT_TABLES)).toBe(before);
  });
});
