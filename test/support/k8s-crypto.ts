/**
 * An independent reading of Kubernetes' encryption providers as Obot stores their output
 * (shared/reference/schemes.md §1.2–1.3, §2.2): base64(prefix ‖ payload), aesgcm with the row's
 * additional data, aescbc with PKCS#7, secretbox via tweetnacl. Used to seed and check Obot-shaped
 * databases; never imports from src/.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import nacl from "tweetnacl";

export type K8sProvider = "aesgcm" | "aescbc" | "secretbox";

export interface K8sKey {
  provider: K8sProvider;
  name: string;
  secret: Buffer;
}

export function k8sKey(provider: K8sProvider, name: string, bytes = 32): K8sKey {
  return { provider, name, secret: randomBytes(bytes) };
}

export function prefixOf(key: K8sKey): string {
  return `k8s:enc:${key.provider}:v1:${key.name}:`;
}

export function sealK8s(key: K8sKey, plaintext: string | Buffer, aad: string): string {
  const message = typeof plaintext === "string" ? Buffer.from(plaintext, "utf8") : plaintext;
  let payload: Buffer;
  if (key.provider === "aesgcm") {
    const nonce = randomBytes(12);
    const cipher = createCipheriv(`aes-${key.secret.length * 8}-gcm` as "aes-256-gcm", key.secret, nonce);
    cipher.setAAD(Buffer.from(aad, "utf8"));
    payload = Buffer.concat([nonce, cipher.update(message), cipher.final(), cipher.getAuthTag()]);
  } else if (key.provider === "aescbc") {
    const iv = randomBytes(16);
    const cipher = createCipheriv(`aes-${key.secret.length * 8}-cbc` as "aes-256-cbc", key.secret, iv);
    payload = Buffer.concat([iv, cipher.update(message), cipher.final()]);
  } else {
    const nonce = randomBytes(24);
    payload = Buffer.concat([nonce, Buffer.from(nacl.secretbox(message, nonce, key.secret))]);
  }
  return Buffer.concat([Buffer.from(prefixOf(key), "utf8"), payload]).toString("base64");
}

/** The plaintext, or undefined when the cell is not this key's or does not authenticate with `aad`. */
export function openK8s(key: K8sKey, cell: string, aad: string): string | undefined {
  const bytes = Buffer.from(cell, "base64");
  const prefix = Buffer.from(prefixOf(key), "utf8");
  if (!bytes.subarray(0, prefix.length).equals(prefix)) return undefined;
  const payload = bytes.subarray(prefix.length);
  try {
    if (key.provider === "aesgcm") {
      const decipher = createDecipheriv(`aes-${key.secret.length * 8}-gcm` as "aes-256-gcm", key.secret, payload.subarray(0, 12));
      decipher.setAAD(Buffer.from(aad, "utf8"));
      decipher.setAuthTag(payload.subarray(payload.length - 16));
      return Buffer.concat([decipher.update(payload.subarray(12, payload.length - 16)), decipher.final()]).toString("utf8");
    }
    if (key.provider === "aescbc") {
      const decipher = createDecipheriv(`aes-${key.secret.length * 8}-cbc` as "aes-256-cbc", key.secret, payload.subarray(0, 16));
      return Buffer.concat([decipher.update(payload.subarray(16)), decipher.final()]).toString("utf8");
    }
    const opened = nacl.secretbox.open(payload.subarray(24), payload.subarray(0, 24), key.secret);
    return opened === null ? undefined : Buffer.from(opened).toString("utf8");
  } catch {
    return undefined;
  }
}

/** An EncryptionConfiguration with the given providers first to last ("identity" for identity). */
export function encryptionConfigYaml(resources: string[], providers: (K8sKey[] | "identity" | { kms: string; endpoint?: string; timeout?: string })[]): string {
  const lines = ["apiVersion: apiserver.config.k8s.io/v1", "kind: EncryptionConfiguration", "resources:", "  - resources:"];
  for (const resource of resources) lines.push(`      - ${resource}`);
  lines.push("    providers:");
  for (const provider of providers) {
    if (provider === "identity") lines.push("      - identity: {}");
    else if ("kms" in provider) {
      lines.push(`      - kms:`, `          apiVersion: v2`, `          name: ${provider.kms}`, `          endpoint: ${provider.endpoint ?? `unix:///tmp/${provider.kms}.sock`}`);
      if (provider.timeout !== undefined) lines.push(`          timeout: ${provider.timeout}`);
    }
    else {
      lines.push(`      - ${provider[0]?.provider}:`, "          keys:");
      for (const key of provider) lines.push(`            - name: ${key.name}`, `              secret: ${key.secret.toString("base64")}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
