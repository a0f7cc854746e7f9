/**
 * The KMS v2 plugin client and provider against a real gRPC plugin on a unix socket
 * (test/support/kms-plugin-server.ts): round trips through the plugin, one Encrypt per run and
 * one Decrypt per distinct DEK source, cells written as the Kubernetes API server writes them
 * (both modes), and the failures an operator meets: unhealthy, slow, missing, mid-rotation.
 */
import { inspect } from "node:util";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KmsPluginClient } from "../../src/crypto/k8s/kms-plugin-client.js";
import { KmsV2Provider, kmsV2KeyIdFor, kmsV2KeyIdOfCell } from "../../src/crypto/k8s/kms-v2-provider.js";
import { DbcryptError } from "../../src/errors.js";
import { KmsPluginServer, kubernetesKmsV2Open, kubernetesKmsV2Writer } from "../support/kms-plugin-server.js";

const noInner = () => undefined;
let server: KmsPluginServer;
const opened: Array<{ close(): void }> = [];

function provider(options: { name?: string; endpoint?: string; timeoutMs?: number } = {}): KmsV2Provider {
  const made = new KmsV2Provider({ name: options.name ?? "aws-kms", endpoint: options.endpoint ?? server.endpoint, timeoutMs: options.timeoutMs ?? 2000, inner: noInner });
  opened.push(made);
  return made;
}

