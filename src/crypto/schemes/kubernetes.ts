import { createHash } from "node:crypto";
import { DbcryptError } from "../../errors.js";
import { parseEncryptionConfig, readEncryptionConfigBytes, type EncryptionConfig, type Provider } from "../k8s/encryption-config.js";
import { AAD_INPUT, ENVELOPE_FIELD, FLAG_INPUT, IdentityKey, K8S_PREFIX, ProviderKey, unwrapEnvelope, type InnerOpener } from "../k8s/provider-keys.js";
import { decodeStrictBase64 } from "../strict-base64.js";
import { KmsV2Provider, kmsV2KeyIdOfCell } from "../k8s/kms-v2-provider.js";
import { SchemeOptions } from "./scheme-options.js";
import { rowFlagSet, type CellPrefix, type OpenResult, type RowContext, type SchemeFactory, type SchemeKey, type ValueScheme } from "./value-scheme.js";

/**
 * Kubernetes `EncryptionConfiguration` cells as Obot stores them in SQL (shared/reference/schemes.md
 * §1–2): each field is base64(`k8s:enc:<provider>:v1:<key name>:` ‖ payload), or base64(plaintext)
 * under the identity provider, and the row's `encrypted` column says whether its fields are cells
 * at all. The key name in the prefix is the key id (`aesgcm:key0`), so a census needs no keys.
 * Keys come from the operator's configuration files, not from --keys: the current one
 * (`encryptionConfig`) for reading, the new one (`newEncryptionConfig`) whose first provider's
 * first key writes, as the API server does.
 */
const PREFIXED = /^k8s:enc:(aesgcm|aescbc|secretbox):v1:([^:]+):/;
const KMS_PREFIXED = /^k8s:enc:kms:(v1|v2):([^:]+):/;
const STANDARD_BASE64_SHAPE = /^[A-Za-z0-9+/]*={0,2}$/;
const NON_ASCII = /[^\x00-\x7f]/;
/** base64 of "k8s:en", the first six bytes of every prefixed cell, a whole number of base64 quanta. */
const K8S_PREFIX_BASE64 = Buffer.from("k8s:en", "latin1").toString("base64");
/** Base64 characters that cover the longest prefix a key id is read from (k8s:enc:… and a name). */
const HEAD_CHARS = 4 * 64;
/** Key ids for cells no configured key can be: they are counted and block a run, naming what they are. */
export const NOT_BASE64_KEY_ID = "not-base64";

/**
 * Reads a configured file once, with a digest of exactly the bytes parsed, so a worker thread
 * rebuilding the scheme either sees the same keys or refuses.
 */
function loadConfig(path: string, digest: string | undefined, read: SchemeOptions): { config: EncryptionConfig; digest: string } {
  const bytes = readEncryptionConfigBytes(path, read.flag("allowInsecureKeyFile"));
  const found = createHash("sha256").update(bytes).digest("hex");
  if (digest !== undefined && digest !== found) read.fail(`encryption config ${path} changed while dbcrypt was running`);
  return { config: parseEncryptionConfig(bytes.toString("utf8"), path), digest: found };
}

/** Providers compared by what they would do: types, key names and secrets (as digests). */
function signature(providers: Provider[]): string {
  return providers
    .map((provider) => (provider.type === "identity" ? "identity" : provider.type === "kms" ? `kms:${provider.apiVersion}:${provider.name}` : `${provider.type}(${provider.keys.map((key) => `${key.name}=${createHash("sha256").update(key.secret).digest("hex")}`).join(",")})`))
    .join(";");
}

/**
 * The provider list of the file. One run has one set of keys, and which resource a table belongs
 * to is Obot's business, so every resources entry must have the same providers: otherwise a table
 * could be rewritten with keys its resource does not use, which Obot could not read.
 */
