import { readPrivateFile } from "../../key-sources/private-file.js";
import { DEFAULT_KMS_TIMEOUT_MS, parseGoDuration } from "./kms-plugin-client.js";
import { createRequire } from "node:module";
import type * as Yaml from "yaml";
import type { Node as YamlNode, YAMLMap } from "yaml";
import { DbcryptError } from "../../errors.js";
import { decodeStrictBase64 } from "../strict-base64.js";

/** yaml is loaded when a configuration is read (only Obot runs read one), synchronously: it ships CommonJS too. */
const require = createRequire(import.meta.url);
let yamlModule: typeof Yaml | undefined;
function yaml(): typeof Yaml {
  yamlModule ??= require("yaml") as typeof Yaml;
  return yamlModule;
}
const isMap = (node: unknown): node is YAMLMap => yaml().isMap(node);
const isSeq = (node: unknown): node is Yaml.YAMLSeq => yaml().isSeq(node);
const isScalar = (node: unknown): node is Yaml.Scalar => yaml().isScalar(node);

/**
 * A Kubernetes `EncryptionConfiguration` file (apiserver.config.k8s.io/v1), read the way the API
 * server's strict decoder reads it: an unknown field, a provider entry with two providers, a key
 * of the wrong size or a secret that is not padded standard base64 is an error naming the file and
 * line. Only what dbcrypt needs is kept; secrets stay in Buffers that nothing prints.
 */
export type SecretProviderType = "aesgcm" | "aescbc" | "secretbox";

export interface ProviderKey {
  name: string;
  secret: Buffer;
}

export type Provider =
  | { type: SecretProviderType; keys: ProviderKey[] }
  | { type: "identity" }
  | { type: "kms"; apiVersion: "v1" | "v2"; name: string; endpoint: string | undefined; timeoutMs: number };

export interface ResourceConfig {
  resources: string[];
  providers: Provider[];
}

export interface EncryptionConfig {
  path: string;
  resources: ResourceConfig[];
}

const KEY_SIZES: Record<SecretProviderType, readonly number[]> = { aesgcm: [16, 24, 32], aescbc: [16, 24, 32], secretbox: [32] };

/** The file holds key secrets, so it is read as a key file is: refused when group or others can read it. */
export function readEncryptionConfigBytes(path: string, allowInsecure: boolean): Buffer {
  try {
    return readPrivateFile(path, { label: "", what: "encryption config", allowInsecure, hint: "check the --encryption-config and --new-encryption-config paths" });
  } catch (error) {
    throw error instanceof DbcryptError ? new DbcryptError("bad_config", error.message, { hint: error.hint }) : error;
  }
}


export function parseEncryptionConfig(text: string, path: string): EncryptionConfig {
  const { LineCounter, parseDocument } = yaml();
  const lines = new LineCounter();
  const document = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const at = (node: YamlNode | null | undefined): string => {
    const offset = node?.range?.[0];
    return offset === undefined ? path : `${path}:${lines.linePos(offset).line}`;
  };
  const fail = (node: YamlNode | null | undefined, problem: string): never => {
    // The problem text never quotes a secret: it names fields and sizes only.
    throw new DbcryptError("bad_config", `encryption config ${at(node)}: ${problem}`, { hint: "see docs/schemes.md (Obot) and Kubernetes' EncryptionConfiguration reference" });
  };
  const firstError = document.errors[0];
  if (firstError !== undefined) {
    const line = firstError.linePos?.[0]?.line;
    throw new DbcryptError("bad_config", `encryption config ${line === undefined ? path : `${path}:${line}`}: not valid YAML (${firstError.code})`, { hint: "fix the YAML syntax" });
  }
  const root = document.contents;
  if (!isMap(root)) return fail(root, "must be a mapping with apiVersion, kind and resources");
  const fields = mapFields(root, ["apiVersion", "kind", "resources"], fail);
  const apiVersion = scalarText(fields.get("apiVersion"), "apiVersion", fail);
  const kind = scalarText(fields.get("kind"), "kind", fail);
  const modern = apiVersion === "apiserver.config.k8s.io/v1" && kind === "EncryptionConfiguration";
  const legacy = apiVersion === "v1" && kind === "EncryptionConfig";
  if (!modern && !legacy) fail(fields.get("kind") ?? root, 'must be apiVersion "apiserver.config.k8s.io/v1", kind "EncryptionConfiguration"');
  const resourcesNode = fields.get("resources");
  if (!isSeq(resourcesNode) || resourcesNode.items.length === 0) return fail(resourcesNode ?? root, "resources must be a non-empty list");
  const resources = resourcesNode.items.map((item) => {
    if (!isMap(item)) return fail(item as YamlNode, "each resources entry must be a mapping");
    const entry = mapFields(item, ["resources", "providers"], fail);
    const names = entry.get("resources");
    if (!isSeq(names) || names.items.length === 0) return fail(names ?? item, "resources[].resources must be a non-empty list");
    const providersNode = entry.get("providers");
    if (!isSeq(providersNode) || providersNode.items.length === 0) return fail(providersNode ?? item, "resources[].providers must be a non-empty list");
    return {
      resources: names.items.map((name) => scalarText(name as YamlNode, "resource name", fail)),
      providers: providersNode.items.map((provider) => readProvider(provider as YamlNode, fail)),
    };
  });
  return { path, resources };
}