/** The DbcryptError a promise rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<DbcryptError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(DbcryptError);
  return error as DbcryptError;
}

beforeAll(async () => {
  server = await KmsPluginServer.start();
});
afterAll(async () => {
  await server.stop();
});
beforeEach(() => {
  server.setHealthz("ok");
  server.setDelayMs(0);
  server.setEncryptKeyIdMismatch(false);
  server.resetCalls();
});
afterEach(() => {
  for (const made of opened.splice(0)) made.close();
});

describe("KMS v2 provider through a plugin", () => {
  it("round trips: one Encrypt per run, cells Kubernetes can read, opened by the next run after one Decrypt", async () => {
    const run = provider();
    const write = await run.prepareWrites();
    expect(server.calls).toEqual({ Status: 1, Encrypt: 1, Decrypt: 0 });
    expect(write.id).toBe(kmsV2KeyIdFor("aws-kms", server.currentKeyId));
    const rows = Array.from({ length: 40 }, (_, index) => ({ plaintext: `secret ${index}`, aad: `credentials/user-${index}`, format: index % 2 === 0 ? "bare" : "json-envelope" }));
    const cells = rows.map((row) => write.seal(row.plaintext, { aad: row.aad }, row.format));
    expect(server.calls.Encrypt).toBe(1);
    expect(cells[1]?.startsWith('{"_obot_encrypted_env":"')).toBe(true);
    for (const [index, cell] of cells.entries()) {
      expect(kmsV2KeyIdOfCell(cell)).toBe(write.id);
      const bare = index % 2 === 0 ? cell : (JSON.parse(cell) as { _obot_encrypted_env: string })._obot_encrypted_env;
      expect(kubernetesKmsV2Open(server, "aws-kms", bare, rows[index]?.aad)).toBe(rows[index]?.plaintext);
    }
    // The run that wrote them opens them without asking the plugin.
    const own = write.open(cells[0] as string, { aad: rows[0]?.aad ?? "" });
    expect(own.ok && own.plaintext.toString()).toBe("secret 0");
    expect(server.calls.Decrypt).toBe(0);

    const next = provider();
    await next.prepareCells(cells);
    await next.prepareCells(cells);
    expect(server.calls.Decrypt).toBe(1);
    const read = next.readKey();
    for (const [index, cell] of cells.entries()) {
      const result = read.open(cell, { aad: rows[index]?.aad ?? "" });
      expect(result).toEqual({ ok: true, plaintext: Buffer.from(rows[index]?.plaintext ?? ""), format: rows[index]?.format });
    }
    const wrongAad = read.open(cells[0] as string, { aad: "credentials/someone-else" });
    expect(wrongAad.ok ? "" : wrongAad.reason).toBe('authentication failed with additional data "credentials/someone-else" (wrong additional data or corrupted value)');
    expect(inspect(write)).toBe(`KmsV2WriteKey(${write.id})`);
    expect(JSON.stringify(write)).toBe(JSON.stringify({ id: write.id }));
  });

  it("decrypts each distinct DEK source once across many cells, and skips cells of other providers", async () => {
    const restarts = [kubernetesKmsV2Writer(server, "aws-kms"), kubernetesKmsV2Writer(server, "aws-kms"), kubernetesKmsV2Writer(server, "aws-kms", "aes-gcm-key")];
    const cells = restarts.flatMap((writer, restart) => Array.from({ length: 30 }, (_, index) => ({ cell: writer.seal(`value ${restart}/${index}`, `row-${index}`), plaintext: `value ${restart}/${index}`, aad: `row-${index}` })));
    const others = [kubernetesKmsV2Writer(server, "gcp-kms").seal("elsewhere"), Buffer.from("plaintext").toString("base64"), Buffer.from("k8s:enc:aesgcm:v1:key0:xxxxxxxxxxxxxxxxxxxxxxxxxxxx").toString("base64")];
    const run = provider();
    await run.prepareCells([...cells.map((entry) => entry.cell), ...others]);
    expect(server.calls).toEqual({ Status: 0, Encrypt: 0, Decrypt: 3 });
    for (const entry of cells) {
      const result = run.readKey().open(entry.cell, { aad: entry.aad });
      expect(result.ok && result.plaintext.toString()).toBe(entry.plaintext);
    }
    expect(JSON.stringify(run)).toBe('{"name":"aws-kms","sources":{"decrypted":3,"refused":0}}');
  });

  it("opens cells the API server wrote in AES_GCM_KEY mode, with a legacy additional data fallback", async () => {
    const writer = kubernetesKmsV2Writer(server, "aws-kms", "aes-gcm-key");
    const cell = writer.seal("legacy mode", "old-path");
    const run = provider();
    await run.prepareCells([cell]);
    const result = run.readKey().open(cell, { aad: "new-path", "aad.1": "old-path" });
    expect(result.ok && result.plaintext.toString()).toBe("legacy mode");
  });

  it("a key rotated inside the plugin leaves earlier cells under another (stale) key id, still readable", async () => {
    const before = provider();
    const oldWrite = await before.prepareWrites();
    const oldCells = ["a", "b", "c"].map((plaintext) => oldWrite.seal(plaintext, { aad: plaintext }));
    server.rotateKey();
    const after = provider();
    const health = await after.checkHealth();
    expect(health).toEqual({ keyId: kmsV2KeyIdFor("aws-kms", server.currentKeyId), version: "v2" });
    const newWrite = await after.prepareWrites();
    expect(newWrite.id).toBe(health.keyId);
    expect(kmsV2KeyIdOfCell(oldCells[0] as string)).toBe(oldWrite.id);
    expect(oldWrite.id).not.toBe(newWrite.id);
    await after.prepareCells(oldCells);
    for (const [index, cell] of oldCells.entries()) {
      const result = after.readKey().open(cell, { aad: ["a", "b", "c"][index] as string });
      expect(result.ok && result.plaintext.toString()).toBe(["a", "b", "c"][index]);
    }
    const notMine = newWrite.open(oldCells[0] as string, { aad: "a" });
    expect(notMine.ok ? "" : notMine.reason).toBe(`not under key ${newWrite.id}`);
  });

  it("reports, per cell, a DEK source the plugin refuses, without failing the others", async () => {
    const good = kubernetesKmsV2Writer(server, "aws-kms").seal("fine");
    const wire = Buffer.from(kubernetesKmsV2Writer(server, "aws-kms").seal("lost"), "base64");
    // Flip the last byte of the plugin's ciphertext (field 3 ends just before the annotation entry's tag).
    const annotationTag = wire.lastIndexOf(0x22);
    wire[annotationTag - 1] = (wire[annotationTag - 1] as number) ^ 1;
    const bad = wire.toString("base64");
    const run = provider();
    await run.prepareCells([good, bad]);
    expect(server.calls.Decrypt).toBe(2);
    const fine = run.readKey().open(good);
    expect(fine.ok && fine.plaintext.toString()).toBe("fine");
    const lost = run.readKey().open(bad);
    expect(lost.ok ? "" : lost.reason).toMatch(/^its KMS v2 DEK source did not decrypt \(KMS plugin aws-kms at unix:\/\/\/.*: Decrypt failed: INVALID_ARGUMENT: ciphertext does not authenticate\)$/);
  });

  it("refuses an unhealthy plugin, naming its socket and the call, and encrypts nothing", async () => {
    server.setHealthz("unhealthy: key disabled");
    const run = provider();
    const error = await failure(run.checkHealth());
    expect(error.code).toBe("kms_unavailable");
    expect(error.message).toBe(`KMS plugin aws-kms at ${server.endpoint}: Status reports healthz "unhealthy: key disabled"`);
    expect((await failure(run.prepareWrites())).code).toBe("kms_unavailable");
    expect(server.calls.Encrypt).toBe(0);
  });

  it("gives up on a slow plugin after about the timeout, naming the call", async () => {
    server.setDelayMs(3000);
    const run = provider({ timeoutMs: 300 });
    const started = Date.now();
    const error = await failure(run.checkHealth());
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1500);
    expect(error.code).toBe("kms_unavailable");
    expect(error.message).toBe(`KMS plugin aws-kms at ${server.endpoint}: Status failed: no answer within 300ms`);
    expect(error.message).not.toContain("\n");
    // A Decrypt that gets no answer fails the preparation rather than marking cells.
    const cell = kubernetesKmsV2Writer(server, "aws-kms").seal("slow");
    const decrypt = await failure(run.prepareCells([cell]));
    expect(decrypt.message).toContain("Decrypt failed: no answer within 300ms");
  });

  it("names the socket when the plugin is not there", async () => {
    const endpoint = `${server.endpoint.replace(/kms\.sock$/, "")}missing.sock`;
    const run = provider({ endpoint, timeoutMs: 300 });
    const error = await failure(run.checkHealth());
    expect(error.code).toBe("kms_unavailable");
    expect(error.message).toBe(`KMS plugin aws-kms at ${endpoint}: Status failed: no answer within 300ms; no socket at ${endpoint.slice("unix://".length)}`);
    expect(error.hint).toContain(endpoint);
  });

  it("refuses a write seed Encrypt wrapped under another key than Status reports", async () => {
    server.setEncryptKeyIdMismatch(true);
    const run = provider();
    const error = await failure(run.prepareWrites());
    expect(error.code).toBe("kms_unavailable");
    expect(error.message).toBe(`KMS plugin aws-kms at ${server.endpoint}: Encrypt answered under key ${kmsV2KeyIdFor("aws-kms", `${server.currentKeyId}-next`)} but Status reports ${kmsV2KeyIdFor("aws-kms", server.currentKeyId)}`);
    expect(() => run.writeKey()).toThrow(/prepareWrites/);
  });
});

describe("KMS v2 plugin client", () => {
  it("speaks to a plugin on an abstract socket (/@name)", async () => {
    const abstract = await KmsPluginServer.start({ abstract: true });
    const client = new KmsPluginClient({ name: "abstract", endpoint: abstract.endpoint, timeoutMs: 2000 });
    try {
      expect(abstract.endpoint).toMatch(/^unix:\/\/\/@dbcrypt-kms-/);
      expect(await client.status()).toEqual({ version: "v2", healthz: "ok", keyId: abstract.currentKeyId });
      const wrapped = await client.encrypt(Buffer.alloc(32, 1));
      expect(await client.decrypt(wrapped.ciphertext, wrapped.keyId, wrapped.annotations)).toEqual(Buffer.alloc(32, 1));
    } finally {
      client.close();
      await abstract.stop();
    }
  });

  it("refuses a Status of another API version", async () => {
    server.setVersion("v1beta1");
    const client = new KmsPluginClient({ name: "aws-kms", endpoint: server.endpoint });
    try {
      expect((await failure(client.status())).message).toBe(`KMS plugin aws-kms at ${server.endpoint}: Status reports version "v1beta1"; dbcrypt speaks v2 and v2beta1`);
      server.setVersion("v2beta1");
      expect((await client.status()).version).toBe("v2beta1");
    } finally {
      server.setVersion("v2");
      client.close();
    }
  });

  it("reports a Decrypt the plugin refuses with its status, on one line, without the ciphertext", async () => {
    const client = new KmsPluginClient({ name: "aws-kms", endpoint: server.endpoint });
    try {
      const error = await failure(client.decrypt(Buffer.from("not-a-ciphertext"), "no-such-key", {}));
      expect(error.message).toBe(`KMS plugin aws-kms at ${server.endpoint}: Decrypt failed: NOT_FOUND: no key no-such-key`);
      expect(error.message).not.toContain("not-a-ciphertext");
    } finally {
      client.close();
    }
  });
});