function providersOf(config: EncryptionConfig, read: SchemeOptions): Provider[] {
  const first = config.resources[0] as EncryptionConfig["resources"][number];
  for (const entry of config.resources) {
    if (signature(entry.providers) !== signature(first.providers)) {
      read.fail(`the encryption config ${config.path} gives ${entry.resources.join(", ")} other providers than ${first.resources.join(", ")}; dbcrypt needs one provider list for all resources`);
    }
  }
  return first.providers;
}

/** Every resource the file configures, for telling the operator which ones no walked table holds. */
function resourcesOf(config: EncryptionConfig): string[] {
  return config.resources.flatMap((entry) => entry.resources);
}

export const kubernetesFactory: SchemeFactory = {
  name: "k8s-encryption-config",
  summary: "Kubernetes EncryptionConfiguration cells (aesgcm, aescbc, secretbox, identity, kms v2 through its plugin) as Obot stores them; key id = provider:key name from the prefix, kms:v2:<name>/<plugin key> for KMS",
  create(options, origin): ValueScheme {
    const read = new SchemeOptions("k8s-encryption-config", options, origin, ["encryptionConfig", "newEncryptionConfig", "allowAescbcWrites", "repairDoubleEncryption", "allowInsecureKeyFile", "digests"]);
    const digests = read.record("digests");
    const configured = new Set<string>();
    const byId = new Map<string, SchemeKey>();
    const origins = new Map<string, string>();
    // Opens what a first opening revealed to be another cell (obot#2767), only when asked to.
    const inner: InnerOpener = (plaintext, context) => innerCell(plaintext, context, byId, read.flag("repairDoubleEncryption"));
    // The prefix is the only key id a cell carries: one provider:name with two secrets, anywhere
    // in either file, could not be told apart (and Helm's default name key0 invites it).
    const remember = (key: SchemeKey, secretDigest: string, path: string): void => {
      const seen = origins.get(key.id);
      if (seen !== undefined && seen !== secretDigest) {
        read.fail(`key ${key.id} appears with two different secrets (${path}); give the new key a new name, since the stored prefix is all that names it`);
      }
      origins.set(key.id, secretDigest);
      if (!byId.has(key.id)) byId.set(key.id, key);
    };
    // One client per KMS v2 plugin, whichever file names it; a name is the only thing its cells carry.
    const plugins = new Map<string, { provider: KmsV2Provider; endpoint: string }>();
    const pluginFor = (provider: Extract<Provider, { type: "kms" }>, path: string): KmsV2Provider => {
      const endpoint = provider.endpoint as string;
      const known = plugins.get(provider.name);
      if (known !== undefined && known.endpoint !== endpoint) read.fail(`KMS provider ${provider.name} has two endpoints (${known.endpoint}, ${endpoint} in ${path}); a cell names only the provider`);
      if (known !== undefined) return known.provider;
      const created = new KmsV2Provider({ name: provider.name, endpoint, timeoutMs: provider.timeoutMs, inner });
      plugins.set(provider.name, { provider: created, endpoint });
      return created;
    };
    const keysOf = (config: EncryptionConfig): Provider => {
      const providers = providersOf(config, read);
      for (const resource of resourcesOf(config)) configured.add(resource);
      const source = `encryption config ${config.path}`;
      for (const provider of providers) {
        if (provider.type === "identity") remember(new IdentityKey(inner, source), "identity", config.path);
        if (provider.type === "aesgcm" || provider.type === "aescbc" || provider.type === "secretbox") {
          for (const key of provider.keys) remember(new ProviderKey(provider.type, key.name, key.secret, inner, source), createHash("sha256").update(key.secret).digest("hex"), config.path);
        }
        if (provider.type === "kms" && provider.apiVersion === "v2") remember(pluginFor(provider, config.path).readKey(), `kms:${provider.endpoint}`, config.path);
      }
      return providers[0] as Provider;
    };
    const loaded: Record<string, string> = {};
    let writeKey: SchemeKey | undefined;
    let writePlugin: KmsV2Provider | undefined;
    for (const [option, role] of [["encryptionConfig", "current"], ["newEncryptionConfig", "new"]] as const) {
      const path = read.optionalString(option);
      if (path === undefined) continue;
      const { config, digest } = loadConfig(path, digests[option], read);
      loaded[option] = digest;
      const first = keysOf(config);
      if (role === "new") {
        if (first.type === "kms" && first.apiVersion === "v1") read.fail(`the new encryption config's first provider is kms v1 (${first.name}), which Kubernetes has deprecated; write with a kms v2 provider`);
        if (first.type === "aescbc" && !read.flag("allowAescbcWrites")) {
          read.fail("the new encryption config's first provider is aescbc, which has no MAC; pass --allow-aescbc-writes to write with it anyway");
        }
        if (first.type === "identity") writeKey = byId.get("identity");
        else if (first.type === "kms") writePlugin = plugins.get(first.name)?.provider;
        else writeKey = byId.get(`${first.type}:${first.keys[0]?.name}`);
      }
    }
    const providers = [...plugins.values()].map((plugin) => plugin.provider);
    // The KMS write key exists only once start("write") has had the plugin wrap this run's seed.
    let kmsWriteKey: SchemeKey | undefined;
    let started = false;
    return {
      name: "k8s-encryption-config",
      keyBytes: 32,
      keyIdSource: "prefix",
      canaryPlaintext: "dbcrypt",
      keysTableIsDbcrypts: true,
      keyFromBytes: () => {
        throw new DbcryptError("usage", "keys for Kubernetes encryption configs come from --encryption-config and --new-encryption-config, not from --keys or --new-key", {
          hint: "pass the configuration files instead",
        });
      },
      keyIdOfCell: (text, context) => keyIdOfK8sCell(text, context),
      cellPrefixes: (keyId) => k8sCellPrefixes(keyId),
      spellingEvidence: (text) => [unwrapEnvelope(text).format],
      columnSpelling: (evidence) => [...evidence].sort((a, b) => b[1] - a[1])[0]?.[0],
      rewriteSpelling: (oldCell, opened, column) => (oldCell === null ? column : (opened ?? column)),
      optionalContextInputs: [AAD_INPUT, FLAG_INPUT],
      configuredKeys: () => ({ read: kmsWriteKey === undefined ? [...byId.values()] : [kmsWriteKey, ...byId.values()], write: writeKey ?? kmsWriteKey }),
      // Every plugin the configurations name is asked for its Status before anything is written,
      // and the write plugin wraps this run's seed: a plugin that is down stops the run unchanged.
      start: async (use) => {
        started = true;
        // The write plugin's own Status comes with preparing (or planning) its writes.
        const writing = use === "read" ? undefined : writePlugin;
        for (const provider of providers) if (provider !== writing) await provider.checkHealth();
        if (use === "write" && writePlugin !== undefined) kmsWriteKey = await writePlugin.prepareWrites();
        if (use === "plan" && writePlugin !== undefined) kmsWriteKey = await writePlugin.plannedWriteKey();
      },
      // Not before start(): a census that only counts (status without --verify) asks no plugin.
      prepareCells: async (cells) => {
        if (!started) return;
        for (const provider of providers) await provider.prepareCells(cells);
      },
      close: async () => {
        for (const provider of providers) provider.close();
      },
      mainThreadOnly: providers.length > 0,
      configuredResources: () => [...configured],
      // File paths and digests only: the secrets are re-read from the files, never carried.
      options: { ...options, digests: { ...digests, ...loaded } },
    };
  },
};


