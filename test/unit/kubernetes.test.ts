/**
 * Kubernetes EncryptionConfiguration cells (Obot): Kubernetes' own AES-GCM compatibility vector,
 * an independent node:crypto / tweetnacl implementation of every provider in both directions,
 * the strict configuration reader, key ids read from prefixes, the row flag, and double encryption.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseEncryptionConfig } from "../../src/crypto/k8s/encryption-config.js";
import { IdentityKey, ProviderKey } from "../../src/crypto/k8s/provider-keys.js";
import { schemeNamed } from "../../src/crypto/schemes/registry.js";
import { DbcryptError } from "../../src/errors.js";
import { encryptionConfigYaml, k8sKey, openK8s, sealK8s, type K8sKey } from "../support/k8s-crypto.js";

const dir = mkdtempSync(join(tmpdir(), "dbcrypt-k8s-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function configFile(yaml: string): string {
  const path = join(dir, `config-${files++}.yaml`);
  writeFileSync(path, yaml, { mode: 0o600 });
  return path;
}

const noInner = () => undefined;

describe("Kubernetes providers", () => {
  it("opens Kubernetes' TestGCMLegacyDataCompatibility vector (AES-128, additional data \"bamboo\")", () => {
    const payload = Buffer.from("9f27c8fcea8a58c467d8e437dbf2d85955f9b4bd912f4ef967d788a0cb07797dac0a3f0a0845605ca85ac8562b4ae1", "hex");
    const key = new ProviderKey("aesgcm", "key1", Buffer.from("snorlax_awesomes", "ascii"), noInner);
    const cell = Buffer.concat([Buffer.from("k8s:enc:aesgcm:v1:key1:"), payload]).toString("base64");
    const opened = key.open(cell, { aad: "bamboo" });
    expect(opened.ok && opened.plaintext.toString()).toBe("pandas are the best");
    const wrongAad = key.open(cell, { aad: "panda" });
    expect(wrongAad.ok).toBe(false);
    expect(wrongAad.ok ? "" : wrongAad.reason).toContain('additional data "panda"');
  });

  it.each<[K8sKey["provider"], number]>([["aesgcm", 16], ["aesgcm", 24], ["aesgcm", 32], ["aescbc", 16], ["aescbc", 24], ["aescbc", 32], ["secretbox", 32]])("%s (%i-byte key) agrees with an independent implementation both ways", (provider, size) => {
    const oracle = k8sKey(provider, "k1", size);
    const key = new ProviderKey(provider, "k1", oracle.secret, noInner);
    const aad = "users.obot.obot.ai/abc";
    const opened = key.open(sealK8s(oracle, "hello ✓", aad), { aad });
    expect(opened.ok && opened.plaintext.toString()).toBe("hello ✓");
    expect(openK8s(oracle, key.seal("hello ✓", { aad }), aad)).toBe("hello ✓");
  });

  it("tries legacy additional data after the row's own, and the identity provider refuses k8s:enc: data", () => {
    const oracle = k8sKey("aesgcm", "k1");
    const key = new ProviderKey("aesgcm", "k1", oracle.secret, noInner);
    const legacy = sealK8s(oracle, "old row", "");
    expect(key.open(legacy, { aad: "users.obot.obot.ai/h" }).ok).toBe(false);
    const repaired = key.open(legacy, { aad: "users.obot.obot.ai/h", "aad.1": "" });
    expect(repaired.ok && repaired.plaintext.toString()).toBe("old row");
    const identity = new IdentityKey(noInner);
    expect(identity.open(Buffer.from("plain").toString("base64")).ok).toBe(true);
    expect(identity.open(legacy)).toEqual({ ok: false, reason: "identity refuses data that starts with k8s:enc:" });
  });

  it("wraps and unwraps Obot's JSON envelope", () => {
    const oracle = k8sKey("aesgcm", "k1");
    const key = new ProviderKey("aesgcm", "k1", oracle.secret, noInner);
    const sealed = key.seal('{"TOKEN":"x"}', { aad: "cred///ctx" }, "json-envelope");
    const envelope = JSON.parse(sealed) as Record<string, string>;
    expect(Object.keys(envelope)).toEqual(["_obot_encrypted_env"]);
    expect(openK8s(oracle, envelope._obot_encrypted_env as string, "cred///ctx")).toBe('{"TOKEN":"x"}');
    const opened = key.open(sealed, { aad: "cred///ctx" });
    expect(opened.ok && opened.format).toBe("json-envelope");
  });
});

describe("EncryptionConfiguration files", () => {
  const good = (body: string) => `apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [users.obot.obot.ai]\n    providers:\n${body}`;

  it("reads providers in order, with key sizes checked and kms recognised", () => {
    const secret = Buffer.alloc(32, 7).toString("base64");
    const config = parseEncryptionConfig(good(`      - aesgcm:\n          keys:\n            - name: key0\n              secret: ${secret}\n      - kms:\n          apiVersion: v2\n          name: aws-kms\n          endpoint: unix:///tmp/x.sock\n          timeout: 3s\n      - identity: {}\n`), "c.yaml");
    expect(config.resources[0]?.providers.map((provider) => provider.type)).toEqual(["aesgcm", "kms", "identity"]);
  });

  it.each([
    ["an unknown field, with its line", `      - aesgcm:\n          keys:\n            - name: key0\n              secrat: x\n`, /c\.yaml:9: unknown field "secrat"/],
    ["a wrong key size", `      - secretbox:\n          keys:\n            - name: key0\n              secret: ${Buffer.alloc(16).toString("base64")}\n`, /c\.yaml:9: secretbox key "key0": secret is 16 bytes; secretbox takes 32/],
    ["unpadded base64", `      - aesgcm:\n          keys:\n            - name: key0\n              secret: AAAA_A\n`, /not padded standard base64/],
    ["two providers in one entry", `      - aesgcm: {keys: [{name: a, secret: ${Buffer.alloc(32).toString("base64")}}]}\n        identity: {}\n`, /exactly one provider/],
    ["a key name with a colon", `      - aesgcm: {keys: [{name: "a:b", secret: ${Buffer.alloc(32).toString("base64")}}]}\n`, /must not contain ':'/],
  ])("refuses %s (exit 2, bad_config, naming the line)", (_what, body, message) => {
    let caught: unknown;
    try {
      parseEncryptionConfig(good(body), "c.yaml");
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DbcryptError);
    expect((caught as DbcryptError).code).toBe("bad_config");
    expect((caught as DbcryptError).message).toMatch(message);
    expect((caught as DbcryptError).message).not.toContain(Buffer.alloc(32).toString("base64"));
  });

  it("never echoes a secret pasted where a field name belongs", () => {
    const secret = Buffer.alloc(32, 9).toString("base64");
    let message = "";
    try {
      parseEncryptionConfig(good(`      - aesgcm:\n          keys:\n            - name: key0\n              ${secret}: x\n`), "c.yaml");
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/unknown field \(name not shown\)/);
    expect(message).not.toContain(secret);
  });

  it("accepts the legacy apiVersion v1 / kind EncryptionConfig, and refuses identity with fields", () => {
    const legacy = `apiVersion: v1\nkind: EncryptionConfig\nresources:\n  - resources: [secrets]\n    providers:\n      - identity: {}\n`;
    expect(parseEncryptionConfig(legacy, "c.yaml").resources[0]?.providers).toEqual([{ type: "identity" }]);
    expect(() => parseEncryptionConfig(good("      - identity: foo\n"), "c.yaml")).toThrow(/identity takes no fields/);
  });

  it("refuses another kind, and bad YAML", () => {
    expect(() => parseEncryptionConfig("apiVersion: v1\nkind: Secret\nresources: []\n", "c.yaml")).toThrow(/EncryptionConfiguration/);
    expect(() => parseEncryptionConfig("a: [\n", "c.yaml")).toThrow(/not valid YAML/);
  });
});

describe("the k8s-encryption-config scheme", () => {
  const resources = ["users.obot.obot.ai"];
  const key0 = k8sKey("aesgcm", "key0");
  const key1 = k8sKey("secretbox", "key1");
  const current = configFile(encryptionConfigYaml(resources, [[key0], "identity"]));
  const next = configFile(encryptionConfigYaml(resources, [[key1], [key0], "identity"]));

  it("reads key ids from prefixes, without keys, and honours the row flag", () => {
    const scheme = schemeNamed("k8s-encryption-config", {});
    expect(scheme.keyIdOfCell?.(sealK8s(key0, "x", ""), { encrypted: "true" })).toBe("aesgcm:key0");
    expect(scheme.keyIdOfCell?.(sealK8s(key1, "x", ""), { encrypted: "1" })).toBe("secretbox:key1");
    expect(scheme.keyIdOfCell?.(Buffer.from("k8s:enc:kms:v2:aws-kms:\x0a\x01x").toString("base64"), { encrypted: "t" })).toBe("kms:v2:aws-kms/?");
    expect(scheme.keyIdOfCell?.(Buffer.from("plain").toString("base64"), { encrypted: "true" })).toBe("identity");
    expect(scheme.keyIdOfCell?.("plain text", { encrypted: "false" })).toBeUndefined();
    expect(scheme.keyIdOfCell?.("plain text", { encrypted: "true" })).toBe("not-base64");
  });

  it("reads with every key of both configs and writes with the new one's first provider's first key", () => {
    const scheme = schemeNamed("k8s-encryption-config", { encryptionConfig: current, newEncryptionConfig: next });
    const keys = scheme.configuredKeys?.();
    expect(keys?.write?.id).toBe("secretbox:key1");
    expect(keys?.read.map((key) => key.id).sort()).toEqual(["aesgcm:key0", "identity", "secretbox:key1"]);
  });

  it("refuses a new key reusing an old key's name with another secret, aescbc writes unless allowed, and kms v1 writes", () => {
    const clash = configFile(encryptionConfigYaml(resources, [[k8sKey("aesgcm", "key0")]]));
    expect(() => schemeNamed("k8s-encryption-config", { encryptionConfig: current, newEncryptionConfig: clash })).toThrow(/key aesgcm:key0 appears with two different secrets/);
    // Within one file too: Helm's default name, new secret first and the old one after it.
    const inOneFile = configFile(encryptionConfigYaml(resources, [[k8sKey("aesgcm", "key0")], [key0], "identity"]));
    expect(() => schemeNamed("k8s-encryption-config", { newEncryptionConfig: inOneFile })).toThrow(/key aesgcm:key0 appears with two different secrets/);
    const twoEntries = configFile(`${encryptionConfigYaml(["users.obot.obot.ai"], [[key0]])}  - resources: [credentials.obot.obot.ai]\n    providers:\n      - identity: {}\n`);
    expect(() => schemeNamed("k8s-encryption-config", { encryptionConfig: twoEntries })).toThrow(/other providers than users\.obot\.obot\.ai; dbcrypt needs one provider list/);
    expect(() => schemeNamed("k8s-encryption-config", { encryptionConfig: join(dir, "missing.yaml") })).toThrow(/cannot read encryption config .*missing\.yaml: ENOENT/);
    const cbc = configFile(encryptionConfigYaml(resources, [[k8sKey("aescbc", "cbc1")]]));
    expect(() => schemeNamed("k8s-encryption-config", { newEncryptionConfig: cbc })).toThrow(/--allow-aescbc-writes/);
    expect(schemeNamed("k8s-encryption-config", { newEncryptionConfig: cbc, allowAescbcWrites: true }).configuredKeys?.().write?.id).toBe("aescbc:cbc1");
    const kmsV1 = configFile(encryptionConfigYaml(resources, [{ kms: "aws-kms" }, "identity"]).replace("apiVersion: v2", "apiVersion: v1"));
    expect(() => schemeNamed("k8s-encryption-config", { newEncryptionConfig: kmsV1 })).toThrow(/kms v1 \(aws-kms\), which Kubernetes has deprecated/);
    // A KMS v2 plugin's write key exists only once start("write") has asked the plugin.
    const kmsV2 = configFile(encryptionConfigYaml(resources, [{ kms: "aws-kms" }, "identity"]));
    const scheme = schemeNamed("k8s-encryption-config", { newEncryptionConfig: kmsV2 });
    expect(scheme.configuredKeys?.().write).toBeUndefined();
    expect(scheme.configuredKeys?.().read.map((key) => key.id)).toEqual(["kms:v2:aws-kms/*", "identity"]);
    expect(scheme.mainThreadOnly).toBe(true);
  });

  it("reports a value that decrypts to another k8s:enc: cell, and opens the inner one only when asked", () => {
    const inner = sealK8s(key0, "the real secret", "users.obot.obot.ai/h");
    const outer = sealK8s(key0, inner, "users.obot.obot.ai/h");
    const strict = schemeNamed("k8s-encryption-config", { encryptionConfig: current }).configuredKeys?.().read.find((key) => key.id === "aesgcm:key0");
    const refused = strict?.open(outer, { aad: "users.obot.obot.ai/h" });
    expect(refused?.ok).toBe(false);
    expect(refused?.ok ? "" : refused?.reason).toMatch(/double-encrypted/);
    const repairing = schemeNamed("k8s-encryption-config", { encryptionConfig: current, repairDoubleEncryption: true }).configuredKeys?.().read.find((key) => key.id === "aesgcm:key0");
    const repaired = repairing?.open(outer, { aad: "users.obot.obot.ai/h" });
    expect(repaired?.ok && repaired.plaintext.toString()).toBe("the real secret");
  });

  it("worker threads rebuild the same keys, and notice a configuration file that changed underneath", () => {
    const path = configFile(encryptionConfigYaml(resources, [[key0]]));
    const scheme = schemeNamed("k8s-encryption-config", { encryptionConfig: path });
    const rebuilt = schemeNamed("k8s-encryption-config", { ...scheme.options });
    expect(rebuilt.configuredKeys?.().read.map((key) => key.id)).toEqual(["aesgcm:key0"]);
    writeFileSync(path, encryptionConfigYaml(resources, [[k8sKey("aesgcm", "key9")]]), { mode: 0o600 });
    expect(() => schemeNamed("k8s-encryption-config", { ...scheme.options })).toThrow(/changed while dbcrypt was running/);
    expect(Object.keys(scheme.options ?? {}).sort()).toEqual(["digests", "encryptionConfig"]);
  });
});