type Fail = (node: YamlNode | null | undefined, problem: string) => never;

function mapFields(map: YAMLMap, allowed: readonly string[], fail: Fail): Map<string, YamlNode> {
  const fields = new Map<string, YamlNode>();
  for (const pair of map.items) {
    const key = pair.key as YamlNode;
    const name = isScalar(key) ? String(key.value) : "";
    // A field name is echoed only when it looks like one: a secret pasted without its "secret:"
    // label becomes a key here, and must not reach the error message.
    if (!allowed.includes(name)) fail(key, `unknown field ${/^[a-z][A-Za-z]{0,31}$/.test(name) ? `"${name}"` : "(name not shown)"} (allowed: ${allowed.join(", ")})`);
    fields.set(name, (pair.value ?? key) as YamlNode);
  }
  return fields;
}

function scalarText(node: YamlNode | undefined, what: string, fail: Fail): string {
  if (!isScalar(node) || typeof node.value !== "string" || node.value.length === 0) return fail(node, `${what} must be a non-empty string`);
  return node.value;
}

function readProvider(node: YamlNode, fail: Fail): Provider {
  if (!isMap(node) || node.items.length !== 1) return fail(node, "each providers entry must name exactly one provider (aesgcm, aescbc, secretbox, kms or identity)");
  const fields = mapFields(node, ["aesgcm", "aescbc", "secretbox", "kms", "identity"], fail);
  const [[type, body]] = [...fields] as [[string, YamlNode]];
  if (type === "identity") {
    if (!isMap(body) || body.items.length > 0) fail(body, "identity takes no fields: write identity: {}");
    return { type: "identity" };
  }
  if (!isMap(body)) return fail(body, `${type} must be a mapping`);
  if (type === "kms") {
    const kms = mapFields(body, ["apiVersion", "name", "endpoint", "timeout", "cachesize"], fail);
    const apiVersion = kms.has("apiVersion") ? scalarText(kms.get("apiVersion"), "kms.apiVersion", fail) : "v1";
    if (apiVersion !== "v1" && apiVersion !== "v2") fail(kms.get("apiVersion"), 'kms.apiVersion must be "v1" or "v2"');
    const name = scalarText(kms.get("name"), "kms.name", fail);
    if (name.includes(":")) fail(kms.get("name"), "kms.name must not contain ':'");
    // dbcrypt's KMS key ids are kms:v2:<name>/<key>; a '/' in the name would blur two providers.
    if (name.includes("/")) fail(kms.get("name"), "kms.name must not contain '/'");
    const endpoint = kms.has("endpoint") ? scalarText(kms.get("endpoint"), "kms.endpoint", fail) : undefined;
    if (apiVersion === "v2" && endpoint === undefined) fail(body, "kms (v2) needs an endpoint: unix:///path/to/plugin.sock");
    if (endpoint !== undefined && !endpoint.startsWith("unix://")) fail(kms.get("endpoint"), "kms.endpoint must be unix:///path (the plugin's socket)");
    const timeoutMs = kms.has("timeout") ? parseGoDuration(scalarText(kms.get("timeout"), "kms.timeout", fail)) : DEFAULT_KMS_TIMEOUT_MS;
    if (timeoutMs === undefined || timeoutMs <= 0) return fail(kms.get("timeout"), "kms.timeout must be a positive duration such as 3s or 500ms");
    return { type: "kms", apiVersion: apiVersion as "v1" | "v2", name, endpoint, timeoutMs };
  }
  const secretType = type as SecretProviderType;
  const keysNode = mapFields(body, ["keys"], fail).get("keys");
  if (!isSeq(keysNode) || keysNode.items.length === 0) return fail(keysNode ?? body, `${type}.keys must be a non-empty list`);
  const seen = new Set<string>();
  const keys = keysNode.items.map((item) => {
    if (!isMap(item)) return fail(item as YamlNode, `${type}.keys[] must be a mapping with name and secret`);
    const key = mapFields(item, ["name", "secret"], fail);
    const name = scalarText(key.get("name"), `${type} key name`, fail);
    if (name.includes(":")) fail(key.get("name"), `${type} key name must not contain ':' (it is part of the stored prefix)`);
    if (seen.has(name)) fail(key.get("name"), `${type} key name "${name}" is used twice`);
    seen.add(name);
    const secretNode = key.get("secret");
    const secretText = scalarText(secretNode, `${type} key "${name}" secret`, fail);
    const secret = decodeStrictBase64(secretText);
    if (secret === undefined) return fail(secretNode, `${type} key "${name}": secret is not padded standard base64`);
    if (!KEY_SIZES[secretType].includes(secret.length)) {
      fail(secretNode, `${type} key "${name}": secret is ${secret.length} bytes; ${type} takes ${KEY_SIZES[secretType].join(", ")}`);
    }
    return { name, secret };
  });
  return { type: secretType, keys };
}