function keyIdOfK8sCell(text: string, context: RowContext | undefined): string | undefined {
  if (!rowFlagSet(context) || text === "") return undefined;
  const cell = unwrapEnvelope(text).cell;
  // The key id is in the first bytes: check and decode only those (the census and every batch
  // read it); opening the cell decodes all of it strictly.
  if (cell.length % 4 !== 0) return NOT_BASE64_KEY_ID;
  const headText = cell.slice(0, HEAD_CHARS);
  // Most cells start with base64("k8s:en…"); only the others (identity, corrupt) need the shape check.
  if (!cell.startsWith(K8S_PREFIX_BASE64) && !STANDARD_BASE64_SHAPE.test(cell)) return NOT_BASE64_KEY_ID;
  const head = Buffer.from(headText, "base64").toString("latin1");
  const ascii = PREFIXED.exec(head);
  const match = ascii !== null && !NON_ASCII.test(ascii[2] as string) ? ascii : longNamePrefix(cell, head);
  if (match !== null) return `${match[1]}:${match[2]}`;
  const kms = KMS_PREFIXED.exec(head);
  // A KMS v2 cell names the plugin's key inside its object, so the whole cell is decoded.
  if (kms !== null) return (kms[1] === "v2" ? kmsV2KeyIdOfCell(text) : undefined) ?? `kms:${kms[1]}:${kms[2]}`;
  if (head.startsWith(K8S_PREFIX)) return "k8s-unknown-provider";
  return "identity";
}

/**
 * A key name too long for the head, or not ASCII: the prefix read as UTF-8 from as much of the
 * cell as it takes (key names are UTF-8 in the YAML the prefix was written from).
 */
function longNamePrefix(cell: string, head: string): RegExpExecArray | null {
  if (!head.startsWith("k8s:enc:aes") && !head.startsWith("k8s:enc:secretbox")) return null;
  return PREFIXED.exec(Buffer.from(cell.slice(0, 4 * 1024), "base64").toString("utf8"));
}

function innerCell(plaintext: Buffer, context: RowContext | undefined, keys: Map<string, SchemeKey>, repair: boolean): OpenResult | undefined {
  const text = plaintext.toString("latin1");
  const nested = text.startsWith(K8S_PREFIX) ? Buffer.from(text, "latin1").toString("base64") : decodeStrictBase64(text)?.subarray(0, K8S_PREFIX.length).toString("latin1") === K8S_PREFIX ? text : undefined;
  if (nested === undefined) return undefined;
  if (!repair) return { ok: false, reason: "double-encrypted: the value decrypts to another k8s:enc: cell (pass --repair-double-encryption to rotate it as the inner value)" };
  const keyId = keyIdOfK8sCell(nested, undefined);
  const key = keyId === undefined ? undefined : keys.get(keyId);
  if (key === undefined) return { ok: false, reason: `double-encrypted: the inner cell is under key ${keyId ?? "?"}, which was not supplied` };
  return key.open(nested, context);
}

const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/**
 * The base64 text every cell under `provider:name` starts with: the prefix's whole 3-byte groups
 * exactly, then the characters of its last partial group, the final one of which also carries
 * payload bits and so may be any of 4 or 16 characters. Bare, and inside Obot's JSON envelope.
 */
export function k8sCellPrefixes(keyId: string): CellPrefix[] | undefined {
  const match = /^(aesgcm|aescbc|secretbox):([^:]+)$/.exec(keyId);
  if (match === null) return undefined;
  const prefix = Buffer.from(`${K8S_PREFIX}${match[1]}:v1:${match[2]}:`, "utf8");
  const whole = prefix.length - (prefix.length % 3);
  let literal = prefix.subarray(0, whole).toString("base64");
  let next = "";
  const rest = prefix.subarray(whole);
  if (rest.length === 1) {
    const byte = rest[0] as number;
    literal += BASE64_ALPHABET[byte >> 2];
    next = [...Array(16).keys()].map((payloadBits) => BASE64_ALPHABET[((byte & 3) << 4) | payloadBits]).join("");
  } else if (rest.length === 2) {
    const [first, second] = [rest[0] as number, rest[1] as number];
    literal += `${BASE64_ALPHABET[first >> 2]}${BASE64_ALPHABET[((first & 3) << 4) | (second >> 4)]}`;
    next = [...Array(4).keys()].map((payloadBits) => BASE64_ALPHABET[((second & 15) << 2) | payloadBits]).join("");
  }
  return [
    { literal, next, form: "bare" },
    { literal: `{"${ENVELOPE_FIELD}":"${literal}`, next, form: "json-envelope" },
  ];
}
